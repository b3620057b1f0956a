"""Project processors of AudioFlamingo3, MusicFlamingo and the Qwen Omni thinkers: stock outputs, no cut, query_mask.

References: the stock transformers processors on the same tokenizer and feature extractor, and each stock
model's own length formula and placeholder check. The stock Omni processors need torchvision (their video
processor), which is not installed, so they are built without their image and video processors; their
audio and text paths (what is compared here) use neither.
"""

from __future__ import annotations

import copy
import functools
import inspect
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
import transformers

import speechprune
from speechprune.modeling.families import ADAPTERS
from speechprune.testing import (
    tiny_family_processor,
    tiny_family_with_processor,
    tiny_gemma4,
    tiny_gemma4_processor,
    tiny_voxtral,
    tiny_voxtral_processor,
)

FAMILIES = ("audioflamingo3", "musicflamingo", "qwen2_5_omni_thinker", "qwen3_omni_moe_thinker")
OTHERS = ("gemma4", "voxtral")  # their processors are older; the export test covers them too
PROMPT_ARGS = ("Which city was named?", ["Oslo", "Rome", "Lima", "Kyiv"])
# The stock processor's cap, in seconds (None: the stock processor keeps everything).
STOCK_CAP = {"audioflamingo3": 600, "musicflamingo": 1200, "qwen2_5_omni_thinker": 300, "qwen3_omni_moe_thinker": None}
# What the template writes for one audio item, and the tokens the stock processor turns it into.
OMNI_TOKENS = {
    "qwen2_5_omni_thinker": ("<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>"),
    "qwen3_omni_moe_thinker": ("<|audio_pad|>", "<|audio_start|>", "<|audio_end|>"),
}


@functools.cache
def _processor(family):
    return tiny_family_processor(family)


@functools.cache
def _model(family):
    return tiny_family_with_processor(family)[0]


@functools.cache
def _wave(seconds: float, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(round(seconds * 16000)) * 0.1).astype(np.float32)


def _stock(family):
    """The stock processor of ``family`` around the same feature extractor, tokenizer and chat template."""
    ours = _processor(family)
    if family == "audioflamingo3":
        return transformers.AudioFlamingo3Processor(ours.feature_extractor, ours.tokenizer, ours.chat_template)
    if family == "musicflamingo":
        return transformers.MusicFlamingoProcessor(ours.feature_extractor, ours.tokenizer, ours.chat_template)
    cls = {
        "qwen2_5_omni_thinker": transformers.Qwen2_5OmniProcessor,
        "qwen3_omni_moe_thinker": transformers.Qwen3OmniMoeProcessor,
    }[family]
    stock = object.__new__(cls)  # what its __init__ sets, less the image and video processors
    audio, bos, eos = OMNI_TOKENS[family]
    stock.feature_extractor, stock.tokenizer, stock.chat_template = ours.feature_extractor, ours.tokenizer, None
    stock.image_processor = stock.video_processor = None
    stock.audio_token, stock.audio_bos_token, stock.audio_eos_token = audio, bos, eos
    stock.image_token, stock.video_token = "<|image_unused|>", "<|video_unused|>"
    stock.audio_token_id = ours.tokenizer.convert_tokens_to_ids(audio)
    return stock


def _stock_call(family, prompts, waves):
    # the Omni processors pad the text only when asked; the audio keeps each processor's own padding
    out = _stock(family)(
        text=prompts, audio=waves, sampling_rate=16000, text_kwargs={"padding": True}, return_tensors="pt"
    )
    return {key: np.asarray(value) for key, value in out.items()}


def _mask_key(family):
    return "input_features_mask" if "flamingo" in family else "feature_attention_mask"


def _count(processor, row) -> int:
    return int(np.sum(np.asarray(row) == processor.audio_token_id))


