"""Loading a repo folder that ships its own code: never an interactive prompt, and the run says which code runs."""

from __future__ import annotations

import subprocess
import sys

import pytest

from speechprune import cli


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    out = tmp_path_factory.mktemp("remote") / "speechprune-tiny"
    assert cli.main(["export-model", "--base", "tiny", "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("trust", [False, True])
def test_an_exported_folder_loads_without_a_prompt(repo, trust):
    """In a fresh process with no terminal on stdin (a prompt would block or fail), in both modes."""
    probe = (
        "import sys\n"
        "from speechprune.evaluation.loading import load_model\n"
        f"model, processor, revision = load_model({str(repo)!r}, trust_remote_code={trust})\n"
        "print(type(model).__module__)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300
    )
    assert done.returncode == 0, done.stderr
    module = done.stdout.strip().splitlines()[-1]
    notice = "ships its own model code; loading it with the installed speechprune classes"
    if trust:
        assert module.startswith("transformers_modules.") and notice not in done.stderr
    else:
        assert module == "speechprune.modeling.modeling_speechprune" and notice in done.stderr
        assert "[y/N]" not in done.stdout + done.stderr
