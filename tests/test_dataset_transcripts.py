"""generate-transcripts against a small OpenAI-compatible server on 127.0.0.1, and the builder on its output."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pyarrow.parquet as pq
import pytest

from speechprune import cli
from speechprune.dataset_script.build import build_spiral
from speechprune.dataset_script.records import read_annotations

GOOD = {
    "speakers": {"spk_1": "F", "spk_2": "M", "spk_3": "F"},
    "turns": [
        {"speaker": "spk_1", "sentences": ["Okay, so, um, let's look at the tide gauge numbers.", "They look odd."]},
        {"speaker": "spk_2", "sentences": ["Right, uh, the harbor sensor drifted by exactly seven millimetres."]},
        {"speaker": "spk_3", "sentences": ["Hm, that's, you know, more than I'd expect.", "We should recalibrate."]},
        {"speaker": "spk_1", "sentences": ["Agreed, let's do it next week."]},
    ],
    "key_sentence": "Right, uh, the harbor sensor drifted by exactly seven millimetres.",
    "question": "By how much did the harbor sensor drift?",
    "choices": ["Three millimetres", "Five centimetres", "Seven millimetres", "One metre"],
    "answer": "C",
}


def _reply(content: str) -> dict:
    return {
        "id": "x",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}}],
    }


class _Server:
    """Answers /v1/chat/completions from a script of replies; shuts itself down after 30 s at the latest."""

    def __init__(self, replies: list[str]):
        self.replies, self.requests = list(replies), []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
                if self.path != "/v1/chat/completions" or not outer.replies:
                    self.send_response(500)
                    self.end_headers()
                    return
                data = json.dumps(_reply(outer.replies.pop(0))).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.deadline = threading.Timer(30, self.httpd.shutdown)

    def __enter__(self):
        self.thread.start()
        self.deadline.start()
        return self

    def __exit__(self, *exc):
        self.deadline.cancel()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def test_generate_validate_and_build(tmp_path, monkeypatch):
    bad = dict(GOOD, choices=GOOD["choices"][:3])  # only three options: asked again
    misplaced_key = dict(GOOD, key_sentence="A sentence nobody said.")
    second = dict(
        GOOD, answer="B", choices=["One metre", "Seven millimetres", "Three millimetres", "Five centimetres"]
    )
    replies = [
        json.dumps(bad),
        "Here you go:\n```json\n" + json.dumps(GOOD) + "\n```",
        json.dumps(misplaced_key),
        json.dumps(second),
    ]
    out = tmp_path / "generated.jsonl"
    monkeypatch.setenv("MY_KEY", "sekrit")
    with _Server(replies) as server:
        code = cli.main(
            ["generate-transcripts", "--url", server.url, "--model", "tiny-chat", "--topic", "Earth Science",
             "--subtopic", "Oceanography", "--type", "meeting", "--count", "2", "--speakers", "3",
             "--api-key-env", "MY_KEY", "--out", str(out)]
        )  # fmt: skip
    assert code == 0
    assert len(server.requests) == 4
    request = server.requests[0]
    assert request["path"] == "/v1/chat/completions" and request["auth"] == "Bearer sekrit"
    assert request["body"]["model"] == "tiny-chat" and request["body"]["response_format"] == {"type": "json_object"}
    prompt = request["body"]["messages"][-1]["content"]
    for needle in ("meeting", "Earth Science", "Oceanography", "disfluencies", "non-obvious", "spk_1, spk_2, spk_3"):
        assert needle in prompt

    records, rejects = read_annotations(out)  # the builder's own validation
    assert rejects == [] and [r.id for r in records] == ["gen_meeting_0", "gen_meeting_1"]
    first = records[0]
    assert first.answer == "C" and first.choices[2] == "Seven millimetres"
    assert first.sentences[first.key_indices[0]] == GOOD["key_sentence"]
    assert first.genders == {"spk_1": "F", "spk_2": "M", "spk_3": "F"}
    assert records[1].answer == "B"

    summary = build_spiral(out, tmp_path / "built", progress=False)
    assert (summary["rows"], summary["rejects"]) == (2, 0)
    rows = pq.read_table(tmp_path / "built" / "data" / "spiral" / "test-00000-of-00001.parquet").to_pylist()
    assert [r["category"] for r in rows] == ["meeting", "meeting"] and rows[0]["key_start"] > 0


def test_generator_gives_up_after_retries(tmp_path):
    with _Server([json.dumps(dict(GOOD, answer="E"))] * 2) as server:
        code = cli.main(
            ["generate-transcripts", "--url", server.url + "/v1", "--model", "m", "--topic", "Art",
             "--subtopic", "Clay",
             "--retries", "1", "--no-json-mode", "--out", str(tmp_path / "g.jsonl")]
        )  # fmt: skip
    assert code == 1 and len(server.requests) == 2
    assert "response_format" not in server.requests[0]["body"]
    assert (tmp_path / "g.jsonl").read_text() == ""


@pytest.mark.parametrize("kind", ["lecture", "conversation"])
def test_prompt_speaker_lines(kind):
    from speechprune.dataset_script.transcripts import build_prompt

    text = build_prompt("History", "Maps", kind, 1 if kind == "lecture" else 3)[-1]["content"]
    assert ("One speaker, labelled spk_1" in text) == (kind == "lecture")
    labels = ["spk_1"] if kind == "lecture" else ["spk_1", "spk_2", "spk_3"]
    assert kind in text and "History" in text and "Maps" in text
    assert all(f'"{label}": "F or M"' in text for label in labels) and '"spk_4"' not in text
    if kind == "conversation":
        assert "3 speakers, labelled spk_1, spk_2, spk_3, take turns" in text


def test_prompt_rejects_bad_arguments():
    from speechprune.dataset_script.transcripts import build_prompt

    with pytest.raises(ValueError, match="type must be one of"):
        build_prompt("History", "Maps", "podcast", 1)
    with pytest.raises(ValueError, match="speakers must be >= 1"):
        build_prompt("History", "Maps", "lecture", 0)


@pytest.mark.parametrize(
    "bad",
    [
        dict(GOOD, key_sentence=["not", "a", "string"]),
        dict(GOOD, turns=[dict(GOOD["turns"][0], sentences=[3, None])] + GOOD["turns"][1:]),
        dict(GOOD, turns=[dict(GOOD["turns"][0], sentences="one string")] + GOOD["turns"][1:]),
    ],
)
def test_malformed_reply_types_are_record_errors_not_crashes(bad):
    """A reply with non-string sentences is a rejected reply (asked again), never a TypeError that ends the run."""
    from speechprune.dataset_script.records import RecordError
    from speechprune.dataset_script.transcripts import reply_to_record

    with pytest.raises(RecordError, match="sentences|string"):
        reply_to_record(bad, "x_0", "Science", "Physics", "lecture")
    record = reply_to_record(GOOD, "x_0", "Science", "Physics", "lecture")
    assert record["original_key_sentence"] == GOOD["key_sentence"]
