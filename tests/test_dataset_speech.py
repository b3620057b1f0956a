"""Speech engines and sources: voices, the StyleTTS 2 plugin, the authors' wav folder."""

from __future__ import annotations

import io
import json
import sys
import types
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from speechprune.dataset_script import SAMPLE_ANNOTATIONS
from speechprune.dataset_script.build import build_spiral
from speechprune.dataset_script.records import read_annotations
from speechprune.dataset_script.speech import SENTENCE_PAUSE_S, TURN_PAUSE_S, synthesize_dialogue
from speechprune.dataset_script.tts import ESPEAK_VOICES, EspeakEngine, make_engine


@pytest.fixture(scope="module")
def records():
    return read_annotations(SAMPLE_ANNOTATIONS)[0]


def _check_voices(records) -> tuple[set, list[str]]:
    """Per-dialogue voice rules; returns the voice sets seen and the voices of single-speaker dialogues."""
    engine = EspeakEngine()
    seen = set()
    for record in records:
        voices = engine.voices(record)
        assert voices == engine.voices(record)  # deterministic
        assert set(voices) == set(record.genders)
        for speaker, voice in voices.items():
            language, variant = voice.split("+")
            assert language == "en-us" and variant in ESPEAK_VOICES[record.genders[speaker]]
        for gender, pool in ESPEAK_VOICES.items():
            mine = [voices[s] for s, g in record.genders.items() if g == gender]
            assert len(set(mine)) == min(len(mine), len(pool))  # distinct while the pool lasts
        seen.add(tuple(sorted(voices.values())))
    return seen, [engine.voices(r)["spk_1"] for r in records if len(r.genders) == 1]


def test_espeak_voices_follow_gender_and_vary_across_dialogues(records):
    seen, single = _check_voices(records)
    assert len(records) == 24 and len(seen) > 12  # most dialogues get a voice set of their own
    assert len(set(single)) > len(single) // 2  # single speakers do not all get the same voice


def test_espeak_voices_over_the_published_dialogues(published_spiral):
    seen, single = _check_voices(read_annotations(published_spiral / "data.jsonl")[0])
    assert len(set(single)) == len(ESPEAK_VOICES["F"]) + len(ESPEAK_VOICES["M"])  # every voice gets used
    assert len(seen) > 100


class _FakeStyleTTS2:
    calls: list[dict] = []

    def compute_style(self, path):
        return ("style", path)

    def inference(self, text, **kwargs):
        type(self).calls.append({"text": text, **kwargs})
        return np.sin(np.arange(2400 + 40 * len(text)) / 7.0).astype(np.float32) * 0.3


def test_styletts2_absent_gives_a_clear_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "styletts2", None)
    with pytest.raises(RuntimeError, match="optional `styletts2` package"):
        make_engine("styletts2", voice_prompts=".")


def test_styletts2_plugin_uses_the_paper_settings(records, tmp_path, monkeypatch):
    package = types.ModuleType("styletts2")
    package.tts = types.SimpleNamespace(StyleTTS2=_FakeStyleTTS2)
    monkeypatch.setitem(sys.modules, "styletts2", package)
    record = next(r for r in records if len(r.genders) >= 3)
    for prompt in record.prompts.values():
        (tmp_path / Path(prompt).name).write_bytes(b"")
    engine = make_engine("styletts2", voice_prompts=tmp_path)
    _FakeStyleTTS2.calls.clear()
    recording = synthesize_dialogue(record, engine)
    assert recording.source == "styletts2" and len(_FakeStyleTTS2.calls) == len(record.sentences)
    for call, sentence, speaker in zip(_FakeStyleTTS2.calls, record.sentences, record.sentence_speakers):
        assert (call["alpha"], call["beta"], call["diffusion_steps"], call["embedding_scale"]) == (0.3, 0.7, 10, 1.0)
        assert call["text"] == sentence
        assert call["ref_s"] == ("style", str(tmp_path / Path(record.prompts[speaker]).name))
    # at 24 kHz nothing is resampled: the key sentence spans exactly its utterance minus the trimmed 50 samples
    first, last = record.key_indices
    lengths = [2400 + 40 * len(s) - 50 for s in record.sentences]
    if last - first == 1:
        assert recording.key_end - recording.key_start == pytest.approx(lengths[first] / 24000)
    # pauses: short within a turn, longer between turns
    times = recording.sentence_times
    for i in range(1, len(times)):
        gap = times[i][0] - times[i - 1][1]
        new_turn = record.sentence_turns[i] != record.sentence_turns[i - 1]
        low, high = TURN_PAUSE_S if new_turn else SENTENCE_PAUSE_S
        assert low - 1e-3 <= gap <= high + 1e-3


def test_authors_wavs_are_used_as_they_are(tmp_path):
    records = read_annotations(SAMPLE_ANNOTATIONS, limit=2)[0]
    wavs = tmp_path / "authors"
    (wavs / "spiral" / "wavs").mkdir(parents=True)
    rng = np.random.default_rng(0)
    original = (rng.standard_normal(24000 * 3) * 3000).astype(np.int16)
    sf.write(wavs / "spiral" / "wavs" / records[0].audio_files[0], original, 24000, subtype="PCM_16")
    # the second dialogue (meeting_0) has no file: rejected, the build goes on
    out = tmp_path / "out"
    summary = build_spiral(SAMPLE_ANNOTATIONS, out, wavs=wavs, limit=2, progress=False)
    assert (summary["rows"], summary["rejects"], summary["audio_source"]) == (1, 1, "authors")
    reject = json.loads((out / "rejects.jsonl").read_text())
    assert reject["line"] == 2 and "authors' audio missing" in reject["reason"]
    row = pq.read_table(out / "data" / "spiral" / "test-00000-of-00001.parquet").to_pylist()[0]
    assert (row["key_start"], row["key_end"], row["audio_source"]) == (None, None, "authors")
    decoded, rate = sf.read(io.BytesIO(row["audio"]["bytes"]), dtype="int16")
    assert rate == 24000 and np.array_equal(decoded, original)  # lossless
    assert row["duration"] == 3.0
    assert "The authors' own recordings" in (out / "README.md").read_text()
