"""The one check every project processor runs on its ``audio`` argument (numpy only).

A recording is a 1-D array of 16 kHz mono samples: float in [-1, 1] as ``datasets`` and
``soundfile`` decode it, or integer PCM. Integer PCM is scaled the way ``soundfile`` reads a PCM
file as float, ``sample / 2 ** (bits - 1)``: int16 divided by 32768, int32 by 2147483648 (so
full scale maps to [-1, 1)); computing features on the raw integers would give confident but
wrong answers. Other integer widths (int8, int64, unsigned) are refused, because no common
reader produces them and their scale is a guess.

Example:
    >>> import numpy as np
    >>> [w.tolist() for w in check_recordings(np.array([-32768, 0, 16384], dtype=np.int16), 16000)]
    [[-1.0, 0.0, 0.5]]
"""

from __future__ import annotations

import numpy as np

SAMPLING_RATE = 16000

# dtype -> the divisor that maps its full scale to [-1, 1), as soundfile's float reads do.
_PCM_SCALE = {np.dtype(np.int16): 2.0**15, np.dtype(np.int32): 2.0**31}


def is_one_recording(audio) -> bool:
    """True for a single waveform (1-D array-like of numbers), False for a list of them."""
    if hasattr(audio, "ndim"):
        return audio.ndim == 1
    return len(audio) > 0 and np.isscalar(audio[0])


def to_float32(wave: np.ndarray, name: str) -> np.ndarray:
    """``wave`` as float32 samples in [-1, 1]: floats as they are, int16 / int32 PCM scaled; others refused."""
    if wave.dtype in _PCM_SCALE:
        return (wave.astype(np.float64) / _PCM_SCALE[wave.dtype]).astype(np.float32)
    if np.issubdtype(wave.dtype, np.integer) or wave.dtype == np.bool_:
        raise ValueError(
            f"{name} has dtype {wave.dtype}: give float samples in [-1, 1] or int16 / int32 PCM "
            "(scaled by 2**15 / 2**31 as soundfile does); other integer widths have no agreed scale"
        )
    if not np.issubdtype(wave.dtype, np.floating):
        raise ValueError(f"{name} must hold real numbers, got dtype {wave.dtype}")
    return wave.astype(np.float32)


def check_recordings(audio, sampling_rate: int | None) -> list[np.ndarray]:
    """The recordings as float32 1-D arrays; refuse a wrong rate, non-mono, non-finite or odd-integer audio.

    Args:
        audio: one 1-D array (numpy, torch or a list of numbers) or a list of them.
        sampling_rate: must be 16000; audio is never resampled silently.
    """
    if sampling_rate != SAMPLING_RATE:
        raise ValueError(
            f"sampling_rate must be {SAMPLING_RATE} (got {sampling_rate!r}): resample the audio to 16 kHz first, "
            "for example with datasets' Audio(sampling_rate=16000) feature; it is never resampled silently"
        )
    items = [audio] if is_one_recording(audio) else list(audio)
    recordings = []
    for i, item in enumerate(items):
        if hasattr(item, "detach"):  # a torch tensor
            item = item.detach().cpu().numpy()
        wave = np.asarray(item)
        if wave.ndim != 1:
            raise ValueError(f"audio[{i}] must be a mono 1-D array of samples, got shape {wave.shape}")
        wave = to_float32(wave, f"audio[{i}]")
        if not np.isfinite(wave).all():
            raise ValueError(f"audio[{i}] contains NaN or inf samples")
        recordings.append(wave)
    return recordings


__all__ = ["SAMPLING_RATE", "check_recordings", "is_one_recording", "to_float32"]