def _formula_count(family, inputs) -> int:
    """One recording's audio tokens by the stock model's own length function, from the processor's frame masks."""
    mask = torch.as_tensor(np.asarray(inputs[_mask_key(family)])).long()
    if family == "qwen3_omni_moe_thinker":
        from transformers.models.qwen3_omni_moe.modeling_qwen3_omni_moe import _get_feat_extract_output_lengths

        return int(_get_feat_extract_output_lengths(mask.sum(-1)).sum())
    # The Flamingos: one row per 30 s window, each encoded alone; the Omni thinker: one row.
    return int(_model(family).model.audio_tower._get_feat_extract_output_lengths(mask.sum(-1))[1].sum())


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("seconds", [0.5, 30.0, 70.0])
def test_short_audio_gives_the_stock_ids_and_features(family, seconds):
    processor = _processor(family)
    prompt = processor.spiral_prompt(*PROMPT_ARGS)
    ours = processor(text=[prompt], audio=[_wave(seconds)], sampling_rate=16000, return_tensors="np")
    stock = _stock_call(family, [prompt], [_wave(seconds)])
    for key in ("input_ids", "attention_mask", "input_features", _mask_key(family)):
        np.testing.assert_array_equal(ours[key], stock[key], err_msg=key)
    assert _count(processor, ours["input_ids"][0]) == _formula_count(family, ours)


@pytest.mark.parametrize("family", FAMILIES)
def test_a_batch_gives_the_stock_rows(family):
    """Left padding and the rows: as the stock batch, except Qwen3-Omni's, which pads the audio of a batch."""
    processor = _processor(family)
    prompts = [processor.spiral_prompt(*PROMPT_ARGS), processor.spiral_prompt("Who?", ["a", "b"])]
    waves = [_wave(12.0, 1), _wave(41.0, 2)]
    ours = processor(text=prompts, audio=waves, sampling_rate=16000, return_tensors="np")
    stock = _stock_call(family, prompts, waves)
    np.testing.assert_array_equal(ours["input_ids"], stock["input_ids"])
    np.testing.assert_array_equal(ours["attention_mask"], stock["attention_mask"])
    if family != "qwen3_omni_moe_thinker":
        np.testing.assert_array_equal(ours["input_features"], stock["input_features"])
        return
    # The stock batch pads the 12 s recording's audio with silence, which changes its last frames; ours
    # featurizes each recording alone, as the stock processor does a recording given alone.
    for b, wave in enumerate(waves):
        alone = _stock_call(family, [prompts[b]], [wave])
        frames = alone["input_features"].shape[-1]
        np.testing.assert_array_equal(ours["input_features"][b, :, :frames], alone["input_features"][0])
        np.testing.assert_array_equal(ours["feature_attention_mask"][b, :frames], alone["feature_attention_mask"][0])
        assert not ours["feature_attention_mask"][b, frames:].any()


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_long_audio_is_kept_and_the_stock_model_takes_it(family):
    """A clip 10 s past the stock cap keeps every token, by the family's formula, and the stock forward takes them."""
    processor = _processor(family)
    seconds = (STOCK_CAP[family] or 300) + 10
    wave = _wave(seconds)
    prompt = processor.spiral_prompt(*PROMPT_ARGS)
    ours = processor(text=[prompt], audio=[wave], sampling_rate=16000, return_tensors="pt")
    count = _count(processor, ours["input_ids"][0])
    assert count == _formula_count(family, ours)
    assert count == round(seconds / speechprune.supported_families()[family]["seconds_per_token"])
    if "omni" in family:  # one extractor call: cheap enough to run the stock processor on the whole clip
        stock = _stock_call(family, [prompt], [wave])
        stock_count = _count(processor, stock["input_ids"][0])
        if STOCK_CAP[family] is None:
            assert stock_count == count  # Qwen3-Omni's stock processor does not cut
        else:
            assert stock_count == round(STOCK_CAP[family] / 0.04) < count  # the silent cut
            # The same features up to the cut; the stock's last frame sees the cut's edge (reflect padding).
            frames = stock["input_features"].shape[-1] - 1
            np.testing.assert_array_equal(
                ours["input_features"][..., :frames].numpy(), stock["input_features"][..., :frames]
            )
    model = speechprune.prune(_model(family), pruning_method="speechprune", pruning_rate=0.4)
    try:
        with torch.no_grad():
            out = model(**ours)  # the stock forward checks that the encoder's tokens fill the placeholders
    finally:
        speechprune.unprune(model)
    assert out.selection[0]["num_audio_tokens"] == count
    phase1 = speechprune.supported_families()[family]["phase1_tokens"]
    assert out.selection[0]["num_kept"] == round(0.6 * phase1)


