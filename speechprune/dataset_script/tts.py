"""Speech engines behind one small interface.

An engine turns one sentence into a mono float32 waveform at its own sampling rate and chooses a voice
for every speaker of a dialogue. Everything else (pauses, trimming, resampling to 24 kHz, loudness) is
engine-independent and lives in :mod:`speechprune.dataset_script.speech`.

- :class:`EspeakEngine` (``"espeak"``, audio_source ``espeak-ng``): the ``espeak-ng`` binary, offline and
  always available here. Deterministic: the same text and voice give the same samples.
- :class:`StyleTTS2Engine` (``"styletts2"``, audio_source ``styletts2``): the paper's engine, an optional
  plugin used when the ``styletts2`` package is installed, with the paper's settings (alpha 0.3, beta 0.7,
  10 diffusion steps, embedding scale 1.0) and the LibriTTS-R voice prompts named in ``prompts_used``.

Example:
    >>> engine = make_engine("espeak")
    >>> wave = engine.synthesize("Hello there.", "en-us+f2", seed=0)
    >>> wave.dtype, wave.ndim, engine.sampling_rate
    (dtype('float32'), 1, 22050)
"""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np
import soundfile as sf

from .records import SpiralRecord

# Chosen so that the mean duration of the 1,012 published dialogues lands near the paper's 87.89 s
# (measured on a full build; see docs/dataset.md). espeak-ng's own default is 175 words per minute.
DEFAULT_WORDS_PER_MINUTE = 150
ESPEAK_VOICES = {"F": ("f1", "f2", "f3", "f4"), "M": ("m1", "m2", "m3", "m4", "m5", "m6", "m7")}


def stable_unit(*parts: object) -> float:
    """A number in [0, 1) that depends only on ``parts`` (sha256), so choices never depend on run order.

    >>> stable_unit("lecture_0", "pause", 3) == stable_unit("lecture_0", "pause", 3)
    True
    """
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_voices(record: SpiralRecord, pools: dict[str, tuple[str, ...]]) -> dict[str, str]:
    """Give every speaker a voice of its gender, one per speaker, varied across dialogues.

    Each gender's pool is put in an order fixed by the dialogue id; the speakers of that gender (in order
    of first appearance) take voices from it in turn, so speakers of one gender differ while the pool
    lasts and the same dialogue always gets the same voices.

    Args:
        record: the dialogue (its ``id`` and ``genders``).
        pools: voices per gender, ``{"F": (...), "M": (...)}``.

    Returns:
        ``{speaker: voice}``.
    """
    ordered = {
        gender: sorted(pool, key=lambda voice, g=gender: stable_unit(record.id, "voice", g, voice))
        for gender, pool in pools.items()
    }
    used = {gender: 0 for gender in pools}
    voices = {}
    for speaker, gender in record.genders.items():
        pool = ordered[gender]
        voices[speaker] = pool[used[gender] % len(pool)]
        used[gender] += 1
    return voices


class TTSEngine(ABC):
    """A speech engine: one sentence in, one mono waveform out."""

    #: the ``audio_source`` value of rows made with this engine
    name: str
    #: sampling rate of :meth:`synthesize`'s output, in Hz
    sampling_rate: int

    @abstractmethod
    def voices(self, record: SpiralRecord) -> dict[str, str]:
        """The voice of every speaker of ``record``, deterministic in the record."""

    @abstractmethod
    def synthesize(self, text: str, voice: str, seed: int) -> np.ndarray:
        """Speak ``text`` with ``voice``; returns float32 samples, shape ``(num_samples,)``.

        ``seed`` fixes any randomness of the engine, so the same call gives the same samples.
        """

    @abstractmethod
    def settings(self) -> dict:
        """What determines the audio (engine, version, voices, rate): for the card and resume checks."""


