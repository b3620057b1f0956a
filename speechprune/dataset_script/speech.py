"""Turning a dialogue into one recording (SPEC section 4, audio synthesis; paper appendix B).

:func:`synthesize_dialogue` speaks ``combined.sentences`` in order with the engine's voice of each
sentence's speaker, trims the trailing 50 samples of every utterance, puts a pause between sentences and
a longer one where the turn changes, resamples the whole recording to 24 kHz (scipy's polyphase
resampler), and normalises it to -23 LUFS (pyloudnorm, ITU-R BS.1770-4). Sentence times are counted in
samples while assembling, so ``key_start``/``key_end`` are exact. :func:`load_authors_audio` reads the
authors' own wavs instead. :func:`encode_flac` stores a recording losslessly.

Pause lengths vary within fixed ranges, drawn from the dialogue id and the sentence position (sha256),
so the same dialogue always sounds the same.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyloudnorm
import soundfile as sf
from scipy.signal import resample_poly

from .records import SpiralRecord
from .tts import TTSEngine, stable_unit

SAMPLING_RATE = 24000
TARGET_LUFS = -23.0
TRIM_SAMPLES = 50
SENTENCE_PAUSE_S = (0.25, 0.45)
TURN_PAUSE_S = (0.6, 1.0)
EDGE_SILENCE_S = 0.3


@dataclass
class Recording:
    """One dialogue's audio at 24 kHz.

    ``wave`` is float32 mono, shape ``(num_samples,)``. ``sentence_times[i]`` is the ``(start, end)`` in
    seconds of sentence ``i``; ``key_start``/``key_end`` cover ``sentences[indices[0]:indices[1]]`` (None
    when unknown, as for the authors' wavs).
    """

    wave: np.ndarray
    sentence_times: list[tuple[float, float]] | None
    key_start: float | None
    key_end: float | None
    source: str
    subtype: str = "PCM_16"

    @property
    def duration(self) -> float:
        return len(self.wave) / SAMPLING_RATE


def resample(wave: np.ndarray, rate_in: int, rate_out: int = SAMPLING_RATE) -> np.ndarray:
    """Polyphase resampling (scipy) from ``rate_in`` to ``rate_out``; float32 in and out.

    The output has ``ceil(len(wave) * rate_out / rate_in)`` samples; a time ``t`` seconds into the input is
    ``t`` seconds into the output.
    """
    if rate_in == rate_out:
        return wave.astype(np.float32, copy=False)
    g = math.gcd(rate_in, rate_out)
    return resample_poly(wave, rate_out // g, rate_in // g).astype(np.float32)


def normalize_loudness(wave: np.ndarray, target_lufs: float = TARGET_LUFS) -> np.ndarray:
    """Scale ``wave`` (24 kHz) to ``target_lufs`` integrated loudness, measured with pyloudnorm."""
    wave64 = wave.astype(np.float64)
    measured = pyloudnorm.Meter(SAMPLING_RATE).integrated_loudness(wave64)
    if not np.isfinite(measured):
        raise ValueError("cannot normalise the loudness of a silent recording")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pyloudnorm warns about peaks above 1; encode_flac clips them
        return pyloudnorm.normalize.loudness(wave64, measured, target_lufs).astype(np.float32)


def _pause(record_id: str, index: int, bounds: tuple[float, float], rate: int) -> int:
    low, high = bounds
    return round((low + (high - low) * stable_unit(record_id, "pause", index)) * rate)


def sentence_seed(record_id: str, index: int) -> int:
    """The engine seed of sentence ``index`` of a dialogue (used by engines with random sampling)."""
    return int(stable_unit(record_id, "sentence", index) * 2**31)


def synthesize_dialogue(record: SpiralRecord, engine: TTSEngine) -> Recording:
    """Speak a dialogue with ``engine`` and return the 24 kHz, -23 LUFS recording with exact sentence times.

    Layout: ``EDGE_SILENCE_S`` of silence, then each sentence (its last ``TRIM_SAMPLES`` samples cut),
    separated by a pause drawn from ``SENTENCE_PAUSE_S`` (same turn) or ``TURN_PAUSE_S`` (new turn), then
    ``EDGE_SILENCE_S`` again.
    """
    rate = engine.sampling_rate
    voices = engine.voices(record)
    edge = np.zeros(round(EDGE_SILENCE_S * rate), dtype=np.float32)
    pieces = [edge]
    position = len(edge)
    sample_times: list[tuple[int, int]] = []
    for i, (sentence, turn) in enumerate(zip(record.sentences, record.sentence_turns)):
        if i > 0:
            new_turn = turn != record.sentence_turns[i - 1]
            gap = _pause(record.id, i, TURN_PAUSE_S if new_turn else SENTENCE_PAUSE_S, rate)
            pieces.append(np.zeros(gap, dtype=np.float32))
            position += gap
        voice = voices[record.turns[turn][0]]
        utterance = engine.synthesize(sentence, voice, seed=sentence_seed(record.id, i))[:-TRIM_SAMPLES]
        if utterance.size == 0:
            raise RuntimeError(f"{record.id}: the engine produced no audio for sentence {i}: {sentence[:60]!r}")
        pieces.append(utterance)
        sample_times.append((position, position + len(utterance)))
        position += len(utterance)
    pieces.append(edge)
    wave = normalize_loudness(resample(np.concatenate(pieces), rate))
    times = [(start / rate, end / rate) for start, end in sample_times]
    first, last = record.key_indices
    return Recording(
        wave=wave,
        sentence_times=times,
        key_start=times[first][0],
        key_end=times[last - 1][1],
        source=engine.name,
    )


def authors_audio_paths(record: SpiralRecord, root: str | Path) -> list[Path]:
    """Where the authors' files of ``record`` are: ``root/<file>``, else ``root/<audio_folder>/<file>``."""
    root = Path(root)
    paths = []
    for name in record.audio_files:
        candidates = [root / name, root / record.audio_folder / name]
        found = next((p for p in candidates if p.is_file()), None)
        if found is None:
            raise FileNotFoundError(f"{record.id}: {name} not found under {root} (nor under {record.audio_folder}/)")
        paths.append(found)
    if not paths:
        raise FileNotFoundError(f"{record.id}: audio_data.combined.audio_files is empty")
    return paths


def load_authors_audio(record: SpiralRecord, root: str | Path) -> Recording:
    """The authors' recording of ``record`` (their files in order, mono, 24 kHz); key times unknown (None).

    Their audio is kept as it is apart from a downmix and, only if it is not 24 kHz already, resampling; it
    is stored as 16-bit FLAC when the source is 16-bit PCM at 24 kHz (lossless), else as 24-bit FLAC.
    """
    waves, lossless16 = [], True
    for path in authors_audio_paths(record, root):
        info = sf.info(str(path))
        wave, rate = sf.read(str(path), dtype="float32", always_2d=True)
        lossless16 &= info.subtype == "PCM_16" and rate == SAMPLING_RATE
        waves.append(resample(wave.mean(axis=1), rate))
    return Recording(
        wave=np.concatenate(waves),
        sentence_times=None,
        key_start=None,
        key_end=None,
        source="authors",
        subtype="PCM_16" if lossless16 else "PCM_24",
    )


def encode_flac(recording: Recording) -> bytes:
    """FLAC bytes of ``recording`` (24 kHz mono). Samples beyond full scale are clipped to [-1, 1]."""
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(recording.wave, -1.0, 1.0), SAMPLING_RATE, format="FLAC", subtype=recording.subtype)
    return buffer.getvalue()