@pytest.mark.parametrize("family", ["audioflamingo3", "musicflamingo"])
def test_the_stock_flamingo_processors_drop_windows_past_their_cap_and_ours_do_not(family):
    """The stock cap is ``max_audio_len`` (600 s / 1200 s by default); shown here with a 60 s cap on a 70 s clip."""
    stock_class = type(_stock(family))
    assert inspect.signature(stock_class).parameters["max_audio_len"].default == STOCK_CAP[family]
    processor = _processor(family)
    prompt = processor.spiral_prompt(*PROMPT_ARGS)
    wave = _wave(70.0)
    stock = stock_class(processor.feature_extractor, processor.tokenizer, processor.chat_template, max_audio_len=60)
    cut = stock(text=[prompt], audio=[wave], sampling_rate=16000, return_tensors="pt")
    ours = processor(text=[prompt], audio=[wave], sampling_rate=16000, return_tensors="np")
    assert (_count(processor, cut["input_ids"][0]), _count(processor, ours["input_ids"][0])) == (1500, 1750)
    np.testing.assert_array_equal(ours["input_features"][:2], cut["input_features"].numpy())  # then one more window


@pytest.mark.parametrize("family", FAMILIES)
def test_query_mask_is_spec_section_5(family):
    processor = _processor(family)
    prompt = processor.spiral_prompt(*PROMPT_ARGS)
    assert prompt.endswith("Kyiv\nAnswer with the letter of the correct option.<|im_end|>\n<|im_start|>assistant\n")
    for query, expected in [
        ("user_text", "Which city was named?A. OsloB. RomeC. LimaD. Kyiv"),
        ("question", "Which city was named?"),
    ]:
        out = processor(text=prompt, audio=_wave(3.0), sampling_rate=16000, query=query)
        ids = [i for i, keep in zip(out["input_ids"][0], out["query_mask"][0]) if keep]
        assert processor.tokenizer.decode(ids).replace("\n", "") == expected
    # A prompt spiral_prompt did not make: SPEC section 3's rule, everything after the audio up to <|im_end|>.
    own = prompt.replace("Answer with the letter of the correct option.", "Say it.")
    out = processor(text=own, audio=_wave(3.0), sampling_rate=16000)
    ids = [i for i, keep in zip(out["input_ids"][0], out["query_mask"][0]) if keep]
    assert processor.tokenizer.decode(ids) == "Which city was named?\nA. Oslo\nB. Rome\nC. Lima\nD. Kyiv\nSay it."


@pytest.mark.parametrize("family", FAMILIES)
def test_query_mask_is_the_models_fallback_rule_on_a_prompt_of_ones_own(family):
    """For a prompt spiral_prompt did not make, the processor's mask is what the model finds without one."""
    processor = _processor(family)
    prompt = processor.spiral_prompt(*PROMPT_ARGS).replace("Answer with the letter of the correct option.", "Say.")
    inputs = processor(text=[prompt, prompt[:-30] + prompt[-30:]], audio=[_wave(4.0), _wave(9.0)], sampling_rate=16000)
    model = speechprune.prune(_model(family))
    try:
        found = model._fallback_query_mask(torch.tensor(inputs["input_ids"]), torch.tensor(inputs["attention_mask"]))
    finally:
        speechprune.unprune(model)
    assert found.tolist() == inputs["query_mask"]


@pytest.mark.parametrize("family", FAMILIES)
def test_bad_input_is_refused(family):
    processor = _processor(family)
    prompt = processor.spiral_prompt(*PROMPT_ARGS)
    with pytest.raises(ValueError, match="but 2 recordings"):
        processor(text=prompt, audio=[_wave(1.0), _wave(1.0)], sampling_rate=16000)
    with pytest.raises(ValueError, match="sampling_rate must be 16000"):
        processor(text=prompt, audio=_wave(1.0), sampling_rate=8000)
    with pytest.raises(ValueError, match="too short for one audio token"):
        processor(text=prompt, audio=np.zeros(10, np.float32), sampling_rate=16000)


def test_token_count_rules_are_the_stock_ones():
    from transformers.models.qwen2_5_omni.processing_qwen2_5_omni import _get_feat_extract_output_lengths as qwen25
    from transformers.models.qwen3_omni_moe.processing_qwen3_omni_moe import _get_feat_extract_output_lengths as qwen3

    from speechprune.modeling.processing_speechprune_omni import (
        Qwen2_5OmniSpeechPruneProcessor,
        Qwen3OmniMoeSpeechPruneProcessor,
    )

    frames = np.arange(1, 4001)
    assert [Qwen2_5OmniSpeechPruneProcessor.token_count(int(n)) for n in frames] == qwen25(frames).tolist()
    assert [Qwen3OmniMoeSpeechPruneProcessor.token_count(int(n)) for n in frames] == qwen3(frames).tolist()


