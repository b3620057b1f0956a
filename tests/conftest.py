"""Shared pytest fixtures. Each fixture says who uses it; add yours below with the same care for speed."""

from __future__ import annotations

from pathlib import Path

import pytest

SAMPLE_ANNOTATIONS = (
    Path(__file__).resolve().parents[1] / "speechprune" / "dataset_script" / "sample_annotations.jsonl"
)


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
