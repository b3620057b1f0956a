"""The run explorer (`speechprune report --html`), checked in a real headless chromium.

A real run (tiny model, 3 synthesised SPIRAL dialogues) is reported; chromium opens the page from the
local file, and the rendered DOM is compared with what the records say: one entry per sample, the
filters of the URL hash hide exactly the samples and rows they should, every audio element's file
exists and the browser read its length. A screenshot is taken and its pixels checked for the kept-token
bars and the key-sentence colours.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
import soundfile

from speechprune.evaluation import explorer
from speechprune.evaluation.kept import decode_mask, encode_mask

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--virtual-time-budget=8000",  # lets the page's script and the audio metadata finish before the dump
]
METHODS = "full,original,random,speechprune"
RATES = "0.3,0.7"
pytestmark = pytest.mark.slow  # one tiny-model run and five browser launches


def chromium() -> str:
    """The chromium executable; a skip only off CI (under CI=true a missing browser fails the test)."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("CI"):
        pytest.fail("chromium is not installed but CI is set: .ci/run installs Debian's chromium")
    pytest.skip("chromium is not installed (apt-get install chromium); CI runs this test")


def browse(page: Path, profile: Path, *args: str, fragment: str = "") -> str:
    profile.mkdir(parents=True, exist_ok=False)  # a new, empty profile for every launch
    command = [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args, page.resolve().as_uri() + fragment]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


class Dom(HTMLParser):
    """The parts of the dumped DOM the tests read: articles, their variant rows, audio elements, the counter."""

    def __init__(self, text: str):
        super().__init__()
        self.articles: list[dict] = []
        self.count = None
        self._in_count = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "article":
            self.articles.append({**attrs, "rows": [], "audio": [], "marks": 0, "canvas": 0})
        elif self.articles and tag == "tr" and "variant" in attrs.get("class", ""):
            self.articles[-1]["rows"].append(attrs)
        elif self.articles and tag == "audio":
            self.articles[-1]["audio"].append(attrs)
        elif self.articles and tag == "mark":
            self.articles[-1]["marks"] += 1
        elif self.articles and tag == "canvas":
            self.articles[-1]["canvas"] += 1
        self._in_count = attrs.get("id") == "count"

    def handle_data(self, data):
        if self._in_count:
            self.count = data
            self._in_count = False


@pytest.fixture(scope="module")
def run(spiral_small, tiny_eval, tmp_path_factory):
    """A real run folder and its records (3 samples, 6 variants)."""
    output = tmp_path_factory.mktemp("explorer_run")
    args = ["--methods", METHODS, "--rates", RATES, "--limit", "3", "--map-samples", "1"]
    done = tiny_eval(spiral_small, output, *args)
    return {"output": output, "records": done["records"]}