class EspeakEngine(TTSEngine):
    """espeak-ng through its binary, WAV on stdout, read with soundfile.

    Voices are ``{language}+{variant}`` with the variants of :data:`ESPEAK_VOICES` (female f1-f4, male
    m1-m7); ``language`` is the record's ``metadata.language`` when given, else ``en-us``. The silent
    samples espeak-ng puts around each utterance are removed, so that pauses are set by the assembler.

    Args:
        words_per_minute: espeak-ng's ``-s`` speed.
        binary: the espeak-ng executable.
    """

    name = "espeak-ng"
    sampling_rate = 22050

    def __init__(self, words_per_minute: int = DEFAULT_WORDS_PER_MINUTE, binary: str = "espeak-ng"):
        if not 80 <= words_per_minute <= 450:
            raise ValueError(f"words_per_minute must be in [80, 450] (espeak-ng's range), got {words_per_minute}")
        resolved = shutil.which(binary)
        if resolved is None:
            raise RuntimeError(
                f"espeak-ng backend: the binary {binary!r} was not found; install it (apt-get install espeak-ng)"
            )
        self.binary = resolved
        self.words_per_minute = words_per_minute
        banner = subprocess.run([self.binary, "--version"], capture_output=True, text=True, check=True).stdout
        # "eSpeak NG text-to-speech: 1.51  Data at: ..." -> "espeak-ng 1.51"
        self.version = "espeak-ng " + banner.split(":", 1)[-1].split()[0] if ":" in banner else banner.strip()

    def voices(self, record: SpiralRecord) -> dict[str, str]:
        language = record.language or "en-us"
        return {speaker: f"{language}+{variant}" for speaker, variant in assign_voices(record, ESPEAK_VOICES).items()}

    def synthesize(self, text: str, voice: str, seed: int) -> np.ndarray:
        # the text goes on stdin so that a sentence starting with "-" is never read as an option
        proc = subprocess.run(
            [self.binary, "-v", voice, "-s", str(self.words_per_minute), "--stdout"],
            input=text.encode("utf-8"),
            capture_output=True,
            check=False,
        )
        if proc.returncode != 0 or not proc.stdout:
            raise RuntimeError(f"espeak-ng failed on voice {voice!r}: {proc.stderr.decode(errors='replace')[:300]}")
        samples, rate = sf.read(io.BytesIO(proc.stdout), dtype="int16")
        if rate != self.sampling_rate:
            raise RuntimeError(f"espeak-ng produced {rate} Hz audio, expected {self.sampling_rate}")
        if samples.ndim != 1:
            samples = samples[:, 0]
        voiced = np.flatnonzero(samples)
        if voiced.size == 0:
            return np.zeros(0, dtype=np.float32)
        samples = samples[voiced[0] : voiced[-1] + 1]
        return samples.astype(np.float32) / 32768.0

    def settings(self) -> dict:
        return {
            "engine": self.name,
            "version": self.version,
            "words_per_minute": self.words_per_minute,
            "voices": {gender: list(pool) for gender, pool in ESPEAK_VOICES.items()},
        }


class StyleTTS2Engine(TTSEngine):
    """StyleTTS 2 through the ``styletts2`` package, with the paper's settings (appendix B).

    Each speaker is voiced by its LibriTTS-R prompt: the file named by the basename of its
    ``prompts_used`` entry (e.g. ``8975_F.wav``) under ``voice_prompts``. Diffusion noise is seeded per
    sentence, so a build is repeatable on the same hardware and library versions.

    Args:
        voice_prompts: folder holding the prompt wavs.
        alpha, beta, diffusion_steps, embedding_scale: StyleTTS 2 inference settings (paper defaults).
    """

    name = "styletts2"
    sampling_rate = 24000

    def __init__(
        self,
        voice_prompts: str | Path | None,
        alpha: float = 0.3,
        beta: float = 0.7,
        diffusion_steps: int = 10,
        embedding_scale: float = 1.0,
    ):
        try:
            from styletts2 import tts as styletts2_tts
        except ImportError as err:
            raise RuntimeError(
                "the styletts2 backend needs the optional `styletts2` package (pip install styletts2) and its "
                "checkpoint; it is not installed here. Use --tts espeak (the default) or install it."
            ) from err
        if voice_prompts is None or not Path(voice_prompts).is_dir():
            raise ValueError(
                f"voice_prompts must be a folder of LibriTTS-R prompt wavs named as in prompts_used "
                f"(e.g. 8975_F.wav) for the styletts2 backend, got {voice_prompts!r}"
            )
        self.voice_prompts = Path(voice_prompts)
        self.alpha, self.beta = alpha, beta
        self.diffusion_steps, self.embedding_scale = diffusion_steps, embedding_scale
        self._model = styletts2_tts.StyleTTS2()
        self._styles: dict[str, object] = {}

    def voices(self, record: SpiralRecord) -> dict[str, str]:
        voices = {}
        for speaker, prompt in record.prompts.items():
            path = self.voice_prompts / Path(prompt).name
            if not path.is_file():
                raise RuntimeError(f"voice prompt {path} of {record.id}/{speaker} not found")
            voices[speaker] = str(path)
        return voices

    def synthesize(self, text: str, voice: str, seed: int) -> np.ndarray:
        import torch

        if voice not in self._styles:
            self._styles[voice] = self._model.compute_style(voice)
        torch.manual_seed(seed)
        wave = self._model.inference(
            text,
            ref_s=self._styles[voice],
            alpha=self.alpha,
            beta=self.beta,
            diffusion_steps=self.diffusion_steps,
            embedding_scale=self.embedding_scale,
        )
        return np.asarray(wave, dtype=np.float32).reshape(-1)

    def settings(self) -> dict:
        return {
            "engine": self.name,
            "alpha": self.alpha,
            "beta": self.beta,
            "diffusion_steps": self.diffusion_steps,
            "embedding_scale": self.embedding_scale,
            "voice_prompts": "LibriTTS-R prompts named in prompts_used",
        }


def make_engine(name: str, words_per_minute: int = DEFAULT_WORDS_PER_MINUTE, voice_prompts=None) -> TTSEngine:
    """Build the engine called ``name`` (``"espeak"`` or ``"styletts2"``)."""
    if name == "espeak":
        return EspeakEngine(words_per_minute=words_per_minute)
    if name == "styletts2":
        return StyleTTS2Engine(voice_prompts)
    raise ValueError(f"tts must be 'espeak' or 'styletts2', got {name!r}")
