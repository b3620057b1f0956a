"""Shared pytest fixtures. Each fixture says who uses it; add yours below with the same care for speed.

Data the tests read: the 24 published SPIRAL records packaged with speechprune (``SAMPLE_ANNOTATIONS``), or
files a test writes itself, so a fresh clone passes with nothing beside it. The few tests that need the full
published files (1,012 dialogues, 17,260 sentences) take the ``published_spiral`` fixture: it reads the folder
named by ``$SPEECHPRUNE_SPIRAL_ANNOTATIONS`` and skips, saying how to run them, when that is unset.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from speechprune.dataset_script import SAMPLE_ANNOTATIONS

ANNOTATIONS_VARIABLE = "SPEECHPRUNE_SPIRAL_ANNOTATIONS"


@pytest.fixture(scope="session")
def published_spiral() -> Path:
    """The folder holding the full published ``data.jsonl`` and ``data_h.jsonl`` (used by the dataset tests).

    Skipped when ``$SPEECHPRUNE_SPIRAL_ANNOTATIONS`` is unset; a folder that is named but lacks the files
    fails (a CI set-up error must not pass as a skip).
    """
    folder = os.environ.get(ANNOTATIONS_VARIABLE)
    if not folder:
        pytest.skip(
            f"needs the full published SPIRAL annotations: set {ANNOTATIONS_VARIABLE} to a folder holding "
            "data.jsonl and data_h.jsonl (github.com/linyueqian/SPIRAL_Dataset; `speechprune build-spiral` "
            "caches them under $SPEECHPRUNE_CACHE/spiral-annotations)"
        )
    path = Path(folder).expanduser()
    missing = [name for name in ("data.jsonl", "data_h.jsonl") if not (path / name).is_file()]
    if missing:
        pytest.fail(f"{ANNOTATIONS_VARIABLE}={folder} lacks {', '.join(missing)}")
    return path


@pytest.fixture(scope="session")
def spiral_small(tmp_path_factory) -> Path:
    """A real SPIRAL folder of 4 dialogues (lecture, meeting, conversation, lecture; about 80 s each).

    Built once per session by ``build_spiral`` with espeak-ng from the packaged sample annotations
    (a few seconds). Used by the runner and demo tests.
    """
    from speechprune.dataset_script.build import build_spiral

    out = tmp_path_factory.mktemp("spiral_small")
    build_spiral(SAMPLE_ANNOTATIONS, out, limit=4, progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_eval():
    """``tiny_eval(dataset, output, *args)``: ``speechprune eval --model tiny`` in this process (``--config spiral``).

    Returns ``runner.evaluate``'s dict (records and paths). Used by the explorer and key-recall tests.
    """
    import argparse

    from speechprune.evaluation import runner

    def run(dataset: Path, output: Path, *args: str) -> dict:
        parser = argparse.ArgumentParser()
        runner.configure(parser)
        common = ["--model", "tiny", "--dataset", str(dataset), "--config", "spiral", "--output", str(output)]
        return runner.evaluate(parser.parse_args([*common, *args]))

    return run
