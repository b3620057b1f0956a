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

Python blocks run in a child forked from one warm interpreter (:data:`SERVER`), which has imported the heavy
libraries (torch, transformers, datasets, matplotlib, speechprune) once, with the blocks' environment, and
has run nothing else. So each block still starts alone, from the same state, in its own folder, with fresh
globals, its own ``sys.argv`` and ``sys.path[0]``, stdin closed and its exit code and output as
``python block.py`` would give them; it only skips the imports (seconds per block). Shell blocks run as
``bash`` processes.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
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

# The warm interpreter: imports, then forks one child per request line ({"script", "cwd", "env", "log"}) and
# answers {"pid"} at once and {"rc"} when the child is done. The child runs the script as ``python script``
# would (runpy as __main__, atexit handlers at the end) with its output in ``log``. Nothing runs in the
# server itself but imports, so no thread pool exists to be lost in the fork.
SERVER = r"""
import atexit, importlib, json, os, runpy, sys, traceback

for name in ("numpy", "torch", "transformers", "datasets", "matplotlib.pyplot", "speechprune.testing",
             "speechprune.modeling.modeling_speechprune", "speechprune.evaluation.runner"):
    importlib.import_module(name)


def run(request):
    code = 1
    try:
        os.chdir(request["cwd"])
        os.environ.update(request["env"])
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        sys.argv = [request["script"]]
        sys.path[0] = os.path.dirname(request["script"])
        try:
            runpy.run_path(request["script"], run_name="__main__")
            code = 0
        except SystemExit as exit:
            if exit.code is None or isinstance(exit.code, int):
                code = exit.code or 0
            else:
                print(exit.code, file=sys.stderr)
        except BaseException as error:  # as python prints it: from the script's own frame, without runpy's
            tb = error.__traceback__
            while tb is not None and tb.tb_frame.f_code.co_filename != request["script"]:
                tb = tb.tb_next
            traceback.print_exception(type(error), error, tb or error.__traceback__)
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(code)


for line in sys.stdin:
    request = json.loads(line)
    pid = os.fork()
    if pid == 0:
        run(request)
    print(json.dumps({"pid": pid}), flush=True)
    _, status = os.waitpid(pid, 0)
    print(json.dumps({"rc": os.waitstatus_to_exitcode(status)}), flush=True)
"""


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


def _environment() -> dict[str, str]:
    """What every block runs under, but ``$SPEECHPRUNE_CACHE`` (:func:`_block_variables`, one per block)."""
    env = dict(os.environ)
    env.update(
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
        PYTHONUNBUFFERED="1",
        MPLBACKEND="Agg",
    )
    env.pop("PYTHONPATH", None)  # the block sees the installed package, as a reader would
    env.pop("SPEECHPRUNE_CACHE", None)
    return env


def _block_variables(tmp_path: Path) -> dict[str, str]:
    return {"SPEECHPRUNE_CACHE": str(tmp_path / "speechprune-cache")}


class WarmPython:
    """The client of one :data:`SERVER` process: ``run`` a script in a fresh fork of it, with a timeout."""

    def __init__(self, folder: Path):
        self.errors = folder / "server-stderr.txt"
        with open(self.errors, "wb") as errors:
            self.process = subprocess.Popen(
                [sys.executable, "-c", SERVER],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=errors,
                cwd=folder,
                env=_environment(),
                bufsize=0,
            )

    def _answer(self, timeout: float) -> dict | None:
        """The server's next line as a dict, or None when it does not come within ``timeout`` seconds."""
        line = b""
        while not line.endswith(b"\n"):
            ready, _, _ = select.select([self.process.stdout], [], [], timeout)
            chunk = os.read(self.process.stdout.fileno(), 1) if ready else b""
            if not chunk:
                return None
            line += chunk
        return json.loads(line)

    def run(self, script: Path, cwd: Path, env: dict, log: Path, timeout: float) -> int | None:
        """The script's exit code, or None if it ran over ``timeout`` seconds (then it is killed)."""
        request = {"script": str(script), "cwd": str(cwd), "env": env, "log": str(log)}
        self.process.stdin.write((json.dumps(request) + "\n").encode())
        started = self._answer(TIMEOUT_S)  # the first answer waits for the server's imports
        if started is None:
            tail = self.errors.read_text(errors="replace")[-OUTPUT_TAIL:]
            raise RuntimeError(f"the warm python server did not answer (exit code {self.process.poll()}):\n{tail}")
        done = self._answer(timeout)
        if done is None:
            os.kill(started["pid"], signal.SIGKILL)
            self._answer(30)
            return None
        return done["rc"]

    def close(self):
        self.process.kill()  # it holds nothing to clean up, and an orderly exit of its imports takes seconds
        self.process.wait(30)
        self.process.stdin.close()
        self.process.stdout.close()


