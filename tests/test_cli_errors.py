"""User mistakes on the command line: one line naming the argument, exit 2, no traceback, nothing written.

Each case runs ``speechprune.cli.main`` as the console script does; those that need a real model run or a
built dataset live beside their component's tests (test_runner.py, test_dataset_build.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from speechprune import cli
from speechprune.dataset_script import SAMPLE_ANNOTATIONS


def one_line_error(capsys, argv: list[str], *expected: str) -> str:
    """Run the command; assert exit 2 and a single stderr line holding every ``expected`` text."""
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith(f"speechprune {argv[0]}: error: "), err
    assert "Traceback" not in err
    for text in expected:
        assert text in err, err
    return err


EVAL = ["eval", "--model", "tiny", "--config", "spiral"]


def test_eval_rates_and_methods(capsys, tmp_path):
    out = tmp_path / "run"
    base = [*EVAL, "--dataset", str(tmp_path), "--output", str(out)]
    one_line_error(capsys, [*base, "--rates", "1.5"], "--rates", "[0, 1)", "min(N, 750)")
    one_line_error(capsys, [*base, "--rates", "0.2,x"], "--rates", "comma list of numbers")
    one_line_error(capsys, [*base, "--methods", "speechprun"], "--methods", "did you mean speechprune?")
    assert not out.exists()


def test_eval_missing_local_paths_are_missing_paths(capsys, tmp_path):
    one_line_error(
        capsys,
        ["eval", "--model", "tiny", "--config", "spiral", "--dataset", "spiral-missing", "--output", str(tmp_path)],
        "--dataset: no SPIRAL folder 'spiral-missing' here",
    )
    dataset = tmp_path / "ds"
    dataset.mkdir()
    err = one_line_error(
        capsys,
        ["eval", "--model", "tinyy", "--config", "spiral", "--dataset", "x/y", "--output", str(tmp_path / "o")],
        "--model: no model folder 'tinyy' here",
        "did you mean tiny?",
    )
    assert "Hub" not in err.split("(")[0]


def test_eval_device_map_cuda_without_cuda(capsys, tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    one_line_error(
        capsys,
        [*EVAL, "--dataset", str(tmp_path), "--output", str(tmp_path / "o"), "--device-map", "cuda"],
        "--device-map: 'cuda' asks for CUDA",
    )


def test_export_model_mistakes(capsys, tmp_path):
    out = tmp_path / "repo"
    one_line_error(
        capsys,
        ["export-model", "--base", "tiny", "--out", str(out), "--pruning-rate", "1.5"],
        "--pruning-rate:",
        "750",
    )
    one_line_error(capsys, ["export-model", "--base", "tiny", "--out", str(out), "--phase1-tokens", "0"], "--phase1")
    one_line_error(
        capsys,
        ["export-model", "--base", str(tmp_path / "no-such-folder"), "--out", str(out)],
        "--base: no Qwen2-Audio folder",
    )
    a_file = tmp_path / "file.txt"
    a_file.write_text("mine")
    one_line_error(capsys, ["export-model", "--base", "tiny", "--out", str(a_file)], "--out:", "is a file")
    assert a_file.read_text() == "mine" and not out.exists()


def _results(tmp_path: Path, accuracy) -> Path:
    path = tmp_path / "results.json"
    row = {"accuracy": accuracy, "accuracy_stderr": 0.1, "n": 4, "majority_baseline": 0.5}
    path.write_text(json.dumps({"results": {"spiral": {"original": row}}}))
    return path


def test_report_mistakes(capsys, tmp_path):
    one_line_error(capsys, ["report", str(tmp_path / "missing.json")], "missing.json: no such file")
    path = _results(tmp_path, "0.75")
    one_line_error(capsys, ["report", str(path)], "results.spiral['original'].accuracy is '0.75', not a number")
    path.write_text(path.read_text()[:30])  # cut short
    one_line_error(capsys, ["report", str(path)], f"{path} is not valid JSON")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]  # no table, no plots
    _results(tmp_path, 0.75)
    assert cli.main(["report", str(path)]) == 0  # the same file, well formed, renders


def _sample_lines() -> list[bytes]:
    return SAMPLE_ANNOTATIONS.read_bytes().splitlines()


def test_build_spiral_writes_the_rejects_when_nothing_is_left(capsys, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"metadata": {"id": "x"}}\n{not json\n')
    out = tmp_path / "out"
    one_line_error(
        capsys, ["build-spiral", "--annotations", str(bad), "--out", str(out)], "2 rejected", "rejects.jsonl"
    )
    rejects = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
    assert [r["line"] for r in rejects] == [1, 2]

    ids = tmp_path / "ids.txt"
    ids.write_text("nobody_1\nnobody_2\n")
    out = tmp_path / "out-ids"
    one_line_error(
        capsys,
        ["build-spiral", "--sample", "--limit", "2", "--ids", str(ids), "--out", str(out)],
        "--ids: none of the 2 ids",
    )
    assert (out / "rejects.jsonl").read_text() == ""  # the two records were valid: nothing rejected
    one_line_error(capsys, ["build-spiral", "--sample", "--limit", "0", "--out", str(tmp_path / "zero")], "--limit: 0")


def test_build_spiral_rejects_a_bad_line_and_goes_on(tmp_path, capsys):
    lines = _sample_lines()
    not_utf8 = lines[1].replace(b'"meeting_0"', b'"meeting_\xff"')
    lone_surrogate = lines[2].replace(b'"question": "', b'"question": "\\udcff', 1)
    annotations = tmp_path / "mixed.jsonl"
    annotations.write_bytes(b"\n".join([lines[0], not_utf8, lone_surrogate]) + b"\n")
    out = tmp_path / "out"
    assert cli.main(["build-spiral", "--annotations", str(annotations), "--out", str(out), "--no-progress"]) == 0
    assert "1 rows kept + 2 rejects" in capsys.readouterr().out
    rejects = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
    assert [(r["line"], r["id"]) for r in rejects] == [(2, None), (3, "conversation_0")]
    assert "not UTF-8" in rejects[0]["reason"] and "lone surrogate" in rejects[1]["reason"]


def test_build_spiral_hard_and_out_mistakes(capsys, tmp_path):
    hard = tmp_path / "data_h.jsonl"
    hard.write_bytes(_sample_lines()[0] + b"\n" + _sample_lines()[1][:200])  # cut short mid-record
    out = tmp_path / "out"
    one_line_error(
        capsys,
        ["build-spiral", "--sample", "--limit", "1", "--hard", str(hard), "--out", str(out)],
        f"{hard}, line 2: not valid JSON",
    )
    one_line_error(capsys, ["build-spiral", "--sample", "--out", "/proc/spiral"], "--out: cannot write under /proc")
    a_file = tmp_path / "file"
    a_file.write_text("mine")
    one_line_error(capsys, ["build-spiral", "--sample", "--out", str(a_file)], "is a file")


def _predictions(tmp_path: Path, correct_values: list) -> Path:
    path = tmp_path / "records.jsonl"
    path.write_text(
        "".join(
            json.dumps({"id": f"s{i}", "method": "full", "rate": None, "rotation": 0, "correct": value}) + "\n"
            for i, value in enumerate(correct_values)
        )
    )
    return path


def test_derive_hard_accepts_only_booleans(capsys, tmp_path):
    out = tmp_path / "hard.txt"
    path = _predictions(tmp_path, [True, False, "false"])
    one_line_error(
        capsys, ["derive-hard", "--predictions", str(path), "--out", str(out)], "line 3: correct is 'false'"
    )
    path = _predictions(tmp_path, [True, None])
    one_line_error(capsys, ["derive-hard", "--predictions", str(path), "--out", str(out)], "line 2: correct is None")
    assert not out.exists()
    one_line_error(capsys, ["derive-hard", "--predictions", str(path), "--out", str(tmp_path)], "--out:", "folder")
    path = _predictions(tmp_path, [True, False, False])
    assert cli.main(["derive-hard", "--predictions", str(path), "--out", str(out)]) == 0
    assert out.read_text().splitlines()[1:] == ["s1", "s2"]


@pytest.mark.parametrize("command", ["eval", "export-model", "build-spiral", "report", "demo"])
def test_help_in_a_fresh_process_lists_the_rate_rule_and_cache(command):
    done = subprocess.run(
        [sys.executable, "-m", "speechprune.cli", command, "--help"], capture_output=True, text=True, check=True
    )
    text = " ".join(done.stdout.split())
    if command in ("eval", "export-model", "demo"):
        assert "round((1 - r) * min(N, 750))" in text
    if command in ("demo", "build-spiral"):
        assert "SPEECHPRUNE_CACHE" in text


def test_eval_help_imports_no_heavy_library():
    """`speechprune eval --help` answers without importing torch, transformers, datasets or matplotlib (the
    import time of those is what made it take seconds; benchmarks/README.md has the measured times)."""
    probe = (
        "import sys\n"
        "from speechprune import cli\n"
        "try:\n    cli.main(['eval', '--help'])\nexcept SystemExit:\n    pass\n"
        "print([m for m in ('torch', 'transformers', 'datasets', 'matplotlib', 'accelerate') if m in sys.modules])\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert "--trust-remote-code" in done.stdout and done.stdout.splitlines()[-1] == "[]"
