"""build-spiral's download of the published annotations, against a static file server on 127.0.0.1."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from speechprune import cli
from speechprune.dataset_script import SAMPLE_ANNOTATIONS, published
from speechprune.errors import UsageError

HARD = ["meeting_1", "lecture_3"]  # official SPIRAL-H ids of the sample, in the published file's order


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class _Files:
    """Serves ``folder`` over HTTP on 127.0.0.1 (GET only) and counts the requests."""

    def __init__(self, folder: Path):
        self.requests: list[str] = []
        outer = self

        class Handler(_Quiet):
            def do_GET(self):  # noqa: N802 (http.server's name)
                outer.requests.append(self.path)
                super().do_GET()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(folder)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def served(tmp_path) -> dict:
    """A folder laid out like the authors' repository: the 24 sample records and 2 hard ones."""
    folder = tmp_path / "served"
    folder.mkdir()
    lines = SAMPLE_ANNOTATIONS.read_text().splitlines()
    (folder / "data.jsonl").write_text("\n".join(lines) + "\n")
    hard = [line for line in lines if json.loads(line)["metadata"]["id"] in HARD]
    (folder / "data_h.jsonl").write_text("\n".join(hard) + "\n")
    files = {name: _digest(folder / name) for name in ("data.jsonl", "data_h.jsonl")}
    return {"folder": folder, "files": files, "cache": tmp_path / "cache"}


def test_fetch_verifies_caches_and_then_needs_no_network(served):
    old = os.umask(0o022)
    try:
        with _Files(served["folder"]) as server:
            paths = published.fetch_published(served["cache"], base_url=server.url, files=served["files"])
    finally:
        os.umask(old)
    assert sorted(server.requests) == ["/data.jsonl", "/data_h.jsonl"]
    for name, path in paths.items():
        assert path == served["cache"] / name
        assert path.read_bytes() == (served["folder"] / name).read_bytes()
        assert path.stat().st_mode & 0o777 == 0o644  # follows the umask
    assert sorted(p.name for p in served["cache"].iterdir()) == ["data.jsonl", "data_h.jsonl"]
    # the server is gone: the cached, still matching files are used as they are
    again = published.fetch_published(served["cache"], base_url=server.url, files=served["files"])
    assert again == paths


def test_a_changed_cache_file_is_downloaded_again(served):
    with _Files(served["folder"]) as server:
        published.fetch_published(served["cache"], base_url=server.url, files=served["files"])
        (served["cache"] / "data_h.jsonl").write_text("truncated")
        server.requests.clear()
        paths = published.fetch_published(served["cache"], base_url=server.url, files=served["files"])
    assert server.requests == ["/data_h.jsonl"]
    assert _digest(paths["data_h.jsonl"]) == served["files"]["data_h.jsonl"]


def test_a_wrong_hash_is_refused_and_nothing_is_kept(served):
    files = dict(served["files"], **{"data.jsonl": "0" * 64})
    with _Files(served["folder"]) as server, pytest.raises(UsageError) as error:
        published.fetch_published(served["cache"], base_url=server.url, files=files)
    message = str(error.value)
    assert "\n" not in message and served["files"]["data.jsonl"] in message and "0" * 64 in message
    assert "--annotations" in message
    assert list(served["cache"].iterdir()) == []  # neither the bad file nor a temporary one


def test_offline_says_in_one_line_what_to_pass(served, tmp_path):
    with _Files(served["folder"]) as server:
        url = server.url
    with pytest.raises(UsageError, match=r"could not download .*; pass --annotations data.jsonl --hard data_h.jsonl"):
        published.fetch_published(served["cache"], base_url=url, files=served["files"])
    with pytest.raises(UsageError, match="could not download"):  # 404: not the authors' layout
        with _Files(tmp_path) as server:
            published.fetch_published(served["cache"], base_url=server.url, files=served["files"])


def test_build_spiral_without_annotations_fetches_them(served, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SPEECHPRUNE_CACHE", str(tmp_path / "sp-cache"))
    monkeypatch.setattr(published, "PUBLISHED_FILES", served["files"])
    out = tmp_path / "spiral"
    with _Files(served["folder"]) as server:
        monkeypatch.setattr(published, "BASE_URL", server.url)
        code = cli.main(["build-spiral", "--out", str(out), "--ids", str(_ids(tmp_path)), "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    assert str(tmp_path / "sp-cache" / "spiral-annotations") in printed
    hard = pq.read_table(out / "data" / "spiral_h" / "test-00000-of-00001.parquet")["id"].to_pylist()
    assert hard == ["meeting_1", "lecture_3"]  # --hard defaulted to the fetched data_h.jsonl (spiral order)


def _ids(tmp_path: Path) -> Path:
    path = tmp_path / "ids.txt"
    path.write_text("lecture_3\nmeeting_1\nlecture_0\n")
    return path


def test_build_spiral_offline_is_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SPEECHPRUNE_CACHE", str(tmp_path / "sp-cache"))
    with _Files(tmp_path) as server:
        url = server.url
    monkeypatch.setattr(published, "BASE_URL", url)
    out = tmp_path / "spiral"
    assert cli.main(["build-spiral", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and "--annotations" in err
    assert not out.exists()


def test_the_published_hashes_are_those_of_the_published_files(published_spiral, tmp_path):
    """SPEC section 4's hashes against the real files (served locally: the tests never reach GitHub)."""
    with _Files(published_spiral) as server:
        paths = published.fetch_published(tmp_path / "cache", base_url=server.url)
    assert {name: _digest(path) for name, path in paths.items()} == published.PUBLISHED_FILES


def test_sample_builds_offline_from_the_packaged_records(tmp_path, capsys):
    out = tmp_path / "small"
    assert cli.main(["build-spiral", "--sample", "--annotations", "x.jsonl", "--out", str(out)]) == 2
    assert "--sample" in capsys.readouterr().err and not out.exists()
    assert cli.main(["build-spiral", "--sample", "--limit", "1", "--out", str(out), "--no-progress"]) == 0
    rows = pq.read_table(out / "data" / "spiral" / "test-00000-of-00001.parquet").to_pylist()
    assert [r["id"] for r in rows] == ["lecture_0"]  # the packaged file's first record
