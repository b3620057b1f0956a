"""Integer PCM reaches the features scaled as soundfile reads it as float; odd integer widths are refused."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile

from speechprune.modeling.audio_input import check_recordings
from speechprune.testing import tiny_speechprune


@pytest.fixture(scope="module")
def processor():
    return tiny_speechprune()[1]


def _pcm_file(wave: np.ndarray, subtype: str) -> io.BytesIO:
    buffer = io.BytesIO()
    soundfile.write(buffer, wave, 16000, format="WAV", subtype=subtype)
    buffer.seek(0)
    return buffer


@pytest.mark.parametrize("subtype, dtype", [("PCM_16", "int16"), ("PCM_32", "int32")])
def test_integer_pcm_gives_the_features_of_soundfiles_float_read(processor, subtype, dtype):
    rng = np.random.default_rng(0)
    wave = np.clip(rng.normal(0, 0.3, 16000 * 3), -1, 1)
    as_int, _ = soundfile.read(_pcm_file(wave, subtype), dtype=dtype)
    as_float, _ = soundfile.read(_pcm_file(wave, subtype), dtype="float32")
    assert as_int.dtype == np.dtype(dtype) and np.abs(as_int).max() > 1000  # really raw integers
    prompt = processor.spiral_prompt("Who?", ["a", "b", "c", "d"])
    from_int = processor(text=prompt, audio=as_int, sampling_rate=16000, return_tensors="np")
    from_float = processor(text=prompt, audio=as_float, sampling_rate=16000, return_tensors="np")
    np.testing.assert_array_equal(from_int["input_features"], from_float["input_features"])
    np.testing.assert_array_equal(check_recordings(as_int, 16000)[0], as_float)


def test_full_scale_pcm_maps_to_minus_one_and_just_under_one():
    for dtype in (np.int16, np.int32):
        info = np.iinfo(dtype)
        (scaled,) = check_recordings(np.array([info.min, 0, info.max], dtype=dtype), 16000)
        assert scaled[0] == -1.0 and scaled[1] == 0.0 and 0.9999 < scaled[2] <= 1.0


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.uint16, np.int64, np.bool_])
def test_other_integer_widths_are_refused(processor, dtype):
    with pytest.raises(ValueError, match="int16 / int32 PCM"):
        processor(text="<|audio_bos|><|AUDIO|><|audio_eos|>", audio=np.zeros(16000, dtype=dtype), sampling_rate=16000)


def test_docstring_example():
    import doctest

    from speechprune.modeling import audio_input

    assert doctest.testmod(audio_input).failed == 0
