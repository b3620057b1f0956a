"""SPIRAL results do not change with tasks and K choices: the code before them (commit 3989a0f, taken from this
repository's history) and the current code make the same records and the same results on the demo data.

Both runs use the same SPIRAL folder and arguments. Compared byte for byte: every ``samples.jsonl`` line without
the timing fields (prefill time, memory, batch size), and ``results.json`` without the run's date, git commit,
package versions and mean timings, and without the two keys tasks added (``config.task`` and ``rejected``).
Record fields and result keys that other work added since (kept-token masks, key recall, the run's limit) are
named in the ``ADDED_SINCE`` constants and left out; any other new field fails the test.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from speechprune.evaluation import runner
from speechprune.evaluation.provenance import content_hash

BEFORE = "3989a0f"
REPO = Path(__file__).resolve().parents[1]
RUNS = {
    "loglik": ["--methods", "full,original,random,speechprune", "--rates", "0.5", "--limit", "3", "--batch-size", "2",
               "--circular", "--map-samples", "1"],
    "generate": ["--methods", "original,speechprune", "--rates", "0.5", "--limit", "2", "--scoring", "generate",
                 "--max-new-tokens", "4"],
}  # fmt: skip
MEASURED = ("prefill_ms", "peak_memory_gb", "activation_memory_gb", "batch_size")
NEW_KEYS, NEW_CONFIG_KEYS, RUN_KEYS = ("rejected",), ("task",), ("date", "git_hash", "versions")
# Added since by other work, not by tasks: issue 11's kept-token masks and key recall (records and result rows),
# and the run's --limit in the config block (issue 13's submit checks).
ADDED_SINCE = ("kept_mask", "token_seconds", "key_recall")
ADDED_SINCE_ROWS = ("key_recall", "key_recall_stderr", "key_recall_n")
ADDED_SINCE_CONFIG = ("limit",)
# Changed since by other work: a local dataset's revision (its content hash) now leaves out the builder's
# .spiral-build state folder; checked apart against provenance.content_hash.

RUN_OLD = """
import argparse, sys
import speechprune
from speechprune.evaluation import runner
assert speechprune.__file__.startswith(sys.argv[1]), speechprune.__file__
runs = {runs!r}
for name, extra in runs.items():
    parser = argparse.ArgumentParser()
    runner.configure(parser)
    runner.evaluate(parser.parse_args(["--model", "tiny", "--dataset", sys.argv[2], "--config", "spiral",
                                       "--output", sys.argv[3] + "/" + name, *extra]))
"""


def old_code(tmp_path: Path) -> Path:
    """The package as it was at BEFORE, unpacked from git."""
    found = subprocess.run(["git", "-C", str(REPO), "cat-file", "-e", f"{BEFORE}^{{commit}}"], capture_output=True)
    if found.returncode != 0:
        pytest.skip(f"commit {BEFORE} is not in this checkout's history (a shallow clone): nothing to compare with")
    archive = tmp_path / "before.tar"
    subprocess.run(["git", "-C", str(REPO), "archive", "-o", str(archive), BEFORE, "speechprune"], check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path / "before", filter="data")
    return tmp_path / "before"


def canonical_samples(path: Path) -> list[str]:
    lines = []
    for line in path.read_text().splitlines():
        record = json.loads(line)
        lines.append(json.dumps({k: v for k, v in record.items() if k not in MEASURED + ADDED_SINCE}, sort_keys=True))
    return lines


def canonical_results(path: Path) -> str:
    document = json.loads(path.read_text())
    for key in RUN_KEYS + NEW_KEYS:
        document.pop(key, None)
    for key in NEW_CONFIG_KEYS + ADDED_SINCE_CONFIG:
        document["config"].pop(key, None)
    document["config"]["dataset"].pop("revision")
    for rows in document["results"].values():
        for row in rows.values():
            for field in MEASURED + ADDED_SINCE_ROWS:
                row.pop(field, None)
    return json.dumps(document, indent=1, sort_keys=True)


@pytest.mark.slow
def test_spiral_records_and_results_are_byte_identical_to_the_code_before_tasks(spiral_small, tmp_path):
    before = old_code(tmp_path)
    script = RUN_OLD.format(runs=RUNS)
    done = subprocess.run(
        [sys.executable, "-c", script, str(before), str(spiral_small), str(tmp_path / "old")],
        env=dict(os.environ, PYTHONPATH=str(before), TOKENIZERS_PARALLELISM="false"),
        cwd=tmp_path,  # not the repository: `python -c` puts the working folder first on sys.path
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for name, extra in RUNS.items():
        parser = argparse.ArgumentParser()
        runner.configure(parser)
        args = ["--model", "tiny", "--task", "spiral", "--dataset", str(spiral_small)]
        runner.evaluate(parser.parse_args([*args, "--output", str(tmp_path / "new" / name), *extra]))
        old, new = tmp_path / "old" / name, tmp_path / "new" / name
        assert canonical_samples(new / "samples.jsonl") == canonical_samples(old / "samples.jsonl"), name
        assert canonical_results(new / "results.json") == canonical_results(old / "results.json"), name
        assert json.loads((new / "results.json").read_text())["rejected"] == {
            "total": 0,
            "by_reason": {},
            "file": "rejects.jsonl",
        }
        assert (new / "rejects.jsonl").read_text() == ""
        revision = json.loads((new / "results.json").read_text())["config"]["dataset"]["revision"]
        assert revision == content_hash(spiral_small)
