"""Gemma4SpeechPruneProcessor: stock features and counts up to 30 s, an error beyond, query_mask, remote code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import types

import numpy as np
import pytest
import torch
from transformers import Gemma4AudioFeatureExtractor, Gemma4Processor

from speechprune.modeling.processing_speechprune_gemma4 import clip_token_count
from speechprune.testing import tiny_gemma4, tiny_gemma4_processor

PROMPT_ARGS = ("Which city was named?", ["Oslo", "Rome", "Lima", "Kyiv"])


@pytest.fixture(scope="module")
def processor():
    return tiny_gemma4_processor()


def _wave(seconds: float, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(round(seconds * 16000)) * 0.1).astype(np.float32)


def _stock_self(processor):
    """The attributes the stock Gemma4Processor's audio methods read, without its image and video parts."""
    return types.SimpleNamespace(
        feature_extractor=processor.feature_extractor,
        audio_seq_length=750,
        boa_token=processor.boa_token,
        eoa_token=processor.eoa_token,
        audio_token=processor.audio_token,
    )


@pytest.mark.parametrize("seconds", [0.3, 7.0, 29.99, 30.0])
def test_features_and_counts_are_the_stock_ones(processor, seconds):
    wave = _wave(seconds)
    ours = processor(text=processor.spiral_prompt(*PROMPT_ARGS), audio=wave, sampling_rate=16000)
    stock = Gemma4AudioFeatureExtractor()([wave], sampling_rate=16000, return_tensors="np")
    np.testing.assert_array_equal(ours["input_features"], stock["input_features"])
    np.testing.assert_array_equal(ours["input_features_mask"], stock["input_features_mask"].astype(bool))
    fake = _stock_self(processor)
    replacement = Gemma4Processor.replace_audio_token(fake, stock, 0)
    count = replacement.count(processor.audio_token)
    assert count == Gemma4Processor._compute_audio_num_tokens(fake, wave, 16000)
    assert sum(1 for i in ours["input_ids"][0] if i == processor.audio_token_id) == count
    assert clip_token_count(stock["input_features_mask"][0]) == count
    text = processor.tokenizer.decode(ours["input_ids"][0])
    assert replacement in text  # <|audio> + the soft tokens + <audio|>, as the stock processor writes them


def test_a_clip_over_30_s_is_an_error_where_the_stock_extractor_cuts(processor):
    wave = _wave(45)
    stock = Gemma4AudioFeatureExtractor()
    cut = stock([wave], sampling_rate=16000, return_tensors="np")["input_features"]
    first = stock([wave[: 30 * 16000]], sampling_rate=16000, return_tensors="np")["input_features"]
    np.testing.assert_array_equal(cut, first)  # the silent cut this processor refuses
    with pytest.raises(ValueError, match=r"45\.00 s, but Gemma 4 takes at most 30 s per clip"):
        processor(text=processor.spiral_prompt(*PROMPT_ARGS), audio=wave, sampling_rate=16000)


def test_query_mask_is_spec_section_5(processor):
    prompt = processor.spiral_prompt(*PROMPT_ARGS)
    assert prompt.endswith("Answer with the letter of the correct option.<turn|>\n<|turn>model\n")
    tokenizer = processor.tokenizer
    for query, expected in [
        ("user_text", "Which city was named?A. OsloB. RomeC. LimaD. Kyiv"),
        ("question", "Which city was named?"),
    ]:
        out = processor(text=prompt, audio=_wave(3), sampling_rate=16000, query=query)
        ids = [i for i, keep in zip(out["input_ids"][0], out["query_mask"][0]) if keep]
        assert tokenizer.decode(ids).replace("\n", "") == expected


def test_batch_rows_equal_single_processing(processor):
    prompt = processor.spiral_prompt(*PROMPT_ARGS)
    waves = [_wave(30, 1), _wave(4, 2)]
    batch = processor(text=[prompt, prompt], audio=waves, sampling_rate=16000, return_tensors="np")
    for b, wave in enumerate(waves):
        one = processor(text=prompt, audio=wave, sampling_rate=16000, return_tensors="np")
        length = one["input_ids"].shape[1]
        for key in ("input_ids", "query_mask"):
            np.testing.assert_array_equal(batch[key][b, -length:], one[key][0])
        assert not batch["attention_mask"][b, :-length].any()
        frames = one["input_features"].shape[1]
        np.testing.assert_array_equal(batch["input_features"][b, :frames], one["input_features"][0])
        assert not batch["input_features_mask"][b, frames:].any()


def test_outputs_feed_the_stock_model(processor):
    # The stock forward checks that its encoder's valid tokens fill the placeholders exactly.
    model, _ = tiny_gemma4()
    prompt = processor.spiral_prompt(*PROMPT_ARGS)
    inputs = processor(text=[prompt, prompt], audio=[_wave(30), _wave(2.5)], sampling_rate=16000, return_tensors="pt")
    inputs.pop("query_mask")
    with torch.no_grad():
        logits = model(**inputs).logits
    assert logits.shape[:2] == inputs["input_ids"].shape and torch.isfinite(logits).all()


def test_placeholder_and_clip_counts_must_agree(processor):
    with pytest.raises(ValueError, match="holds 1 <\\|audio\\|> but 2 recordings"):
        processor(text=processor.spiral_prompt(*PROMPT_ARGS), audio=[_wave(1), _wave(1)], sampling_rate=16000)
    with pytest.raises(ValueError, match="no audio was given"):
        processor(text=processor.spiral_prompt(*PROMPT_ARGS))


CHILD = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from transformers import AutoProcessor
    processor = AutoProcessor.from_pretrained(sys.argv[1], trust_remote_code=True)
    wave = (np.random.default_rng(0).standard_normal(16000 * 12) * 0.1).astype(np.float32)
    out = processor(text=processor.spiral_prompt("Q?", ["a", "b", "c", "d"]), audio=wave, sampling_rate=16000)
    print(json.dumps({"module": type(processor).__module__, "speechprune": "speechprune" in sys.modules,
                      "ids": [int(i) for i in out["input_ids"][0]], "query": [bool(q) for q in out["query_mask"][0]],
                      "features": float(np.asarray(out["input_features"]).sum())}))
    """
)


def test_remote_code_round_trip_in_a_fresh_offline_process(processor, tmp_path):
    processor.save_pretrained(tmp_path)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules")}
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path)], capture_output=True, text=True, env=env, cwd=tmp_path, check=True
    )
    child = json.loads(result.stdout.strip().splitlines()[-1])
    assert child["module"].startswith("transformers_modules.") and not child["speechprune"]
    wave = (np.random.default_rng(0).standard_normal(16000 * 12) * 0.1).astype(np.float32)
    ours = processor(text=processor.spiral_prompt("Q?", ["a", "b", "c", "d"]), audio=wave, sampling_rate=16000)
    assert child["ids"] == [int(i) for i in ours["input_ids"][0]]
    assert child["query"] == [bool(q) for q in ours["query_mask"][0]]
    assert child["features"] == pytest.approx(float(np.asarray(ours["input_features"]).sum()), rel=0, abs=0)


def test_docstring_example():
    import doctest

    from speechprune.modeling import processing_speechprune_gemma4

    assert doctest.testmod(processing_speechprune_gemma4).failed == 0
