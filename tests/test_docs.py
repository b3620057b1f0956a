"""Every ```python and ```bash / ```sh / ```shell block of README.md and docs/*.md runs as it stands.

Each block runs alone (never after another block), in a fresh temporary folder as its working directory,
offline (``HF_HUB_OFFLINE``, ``HF_DATASETS_OFFLINE``, ``TRANSFORMERS_OFFLINE``; this project's cache,
``$SPEECHPRUNE_CACHE``, is a temporary folder too), with this interpreter's ``python`` and ``speechprune`` first
on ``PATH``. Shell blocks run under ``bash -e -o pipefail``, so any failing command fails the block. A block
must therefore be self-contained (make its own inputs, e.g. ``speechprune build-spiral --sample``) and fast
(seconds, on the tiny models).

Skipping. The line directly above a block's fence may say why the block cannot run here, in exactly this form::

    <!-- docs-test: skip needs-hub -->

with one of these reasons (nothing else is accepted, and a marker that is not directly above a runnable
block fails the test, so a marker cannot silently skip something else):

- ``needs-hub``: needs the network: the Hugging Face Hub (a real checkpoint, an upload) or GitHub (the
  published annotations that ``build-spiral`` fetches).
- ``needs-gpu``: needs a CUDA GPU (or a 7B model's memory).
- ``needs-root``: changes the machine itself: installs system packages (``apt-get``) or makes a new
  virtual environment and installs into it (the README's set-up commands).

Content that is not meant to run goes in ```text, ```yaml, ```json or another non-runnable fence.

A failure names the file and the line of the block's opening fence (``docs/evaluation.md:42``), with the
tail of its output.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUNNABLE = {"python": "python", "bash": "bash", "sh": "bash", "shell": "bash"}
SKIP_REASONS = {
    "needs-hub": "needs the network (Hugging Face Hub or GitHub)",
    "needs-gpu": "needs a CUDA GPU",
    "needs-root": "changes the machine (system packages or a new virtual environment)",
}
MARKER = re.compile(r"<!--\s*docs-test:(.*?)-->")
FENCE = re.compile(r"^```\s*([\w+-]*)\s*$")
TIMEOUT_S = 300
OUTPUT_TAIL = 3000


@dataclass(frozen=True)
class Block:
    """One fenced block: where it is (``line`` is the 1-based line of its opening fence), its language and text."""

    path: Path
    line: int
    language: str
    code: str
    marker: str | None  # the text after "docs-test:" on the line above, if any

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def read_blocks(path: Path) -> list[Block]:
    """Every top-level fenced block of a markdown file (runnable or not), with the marker above it."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        start = i
        i += 1
        while i < len(lines) and lines[i].rstrip() != "```":
            i += 1
        if i == len(lines):
            raise AssertionError(f"{path.relative_to(ROOT)}:{start + 1}: code fence never closed")
        above = MARKER.search(lines[start - 1]) if start > 0 else None
        code = "".join(line + "\n" for line in lines[start + 1 : i])
        blocks.append(Block(path, start + 1, match.group(1).lower(), code, above.group(1).strip() if above else None))
        i += 1
    return blocks


def runnable_blocks() -> list[Block]:
    return [b for path in doc_files() for b in read_blocks(path) if b.language in RUNNABLE]


def _environment(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        SPEECHPRUNE_CACHE=str(tmp_path / "speechprune-cache"),
        PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
        PYTHONUNBUFFERED="1",
        MPLBACKEND="Agg",
    )
    env.pop("PYTHONPATH", None)  # the block sees the installed package, as a reader would
    return env


def _command(block: Block, script: Path) -> list[str]:
    if RUNNABLE[block.language] == "python":
        return [sys.executable, str(script)]
    return ["bash", "-e", "-o", "pipefail", str(script)]


def test_read_blocks_finds_fences_lines_and_markers(tmp_path):
    md = tmp_path / "x.md"
    md.write_text("text\n<!-- docs-test: skip needs-gpu -->\n```bash\necho hi\n```\n\n```text\nno\n```\n")
    found = [(b.line, b.language, b.code, b.marker) for b in read_blocks(md)]
    assert found == [(3, "bash", "echo hi\n", "skip needs-gpu"), (7, "text", "no\n", None)]


def test_every_marker_is_a_known_skip_above_a_runnable_block():
    problems = []
    for path in doc_files():
        text = path.read_text(encoding="utf-8").splitlines()
        fences = {b.line - 1: b for b in read_blocks(path)}  # 1-based line of the line above each fence
        for number, line in enumerate(text, start=1):
            match = MARKER.search(line)
            if not match:
                continue
            where = f"{path.relative_to(ROOT)}:{number}"
            block = fences.get(number)
            words = match.group(1).split()
            if block is None or block.language not in RUNNABLE:
                problems.append(f"{where}: docs-test marker is not directly above a python/bash block")
            elif len(words) != 2 or words[0] != "skip" or words[1] not in SKIP_REASONS:
                problems.append(
                    f"{where}: marker must be 'docs-test: skip REASON' with REASON in {sorted(SKIP_REASONS)}"
                )
    assert not problems, "\n".join(problems)


@pytest.mark.slow
@pytest.mark.parametrize("block", runnable_blocks(), ids=lambda b: b.where)
def test_doc_block_runs(block: Block, tmp_path):
    if block.marker is not None:
        reason = block.marker.split()[-1]
        if reason in SKIP_REASONS:
            pytest.skip(f"{block.where}: {SKIP_REASONS[reason]} ({reason})")
    work = tmp_path / "work"
    work.mkdir()
    script = tmp_path / ("block.py" if RUNNABLE[block.language] == "python" else "block.sh")
    script.write_text(block.code, encoding="utf-8")
    try:
        done = subprocess.run(
            _command(block, script),
            cwd=work,
            env=_environment(tmp_path),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{block.where}: the {block.language} block ran over {TIMEOUT_S} s (blocks must take seconds)")
    if done.returncode != 0:
        output = (done.stdout + done.stderr)[-OUTPUT_TAIL:]
        pytest.fail(
            f"{block.where}: the {block.language} block exited {done.returncode} (run alone, in an empty folder, "
            f"offline):\n{output}",
            pytrace=False,
        )