@pytest.fixture(scope="module")
def page(run):
    """``speechprune report RUN/results.json --html`` in a fresh process, as a user runs it."""
    results = run["output"] / "results.json"
    done = subprocess.run(
        [sys.executable, "-m", "speechprune.cli", "report", str(results), "--html"],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return {"path": run["output"] / "explorer" / "index.html", "stdout": done.stdout}


def test_mask_round_trip_against_a_naive_bit_string():
    for num_tokens, kept in [(1, [0]), (5, [4]), (8, [0, 3, 4, 7]), (2250, list(range(0, 2250, 7))), (3, [])]:
        mask = encode_mask(kept, num_tokens)
        bits = "".join("1" if j in kept else "0" for j in range(num_tokens))
        bits += "0" * (-len(bits) % 4)
        assert mask == "".join(f"{int(bits[i : i + 4], 2):x}" for i in range(0, len(bits), 4))
        assert decode_mask(mask, num_tokens) == kept
    with pytest.raises(ValueError):
        encode_mask([5], 5)
    with pytest.raises(ValueError):
        decode_mask("1", 3)  # bit 3 is padding


def test_records_carry_the_kept_tokens_the_model_reported(run):
    records = run["records"]
    assert all("kept_mask" in r and r["token_seconds"] == 0.04 for r in records)
    by_method = {}
    for r in records:
        kept = decode_mask(r["kept_mask"], r["audio_tokens_before"])
        assert len(kept) == r["audio_tokens_after"]
        by_method.setdefault(r["method"], []).append((r, kept))
        if r.get("kept_times") is not None:  # the pruning-map sample also lists the times: they must agree
            assert [round(t / 0.04) for t in r["kept_times"]] == kept
    assert all(kept == list(range(r["audio_tokens_before"])) for r, kept in by_method["full"])
    assert all(kept == list(range(min(750, r["audio_tokens_before"]))) for r, kept in by_method["original"])


def test_failures_come_first():
    records = [
        {"id": i, "correct": c}
        for i, c in [("a", True), ("b", False), ("a", True), ("c", False), ("c", False), ("b", True)]
    ]
    assert explorer.ordered_ids(records, None) == ["c", "b", "a"]
    assert explorer.ordered_ids(records, 2, "dataset") == ["a", "b"]


def test_key_sentence_highlight_ignores_case_and_spacing():
    turns, found = explorer.highlight_turns(
        [{"speaker": "s1", "text": "First.  The answer is\n42 today."}, {"speaker": "s2", "text": "No."}],
        "the answer is 42",
    )
    assert found
    assert turns[0]["parts"] == [
        {"text": "First.  ", "key": False},
        {"text": "The answer is\n42", "key": True},
        {"text": " today.", "key": False},
    ]
    assert explorer.highlight_turns([{"speaker": "s", "text": "x"}], "absent")[1] is False


def test_page_is_offline_and_says_what_it_wrote(page):
    html = page["path"].read_text(encoding="utf-8")
    assert "http://" not in html and "https://" not in html  # nothing to fetch: no CDN, no font, no script src
    assert "<script src" not in html and "<link" not in html
    assert "3 of 3 samples" in page["stdout"] and "audio: 3 files" in page["stdout"]
    assert sorted(p.name for p in (page["path"].parent / "audio").iterdir()) == sorted(
        f"{i}.flac" for i in {"lecture_0", "meeting_0", "conversation_0"}
    )


def test_browser_renders_one_entry_per_sample_with_its_audio(page, run, tmp_path):
    dom = Dom(browse(page["path"], tmp_path / "profile", "--dump-dom"))
    ids = explorer.ordered_ids(run["records"], None)
    assert [a["data-id"] for a in dom.articles] == ids
    assert dom.count == "3 of 3 samples shown"
    for article in dom.articles:
        assert "hidden" not in article and article["canvas"] == 1
        assert len(article["rows"]) == 6  # full, original, random and speechprune at two rates
        (audio,) = article["audio"]
        source = page["path"].parent / audio["src"]
        assert source.is_file()
        info = soundfile.info(source)
        # The browser decoded the file's header: its length is the file's.
        assert abs(float(audio["data-loaded-seconds"]) - info.frames / info.samplerate) < 0.05
    # The synthesised SPIRAL speaks its key sentences verbatim: each transcript has one highlighted.
    assert all(article["marks"] == 1 for article in dom.articles)


def expected_shown(records: list[dict], method: str | None, rate: str | None, outcome: str, category: str | None):
    """Which samples the filters should leave, computed from the records, not from the page."""
    shown = []
    for sample_id in explorer.ordered_ids(records, None):
        rows = [r for r in records if r["id"] == sample_id]
        if category is not None and rows[0]["category"] != category:
            continue
        rows = [r for r in rows if method is None or r["method"] == method]
        rows = [r for r in rows if rate is None or (r["rate"] is not None and f"{r['rate']:g}" == rate)]
        if any(outcome == "all" or r["correct"] == (outcome == "correct") for r in rows):
            shown.append(sample_id)
    return shown


@pytest.mark.parametrize(
    "method, rate, outcome, category",
    [("speechprune", "0.7", "wrong", None), (None, None, "correct", None), ("random", None, "all", "lecture")],
)
def test_browser_filters_from_the_url_hash(page, run, tmp_path, method, rate, outcome, category):
    fragment = "#" + "&".join(
        f"{name}={value}"
        for name, value in [("method", method), ("rate", rate), ("outcome", outcome), ("category", category)]
        if value is not None
    )
    dom = Dom(browse(page["path"], tmp_path / "profile", "--dump-dom", fragment=fragment))
    visible = [a["data-id"] for a in dom.articles if "hidden" not in a]
    assert visible == expected_shown(run["records"], method, rate, outcome, category)
    assert dom.count == f"{len(visible)} of 3 samples shown"
    for article in dom.articles:
        rows = [row for row in article["rows"] if "hidden" not in row]
        assert all(method is None or row["data-method"] == method for row in rows)
        assert all(rate is None or row["data-rate"] == rate for row in rows)
        assert rows  # a filter that matches a variant leaves its rows visible in every article


def test_browser_screenshot_shows_kept_tokens_and_the_key_sentence(page, tmp_path):
    from matplotlib.image import imread

    shot = tmp_path / "explorer.png"
    browse(page["path"], tmp_path / "profile", "--window-size=1280,1100", f"--screenshot={shot}")
    pixels = imread(shot)[..., :3]
    assert pixels.shape[:2] == (1100, 1280)

    def share(rgb: tuple[int, int, int], tolerance: float = 6 / 255) -> float:
        target = [c / 255 for c in rgb]
        close = (abs(pixels - target) <= tolerance).all(axis=-1)
        return float(close.mean())

    assert share((0x2F, 0x6F, 0xB0)) > 0.005  # kept-token bars of the timelines
    assert share((0xFD, 0xE7, 0xC2)) > 0.0005  # the highlighted key sentence in the transcript
    assert share((0xE3, 0xF3, 0xE7)) > 0.0005  # the gold choice


def test_a_dataset_that_is_gone_is_a_usage_error(run, tmp_path, capsys):
    from speechprune import cli

    results = str(run["output"] / "results.json")
    code = cli.main(["report", results, "--html", "--out", str(tmp_path), "--dataset", str(tmp_path / "gone")])
    assert code == 2
    assert "--dataset: cannot load" in capsys.readouterr().err
    assert cli.main(["report", results, "--html", "--out", str(tmp_path), "--samples", "0"]) == 2