@pytest.fixture(scope="module")
def warm_python(tmp_path_factory):
    server = WarmPython(tmp_path_factory.mktemp("warm-python"))
    yield server
    server.close()


def test_read_blocks_finds_fences_lines_and_markers(tmp_path):
    md = tmp_path / "x.md"
    md.write_text("text\n<!-- docs-test: skip needs-gpu -->\n```bash\necho hi\n```\n\n```text\nno\n```\n")
    found = [(b.line, b.language, b.code, b.marker) for b in read_blocks(md)]
    assert found == [(3, "bash", "echo hi\n", "skip needs-gpu"), (7, "text", "no\n", None)]


WARM_CHECKS = [
    "import os, sys\nprint(__name__, os.path.basename(sys.argv[0]), os.path.basename(os.getcwd()), sys.stdin.read())",
    "import os, sys\nprint(os.environ['SPEECHPRUNE_CACHE'][-6:], sys.path[0] == os.path.dirname(__file__))",
    "import atexit\natexit.register(print, 'at exit')\nprint('body')",
    "import sys\nprint('out')\nprint('err', file=sys.stderr)\nsys.exit(3)",
    "import sys\nsys.exit('a message')",
    "def f():\n    raise ValueError('bad')\nf()",
    "x = 1\nprint(globals().get('leftover'))\nleftover = 1",  # every block starts with fresh globals
]


@pytest.mark.parametrize("code", WARM_CHECKS)
def test_the_warm_interpreter_runs_a_script_as_python_does(code, warm_python, tmp_path):
    """Exit code and output lines equal ``python block.py``'s (stdin closed, the block's folder and variables)."""
    script, work = tmp_path / "block.py", tmp_path / "work"
    script.write_text(code)
    work.mkdir()
    for _ in range(2):  # twice: a second fork of the same server behaves the same
        log = tmp_path / "output.txt"
        returncode = warm_python.run(script, work, _block_variables(tmp_path), log, 60)
        fresh = subprocess.run(
            [sys.executable, str(script)],
            cwd=work,
            env={**_environment(), **_block_variables(tmp_path)},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
        )
        assert returncode == fresh.returncode
        assert sorted(log.read_text().splitlines()) == sorted((fresh.stdout + fresh.stderr).splitlines())


def test_the_warm_interpreter_stops_a_block_that_runs_too_long(warm_python, tmp_path):
    script = tmp_path / "block.py"
    script.write_text("import time\ntime.sleep(60)\n")
    assert warm_python.run(script, tmp_path, {}, tmp_path / "output.txt", 1) is None
    script.write_text("print('next')\n")
    assert warm_python.run(script, tmp_path, {}, tmp_path / "output.txt", 60) == 0  # the server goes on


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
def test_doc_block_runs(block: Block, tmp_path, request):
    if block.marker is not None:
        reason = block.marker.split()[-1]
        if reason in SKIP_REASONS:
            pytest.skip(f"{block.where}: {SKIP_REASONS[reason]} ({reason})")
    work = tmp_path / "work"
    work.mkdir()
    python = RUNNABLE[block.language] == "python"
    script = tmp_path / ("block.py" if python else "block.sh")
    script.write_text(block.code, encoding="utf-8")
    if python and hasattr(os, "fork"):
        log = tmp_path / "output.txt"
        warm = request.getfixturevalue("warm_python")
        returncode = warm.run(script, work, _block_variables(tmp_path), log, TIMEOUT_S)
        output = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
    else:
        try:
            done = subprocess.run(
                [sys.executable, str(script)] if python else ["bash", "-e", "-o", "pipefail", str(script)],
                cwd=work,
                env={**_environment(), **_block_variables(tmp_path)},
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=TIMEOUT_S,
            )
        except subprocess.TimeoutExpired:
            returncode = None
        else:
            returncode, output = done.returncode, done.stdout + done.stderr
    if returncode is None:
        pytest.fail(f"{block.where}: the {block.language} block ran over {TIMEOUT_S} s (blocks must take seconds)")
    if returncode != 0:
        pytest.fail(
            f"{block.where}: the {block.language} block exited {returncode} (run alone, in an empty folder, "
            f"offline):\n{output[-OUTPUT_TAIL:]}",
            pytrace=False,
        )
