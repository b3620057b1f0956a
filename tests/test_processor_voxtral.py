"""VoxtralSpeechPruneProcessor: the stock chunked features, 375 tokens per chunk, query_mask, the [voxtral] extra."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import types

import numpy as np
import pytest
import torch
from transformers.models.voxtral.processing_voxtral import VoxtralProcessor

from speechprune.modeling.processing_speechprune_voxtral import (
    VoxtralSpeechPruneProcessor,
    audio_token_count,
    mistral_common_available,
)
from speechprune.testing import tiny_voxtral, tiny_voxtral_processor

PROMPT_ARGS = ("Which city was named?", ["Oslo", "Rome", "Lima", "Kyiv"])


@pytest.fixture(scope="module")
def processor():
    return tiny_voxtral_processor()


@pytest.fixture(scope="module")
def model():
    return tiny_voxtral()[0]


def _wave(seconds: float, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(round(seconds * 16000)) * 0.1).astype(np.float32)


@pytest.mark.parametrize("seconds", [0.5, 30.0, 30.01, 70.0])
def test_token_count_is_what_the_stock_model_makes_of_the_features(processor, model, seconds):
    wave = _wave(seconds)
    inputs = processor(text=processor.spiral_prompt(*PROMPT_ARGS), audio=wave, sampling_rate=16000)
    stock = VoxtralProcessor._retrieve_input_features(
        types.SimpleNamespace(feature_extractor=processor.feature_extractor),
        [wave],
        3000,
        sampling_rate=16000,
        padding=True,
        truncation=False,
        pad_to_multiple_of=480000,
        return_tensors="pt",
    )
    np.testing.assert_array_equal(inputs["input_features"], stock.numpy())
    with torch.no_grad():
        rows = model.get_audio_features(torch.from_numpy(inputs["input_features"])).pooler_output
    count = inputs["input_ids"][0].count(processor.audio_token_id)
    assert count == rows.shape[0] == audio_token_count(len(wave))


def test_token_count_rule():
    assert [audio_token_count(n) for n in (1, 480000, 480001, 960000, 960001)] == [375, 375, 750, 750, 1125]
    with pytest.raises(ValueError):
        audio_token_count(0)


def test_piecewise_tokenization_equals_the_whole_string(processor):
    # The control tokens are special in the tiny tokenizer, so tokenizing the whole string splits there too.
    prompt = processor.spiral_prompt(*PROMPT_ARGS).replace("[AUDIO]", "[AUDIO]" * 5)
    ids, offsets = processor._encode(prompt)
    assert ids == processor.tokenizer(prompt, add_special_tokens=False)["input_ids"]
    assert "".join(prompt[s:e] for s, e in offsets) == prompt


def test_query_mask_is_spec_section_5(processor):
    prompt = processor.spiral_prompt(*PROMPT_ARGS)
    assert prompt.startswith("<s>[INST][BEGIN_AUDIO][AUDIO]Which city") and prompt.endswith("option.[/INST]")
    for query, expected in [
        ("user_text", "Which city was named?A. OsloB. RomeC. LimaD. Kyiv"),
        ("question", "Which city was named?"),
    ]:
        out = processor(text=prompt, audio=_wave(3), sampling_rate=16000, query=query)
        ids = [i for i, keep in zip(out["input_ids"][0], out["query_mask"][0]) if keep]
        assert processor.tokenizer.decode(ids).replace("\n", "") == expected


def test_batch_rows_equal_single_processing_and_feed_the_model(processor, model):
    prompt = processor.spiral_prompt(*PROMPT_ARGS)
    waves = [_wave(40, 1), _wave(4, 2)]
    batch = processor(text=[prompt, prompt], audio=waves, sampling_rate=16000, return_tensors="pt")
    chunks = 0
    for b, wave in enumerate(waves):
        one = processor(text=prompt, audio=wave, sampling_rate=16000, return_tensors="pt")
        length = one["input_ids"].shape[1]
        for key in ("input_ids", "query_mask", "attention_mask"):
            assert torch.equal(batch[key][b, -length:], one[key][0])
        assert not batch["attention_mask"][b, :-length].any()
        n = one["input_features"].shape[0]
        assert torch.equal(batch["input_features"][chunks : chunks + n], one["input_features"])
        chunks += n
    inputs = {k: v for k, v in batch.items() if k != "query_mask"}
    with torch.no_grad():  # the stock forward checks that the audio rows fill the placeholders exactly
        assert torch.isfinite(model(**inputs).logits).all()


BLOCKED = textwrap.dedent(
    """
    import sys
    sys.modules["mistral_common"] = None  # as if the extra were not installed
    from speechprune.modeling.processing_speechprune_voxtral import VoxtralSpeechPruneProcessor
    try:
        VoxtralSpeechPruneProcessor.from_pretrained(sys.argv[1])
    except ImportError as err:
        print("ImportError:", err)
    """
)


def _tekken_folder(processor, tmp_path):
    """A saved processor whose tokenizer is a Tekken file (the format of Voxtral's checkpoints)."""
    processor.save_pretrained(tmp_path)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (tmp_path / name).unlink()
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "MistralCommonBackend"}))
    return tmp_path


def test_missing_extra_is_named(processor, tmp_path):
    folder = _tekken_folder(processor, tmp_path)
    (folder / "tekken.json").write_text("{}")
    result = subprocess.run(
        [sys.executable, "-c", BLOCKED, str(folder)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert "ImportError: Voxtral's tokenizer needs the mistral-common package" in result.stdout
    assert 'pip install "speechprune[voxtral]"' in result.stdout


@pytest.mark.skipif(not mistral_common_available(), reason="needs the [voxtral] extra (mistral-common)")
def test_text_layout_matches_mistral_common(processor, tmp_path):
    # mistral-common ships Tekken files without audio tokens; the text layout of one user message is
    # what its own instruct encoding gives.
    import mistral_common
    from mistral_common.protocol.instruct.messages import UserMessage
    from mistral_common.protocol.instruct.request import ChatCompletionRequest
    from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

    tekken = os.path.join(os.path.dirname(mistral_common.__file__), "data", "tekken_240911.json")
    folder = _tekken_folder(processor, tmp_path)
    shutil.copy(tekken, folder / "tekken.json")
    loaded = VoxtralSpeechPruneProcessor.from_pretrained(folder)
    assert type(loaded.tokenizer).__name__ == "MistralCommonBackend"
    user = "Which city was named?\nA. Oslo\nB. Rome\nC. Lima\nD. Kyiv\nAnswer with the letter of the correct option."
    ours = loaded(text=f"<s>[INST]{user}[/INST]")["input_ids"][0]
    request = ChatCompletionRequest(messages=[UserMessage(content=user)])
    assert ours == MistralTokenizer.from_file(tekken).encode_chat_completion(request).tokens


def test_docstring_examples():
    import doctest

    from speechprune.modeling import processing_speechprune_voxtral

    assert doctest.testmod(processing_speechprune_voxtral).failed == 0