CHILD = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from transformers import AutoProcessor
    results = {}
    for family, folder in json.loads(sys.argv[1]).items():
        processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
        wave = (np.random.default_rng(0).standard_normal(16000 * 12) * 0.1).astype(np.float32)
        prompt = processor.spiral_prompt("Q?", ["a", "b", "c", "d"])
        out = processor(text=prompt, audio=wave, sampling_rate=16000, return_tensors="np")
        results[family] = {
            "class": type(processor).__name__, "module": type(processor).__module__, "query_default": processor.query,
            "ids": out["input_ids"][0].tolist(), "query": out["query_mask"][0].tolist(),
            "features": float(out["input_features"].astype(np.float64).sum()),
        }
    print(json.dumps({"results": results, "speechprune": any(m.split(".")[0] == "speechprune" for m in sys.modules)}))
    """
)


@functools.cache
def _other_family(family):
    """``(stock model, project processor)`` of Gemma 4 and Voxtral, whose tiny builders predate these."""
    if family == "gemma4":
        return tiny_gemma4()[0], tiny_gemma4_processor()
    return tiny_voxtral()[0], tiny_voxtral_processor()


def _stock_folder(family, folder):
    """A stock checkpoint folder: the tiny model and the stock processor's files (else extractor + tokenizer)."""
    model, processor = _other_family(family) if family in OTHERS else (_model(family), _processor(family))
    model.save_pretrained(folder)
    if "flamingo" in family:
        _stock(family).save_pretrained(folder)
    else:  # stock Omni / Gemma 4 processors need torchvision to save, Voxtral's mistral-common; their parts do not
        processor.feature_extractor.save_pretrained(folder)
        tokenizer = copy.deepcopy(processor.tokenizer)
        if processor.chat_template:
            tokenizer.chat_template = processor.chat_template
        tokenizer.save_pretrained(folder)
    return folder


@pytest.mark.slow
def test_export_writes_the_project_processor_and_autoprocessor_loads_it_offline(tmp_path):
    """export-model from a stock folder writes the family's project processor; a fresh offline process loads it."""
    from speechprune import cli

    folders = {}
    for family in FAMILIES + OTHERS:
        base = _stock_folder(family, tmp_path / "stock" / family)
        out = tmp_path / "repo" / family
        assert cli.main(["export-model", "--base", str(base), "--out", str(out), "--query", "question"]) == 0
        folders[family] = str(out)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules"), "PYTHONPATH": ""}
    result = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(folders)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=True,
    )
    child = json.loads(result.stdout.strip().splitlines()[-1])
    assert child["speechprune"] is False
    wave = (np.random.default_rng(0).standard_normal(16000 * 12) * 0.1).astype(np.float32)
    assert sorted(child["results"]) == sorted(FAMILIES + OTHERS)
    for family, got in child["results"].items():
        ours = _other_family(family)[1] if family in OTHERS else _processor(family)
        assert got["class"] == type(ours).__name__ and got["module"].startswith("transformers_modules.")
        assert got["query_default"] == "question"  # --query is the saved default
        out = ours(
            text=ours.spiral_prompt("Q?", ["a", "b", "c", "d"]), audio=wave, sampling_rate=16000, query="question"
        )
        assert got["ids"] == list(out["input_ids"][0])
        assert got["query"] == [bool(q) for q in out["query_mask"][0]]
        assert got["features"] == float(np.asarray(out["input_features"], dtype=np.float64).sum())
        card = (tmp_path / "repo" / family / "README.md").read_text()  # the card names the family's processor
        assert f"| processor (`AutoProcessor`) | `{type(ours).__name__}`: " in card
        assert ADAPTERS[family].name in card and "qwen2-audio" not in card.lower()


def test_docstring_examples():
    import doctest

    from speechprune.modeling import processing_speechprune_flamingo, processing_speechprune_omni

    for module in (processing_speechprune_flamingo, processing_speechprune_omni):
        assert doctest.testmod(module).failed == 0
