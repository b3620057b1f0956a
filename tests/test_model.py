"""Qwen2AudioSpeechPruneForConditionalGeneration against the stock model and independent computations.

The most important property comes first: with pruning off the model is the stock model bit for
bit. The pruned path is then checked against a reference built from the stock model's own
pieces: the merged embeddings the stock forward hands its language model (captured by a hook),
the kept positions chosen by calling ``pruning.py`` directly, and the stock language model and
head run on what is left.
"""

import doctest
import importlib

import numpy as np
import pytest
import torch

from speechprune.modeling import pruning
from speechprune.modeling.configuration_speechprune import SpeechPruneConfig
from speechprune.modeling.families import ADAPTERS
from speechprune.modeling.modeling_speechprune import Qwen2AudioSpeechPruneForConditionalGeneration
from speechprune.testing import tiny_family, tiny_family_inputs, tiny_qwen2_audio, tiny_speechprune

SR = 16000
QUESTION = "What did the speaker say about the project?"
CHOICES = ["It failed", "It was late", "It won", "It ended"]
METHODS = ["speechprune", "phase1", "phase2", "random", "crop", "original"]


def wave(seconds: float, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(int(seconds * SR)) * 0.1).astype(np.float32)


@pytest.fixture(scope="module")
def tiny():
    return tiny_speechprune(seed=0)


@pytest.fixture(scope="module")
def model(tiny):
    return tiny[0]


@pytest.fixture(scope="module")
def processor(tiny):
    return tiny[1]


@pytest.fixture(scope="module")
def stock():
    return tiny_qwen2_audio(seed=0)[0]


@pytest.fixture(scope="module")
def prompt(processor):
    return processor.spiral_prompt(QUESTION, CHOICES)


def encode(processor, prompts, waves, **kwargs):
    return processor(text=prompts, audio=waves, sampling_rate=SR, return_tensors="pt", **kwargs)


_CACHE = {}


def spiral_inputs(processor, *recordings):
    """SPIRAL-prompt inputs for a batch of ``(seconds, seed)`` recordings, built once per test module.

    Tests must not modify them in place (use :func:`encode` for inputs a test changes).
    """
    if recordings not in _CACHE:
        prompt = processor.spiral_prompt(QUESTION, CHOICES)
        waves = [wave(seconds, seed) for seconds, seed in recordings]
        _CACHE[recordings] = encode(processor, [prompt] * len(waves), waves)
    return _CACHE[recordings]


def stock_inputs(inputs):
    return {k: v for k, v in inputs.items() if k != "query_mask"}


def greedy(model, inputs, n=6, **kwargs):
    return model.generate(**inputs, max_new_tokens=n, do_sample=False, **kwargs)


def captured_embeds(stock, inputs) -> torch.Tensor:
    """The merged text + audio embeddings the stock forward gives its language model (cached per inputs)."""
    key = ("embeds", id(inputs))
    if key not in _CACHE:
        _CACHE[key] = _capture(stock, inputs)
    return _CACHE[key]


def _capture(stock, inputs) -> torch.Tensor:
    captured = {}
    hook = stock.model.language_model.register_forward_pre_hook(
        lambda module, args, kwargs: captured.update(kwargs), with_kwargs=True
    )
    try:
        with torch.no_grad():
            stock(**stock_inputs(inputs))
    finally:
        hook.remove()
    return captured["inputs_embeds"]


def stock_lm_logits(stock, embeds: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        hidden = stock.model.language_model(inputs_embeds=embeds).last_hidden_state
        return stock.lm_head(hidden)


# ------------------------------------------------------------------------------------------------
# Pruning off: the stock model, bit for bit


def test_tiny_speechprune_has_the_stock_weights(model, stock):
    ours, theirs = model.state_dict(), stock.state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)
    assert isinstance(model, Qwen2AudioSpeechPruneForConditionalGeneration)


@pytest.mark.parametrize("seconds", [12, 45])
def test_full_is_the_stock_model_bit_for_bit(model, stock, processor, seconds):
    inputs = spiral_inputs(processor, (seconds, seconds))
    with torch.no_grad():
        ours = model(**inputs, pruning_method="full")
        theirs = stock(**stock_inputs(inputs))
    assert torch.equal(ours.logits, theirs.logits)
    assert torch.equal(ours.pruned_input_ids, inputs.input_ids)
    n = int((inputs.input_ids == model.config.audio_token_id).sum())
    assert model.last_selection[0]["num_kept"] == model.last_selection[0]["num_audio_tokens"] == n
    assert torch.equal(greedy(model, inputs, pruning_method="full"), greedy(stock, stock_inputs(inputs)))


def test_full_without_attention_mask_is_the_stock_model(model, stock, processor):
    """The stock model accepts ``attention_mask=None``; ``full`` must hand it on and still record every token."""
    inputs = spiral_inputs(processor, (45, 45))
    no_mask = {k: inputs[k] for k in ("input_ids", "input_features", "feature_attention_mask")}
    with torch.no_grad():
        assert torch.equal(model(**no_mask, pruning_method="full").logits, stock(**no_mask).logits)
    assert model.last_selection[0]["num_kept"] == int((inputs.input_ids == model.config.audio_token_id).sum())
    assert torch.equal(greedy(model, no_mask, n=3, pruning_method="full"), greedy(stock, no_mask, n=3))


def test_none_is_full_and_full_is_the_default():
    model, processor = tiny_speechprune(seed=0, pruning_method="none")
    stock = tiny_qwen2_audio(seed=0)[0]
    inputs = spiral_inputs(processor, (12, 12))
    with torch.no_grad():
        assert torch.equal(model(**inputs).logits, stock(**stock_inputs(inputs)).logits)
    assert tiny_speechprune(seed=0)[0].config.pruning_method == "full"


def test_full_batched_matches_single_within_tolerance(model, stock, processor):
    batch = spiral_inputs(processor, (45, 1), (20, 2))
    with torch.no_grad():
        batched = model(**batch, pruning_method="full").logits[:, -1]
    out = greedy(model, batch, n=3, pruning_method="full")
    for j, recording in enumerate([(45, 1), (20, 2)]):
        single = spiral_inputs(processor, recording)
        with torch.no_grad():
            alone = stock(**stock_inputs(single)).logits[0, -1]
        torch.testing.assert_close(batched[j], alone, rtol=0, atol=1e-5)
        new = out[j, batch.input_ids.shape[1] :]
        assert torch.equal(new, greedy(stock, stock_inputs(single), n=3)[0, single.input_ids.shape[1] :])


def test_rate_zero_on_short_audio_is_the_stock_model(model, stock, processor):
    inputs = spiral_inputs(processor, (20, 3))  # 500 tokens <= 750
    with torch.no_grad():
        theirs = stock(**stock_inputs(inputs)).logits
        for method in ("speechprune", "phase1", "phase2", "original"):
            ours = model(**inputs, pruning_method=method, pruning_rate=0.0)
            assert model.last_selection[0]["num_kept"] == 500
            assert torch.equal(ours.logits, theirs), method
    generated = greedy(model, inputs, pruning_method="speechprune", pruning_rate=0.0)
    assert torch.equal(generated, greedy(stock, stock_inputs(inputs)))


# ------------------------------------------------------------------------------------------------
# The pruned path against a reference built from stock pieces


def reference_selection(model, stock, inputs, method, rate, sample_id="0") -> list[torch.Tensor]:
    """Kept indices per span of sample 0, from the stock merged embeddings and pruning.py called directly."""
    embeds = captured_embeds(stock, inputs)[0]
    ids = inputs.input_ids[0]
    is_audio = (ids == model.config.audio_token_id).int()
    edges = torch.cat([torch.zeros(1, dtype=torch.int), is_audio, torch.zeros(1, dtype=torch.int)]).diff()
    starts, ends = (edges == 1).nonzero().flatten(), (edges == -1).nonzero().flatten()
    text = stock.get_input_embeddings().weight.detach()[ids[inputs.query_mask[0]]]
    attention = stock.model.language_model.layers[0].self_attn
    w_q, w_k = attention.q_proj.weight.detach(), attention.k_proj.weight.detach()
    kept = []
    for j, (start, end) in enumerate(zip(starts.tolist(), ends.tolist())):
        audio = embeds[start:end]
        n = end - start
        k2 = pruning.final_count(n, rate)
        seed = pruning.sample_seed(0, sample_id if j == 0 else f"{sample_id}/{j}")
        if method == "speechprune":
            kept.append(pruning.speechprune_select(audio, text, w_q, w_k, rate, head_dim=16))
        elif method == "phase1":
            kept.append(pruning.phase1_select(audio, text, k2))
        elif method == "phase2":
            scores = pruning.token_scores(audio, text)
            kept.append(pruning.phase2_select(audio, w_q, w_k, k2, head_dim=16, tie_break=scores))
        elif method == "random":
            kept.append(pruning.random_select(n, k2, seed))
        elif method == "crop":
            kept.append(pruning.crop_select(n, k2, seed))
        else:
            kept.append(torch.arange(min(n, 750)))
    return kept


@pytest.mark.parametrize("method, rate", [("speechprune", 0.4), ("phase1", 0.2), ("phase2", 0.6), ("random", 0.2)])
def test_pruned_forward_matches_the_stock_language_model_on_the_kept_positions(model, stock, processor, method, rate):
    inputs = spiral_inputs(processor, (45, 4))
    with torch.no_grad():
        out = model(**inputs, pruning_method=method, pruning_rate=rate)
    (expected,) = reference_selection(model, stock, inputs, method, rate)
    record = model.last_selection[0]
    assert torch.equal(record["kept"], expected)
    assert record["num_audio_tokens"] == 1125 and record["num_kept"] == pruning.final_count(1125, rate)
    torch.testing.assert_close(record["times"], expected.double().mul(0.04).float(), rtol=0, atol=0)
    # Keep the text and the selected placeholders, drop the rest, and run the stock LM on that.
    ids = inputs.input_ids[0]
    start = int((ids == model.config.audio_token_id).nonzero()[0])
    keep = ids != model.config.audio_token_id
    keep[start + expected] = True
    embeds = captured_embeds(stock, inputs)[:, keep]
    assert torch.equal(out.pruned_input_ids[0], ids[keep])
    assert out.logits.shape[1] == int(keep.sum())
    torch.testing.assert_close(out.logits, stock_lm_logits(stock, embeds), rtol=0, atol=1e-5)


def test_generate_and_forward_see_the_same_pruned_prompt(model, processor):
    inputs = spiral_inputs(processor, (45, 4))
    with torch.no_grad():
        out = model(**inputs, pruning_method="speechprune", pruning_rate=0.4)
    forward_ids, forward_kept = out.pruned_input_ids, model.last_selection[0]["kept"]
    generated = greedy(model, inputs, n=3, pruning_method="speechprune", pruning_rate=0.4)
    assert torch.equal(model.last_pruned_input_ids, forward_ids)
    assert torch.equal(model.last_selection[0]["kept"], forward_kept)
    # The caller's ids come back, then the new tokens; the first one is the forward's argmax.
    length = inputs.input_ids.shape[1]
    assert generated.shape == (1, length + 3)
    assert torch.equal(generated[:, :length], inputs.input_ids)
    assert int(generated[0, length]) == int(out.logits[0, -1].argmax())


def test_generate_with_return_dict_and_several_sequences(model, processor):
    inputs = spiral_inputs(processor, (45, 1))
    out = model.generate(
        **inputs,
        pruning_method="speechprune",
        pruning_rate=0.2,
        max_new_tokens=3,
        num_beams=2,
        num_return_sequences=2,
        return_dict_in_generate=True,
    )
    length = inputs.input_ids.shape[1]
    assert out.sequences.shape == (2, length + 3)
    assert torch.equal(out.sequences[:, :length], inputs.input_ids.repeat(2, 1))


@pytest.mark.parametrize("family", ["qwen2_audio", "qwen2_5_omni_thinker"])  # 1D position ids, M-RoPE
def test_generate_with_original_positions_decodes_after_the_largest_original_position(family, model, processor):
    """SPEC section 7: step 1 is the pruned forward's last row; the next token takes the largest kept id + 1."""
    if family == "qwen2_audio":
        pruned, batch = model, dict(spiral_inputs(processor, (45, 1), (20, 2)))
    else:
        pruned = tiny_family(family, seed=0, pruning_method="speechprune")
        batch = tiny_family_inputs(pruned, [40.0, 12.0], seed=1)
    settings = {"pruning_method": "speechprune", "pruning_rate": 0.4, "positions": "original"}
    mask = batch["attention_mask"]
    assert (mask == 0).any()  # left padded
    length = batch["input_ids"].shape[1]
    out = pruned.generate(
        **batch, **settings, max_new_tokens=2, do_sample=False, return_dict_in_generate=True, output_logits=True
    )
    # The ids stock generate gives the unpruned prompt: 0.. along the real tokens (three equal rows for an
    # audio-only M-RoPE prompt); the forward gets them explicitly, as a caller of forward would.
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    if family != "qwen2_audio":
        positions = positions.expand(3, -1, -1)
    language_model = ADAPTERS[family].language_model(pruned)
    seen = {}
    hook = language_model.register_forward_pre_hook(lambda m, args, kwargs: seen.update(kwargs), with_kwargs=True)
    try:
        with torch.no_grad():
            forward = pruned(**batch, **settings, position_ids=positions)
    finally:
        hook.remove()
    torch.testing.assert_close(out.logits[0], forward.logits[:, -1], rtol=0, atol=1e-5)
    assert torch.equal(out.sequences[:, length], forward.logits[:, -1].argmax(-1))
    # Step 2 by hand: the stock language model and head on the pruned rows the forward used, plus the first
    # new token at a position chosen here.
    kept, rows = seen["position_ids"], seen["inputs_embeds"]
    token = pruned.get_input_embeddings()(out.sequences[:, length])
    rows = torch.cat([rows, token[:, None]], 1)
    new_mask = torch.cat([seen["attention_mask"], torch.ones_like(seen["attention_mask"][:, :1])], 1)

    def next_logits(position):
        with torch.no_grad():
            ids = torch.cat([kept, position], -1)
            hidden = language_model(inputs_embeds=rows, attention_mask=new_mask, position_ids=ids).last_hidden_state
            return pruned.lm_head(hidden[:, -1])

    largest = kept.amax(-1, keepdim=True)
    torch.testing.assert_close(out.logits[1], next_logits(largest + 1), rtol=0, atol=1e-5)
    # What a compact continuation would give (the pruned length), which the check above tells apart.
    compact = seen["attention_mask"].sum(-1, keepdim=True).expand_as(largest)
    assert (largest + 1 > compact).all()
    assert not torch.allclose(out.logits[1], next_logits(compact), atol=1e-3)


@pytest.mark.parametrize("method", METHODS)
def test_batches_give_the_same_selection_and_answers_as_one_at_a_time(model, processor, method):
    recordings, ids = [(45, 1), (20, 2)], ["lecture_3", "meeting_1"]
    batch = spiral_inputs(processor, *recordings)
    settings = {"pruning_method": method, "pruning_rate": 0.4, "sample_ids": ids}
    with torch.no_grad():
        batched = model(**batch, **settings).logits[:, -1]
    selection = model.last_selection
    check_generation = method in ("speechprune", "random")
    if check_generation:
        generated = greedy(model, batch, n=3, **settings)[:, batch.input_ids.shape[1] :]
    for j, recording in enumerate(recordings):
        single = spiral_inputs(processor, recording)
        one = {**settings, "sample_ids": [ids[j]]}
        with torch.no_grad():
            alone = model(**single, **one).logits[0, -1]
        assert torch.equal(selection[j]["kept"], model.last_selection[0]["kept"])
        torch.testing.assert_close(batched[j], alone, rtol=0, atol=1e-5)
        if check_generation:
            assert torch.equal(generated[j], greedy(model, single, n=3, **one)[0, single.input_ids.shape[1] :])


def test_random_methods_seed_each_sample_from_its_id_or_index(model, processor):
    batch = spiral_inputs(processor, (40, 10), (40, 11))
    with torch.no_grad():
        model(**batch, pruning_method="random", pruning_rate=0.5, pruning_seed=3, sample_ids=["a", "b"])
        by_id = [s["kept"] for s in model.last_selection]
        model(**batch, pruning_method="random", pruning_rate=0.5, pruning_seed=3)
        by_index = [s["kept"] for s in model.last_selection]
    for j, sample in enumerate(["a", "b"]):
        assert torch.equal(by_id[j], pruning.random_select(1000, 375, pruning.sample_seed(3, sample)))
        assert torch.equal(by_index[j], pruning.random_select(1000, 375, pruning.sample_seed(3, str(j))))


def test_several_recordings_are_selected_span_by_span_with_the_same_query(model, stock, processor):
    prompt = (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
        "Audio 1: <|audio_bos|><|AUDIO|><|audio_eos|>\nAudio 2: <|audio_bos|><|AUDIO|><|audio_eos|>\n"
        "Which recording mentions the budget?<|im_end|>\n<|im_start|>assistant\n"
    )
    inputs = encode(processor, [prompt], [wave(35, seed=12), wave(32, seed=13)])
    for method in ("speechprune", "random"):
        with torch.no_grad():
            model(**inputs, pruning_method=method, pruning_rate=0.4, sample_ids=["x"])
        spans = model.last_selection[0]
        assert isinstance(spans, list) and [s["num_audio_tokens"] for s in spans] == [875, 800]
        expected = reference_selection(model, stock, inputs, method, 0.4, sample_id="x")
        assert all(torch.equal(s["kept"], e) for s, e in zip(spans, expected))


def test_query_mask_fallback_when_the_caller_gives_none(model, processor):
    inputs = spiral_inputs(processor, (45, 1))
    with torch.no_grad():
        model(**inputs, pruning_method="speechprune", pruning_rate=0.4)
        with_mask = model.last_selection[0]["kept"]
        fallback = {k: v for k, v in inputs.items() if k != "query_mask"}
        model(**fallback, pruning_method="speechprune", pruning_rate=0.4)
        without = model.last_selection[0]["kept"]
    # The fallback query also holds the instruction line, so it is a different query: what matters
    # is that it equals the processor's mask built by the same rule on a non-SPIRAL reading.
    rule_mask = inputs.query_mask.clone()
    ids = inputs.input_ids[0]
    specials = torch.tensor(list(model.config.special_token_ids.values()))
    eos = int((ids == model.config.special_token_ids["<|audio_eos|>"]).nonzero()[-1])
    end = eos + 1 + int((ids[eos + 1 :] == model.config.special_token_ids["<|im_end|>"]).nonzero()[0])
    rule_mask[0] = False
    rule_mask[0, eos + 1 : end] = ~torch.isin(ids[eos + 1 : end], specials)
    with torch.no_grad():
        model(**{**inputs, "query_mask": rule_mask}, pruning_method="speechprune", pruning_rate=0.4)
    assert torch.equal(model.last_selection[0]["kept"], without)
    assert with_mask.numel() == without.numel() == 450


def test_per_call_settings_leave_the_config_alone():
    model, processor = tiny_speechprune(pruning_method="speechprune", pruning_rate=0.2)
    inputs = spiral_inputs(processor, (45, 1))  # 1125 tokens: k1 = 750
    with torch.no_grad():
        model(**inputs)
        assert model.last_selection[0]["num_kept"] == 600
        model(**inputs, pruning_rate=0.8)
        assert model.last_selection[0]["num_kept"] == 150
        model(**inputs, pruning_method="original")
        assert model.last_selection[0]["num_kept"] == 750
    greedy(model, inputs, n=2, pruning_rate=0.4)
    assert model.last_selection[0]["num_kept"] == 450
    assert (model.config.pruning_method, model.config.pruning_rate) == ("speechprune", 0.2)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_models_prune_and_generate(processor, prompt, dtype):
    model = tiny_speechprune(seed=0)[0].to(dtype)
    inputs = encode(processor, [prompt], [wave(45, seed=1)])
    inputs["input_features"] = inputs["input_features"].to(dtype)
    with torch.no_grad():
        out = model(**inputs, pruning_method="speechprune", pruning_rate=0.4)
    assert out.logits.dtype == dtype and torch.isfinite(out.logits).all()
    assert model.last_selection[0]["num_kept"] == 450
    generated = greedy(model, inputs, n=3, pruning_method="speechprune", pruning_rate=0.4)
    assert generated.shape[1] == inputs.input_ids.shape[1] + 3


def test_encoder_gets_the_stock_padding_mask(model, stock, processor):
    """A short window's padding must be masked as the stock forward masks it, or its tokens change."""
    inputs = spiral_inputs(processor, (12, 12))
    embeds = captured_embeds(stock, inputs)[0]
    stock_audio = embeds[inputs.input_ids[0] == model.config.audio_token_id]
    with torch.no_grad():
        (ours,) = model.encode_audio_windows(inputs.input_features, inputs.feature_attention_mask)
        unmasked = model.model.multi_modal_projector(model.model.audio_tower(inputs.input_features).last_hidden_state)
    assert torch.equal(ours, stock_audio)
    assert not torch.allclose(unmasked[0, :300], stock_audio, atol=1e-4)


def test_labels_are_pruned_with_the_sequence(model, processor):
    inputs = spiral_inputs(processor, (40, 10))
    with torch.no_grad():
        out = model(**inputs, labels=inputs.input_ids, pruning_method="speechprune", pruning_rate=0.5)
    logits, ids = out.logits[0, :-1], out.pruned_input_ids[0, 1:]
    expected = torch.nn.functional.cross_entropy(logits, ids)
    torch.testing.assert_close(out.loss, expected)


# ------------------------------------------------------------------------------------------------
# Bad input: a clear error, never a silent wrong answer


def test_placeholder_count_not_matching_the_audio(model, processor):
    inputs = spiral_inputs(processor, (40, 10))
    ids = inputs.input_ids
    first = int((ids[0] == model.config.audio_token_id).nonzero()[0])
    shorter = {**inputs, "input_ids": torch.cat([ids[:, :first], ids[:, first + 1 :]], dim=1)}
    shorter["attention_mask"] = inputs.attention_mask[:, 1:]
    shorter["query_mask"] = torch.cat([inputs.query_mask[:, :first], inputs.query_mask[:, first + 1 :]], dim=1)
    for method in ("full", "speechprune"):
        with pytest.raises(ValueError, match="placeholders"):
            model(**shorter, pruning_method=method)


def test_two_recordings_whose_spans_are_swapped(model, processor):
    prompt = "<|audio_bos|><|AUDIO|><|audio_eos|><|audio_bos|><|AUDIO|><|audio_eos|>\nWhich?"
    a = encode(processor, [prompt], [wave(40, seed=20), wave(3, seed=21)])
    b = encode(processor, [prompt], [wave(3, seed=21), wave(40, seed=20)])
    swapped = {**a, "input_features": b.input_features, "feature_attention_mask": b.feature_attention_mask}
    with pytest.raises(ValueError, match="do not match"):
        model(**swapped, pruning_method="speechprune")


def test_non_finite_features(model, processor, prompt):
    inputs = encode(processor, [prompt], [wave(10, seed=22)])
    inputs["input_features"][0, 3, 7] = float("nan")
    for method in ("full", "random"):
        with pytest.raises(ValueError, match="NaN or inf"):
            model(**inputs, pruning_method=method)


@pytest.mark.parametrize(
    "settings, field",
    [
        ({"pruning_rate": 1.0}, "pruning_rate"),
        ({"pruning_rate": -0.2}, "pruning_rate"),
        ({"pruning_method": "fastv"}, "pruning_method"),
        ({"pruning_rat": 0.4}, "pruning_rat"),
        ({"query": "question"}, "query"),
        ({"phase1_token": 0}, "phase1_token"),
        ({"tokens_per_frames": 0}, "tokens_per_frames"),
        ({"phase1_temp": 0}, "phase1_temp"),
        ({"positions": "shifted"}, "positions"),
    ],
)
def test_bad_settings(model, processor, settings, field):
    inputs = spiral_inputs(processor, (12, 12))
    with pytest.raises(ValueError, match=field):
        model(**inputs, **settings)
    with pytest.raises(ValueError, match=field):
        model.generate(**inputs, max_new_tokens=1, **settings)


def test_unknown_names_list_the_known_settings(model, processor):
    inputs = spiral_inputs(processor, (12, 12))
    with pytest.raises(ValueError, match="tokens_per_frame.*phase1_temperature"):
        model(**inputs, phase1_temp=0)


def test_batched_full_generation_is_the_stock_generation_bit_for_bit(model, stock, processor):
    """forward takes position_ids, so generate builds padding-aware positions for the wrapper as for stock."""
    batch = spiral_inputs(processor, (45, 1), (20, 2))
    assert (batch.attention_mask == 0).any()  # left padded
    kwargs = {"max_new_tokens": 3, "do_sample": False, "return_dict_in_generate": True, "output_scores": True}
    ours = model.generate(**batch, pruning_method="full", **kwargs)
    theirs = stock.generate(**stock_inputs(batch), **kwargs)
    assert torch.equal(ours.sequences, theirs.sequences)
    assert all(torch.equal(a, b) for a, b in zip(ours.scores, theirs.scores))
    assert [s["num_kept"] for s in ours.selection] == [1125, 500]


def test_the_selection_travels_with_the_output(model, processor):
    inputs = spiral_inputs(processor, (45, 1))
    with torch.no_grad():
        first = model(**inputs, pruning_method="speechprune", pruning_rate=0.4)
        second = model(**inputs, pruning_method="random", pruning_rate=0.2)
    assert first.selection[0]["num_kept"] == 450 and second.selection[0]["num_kept"] == 600
    assert model.last_selection is second.selection  # the convenience view follows the last call
    assert first.pruned_input_ids.shape[1] == inputs.input_ids.shape[1] - 1125 + 450


def test_no_query_text_left(model, processor):
    prompt = "<|im_start|>user\n<|audio_bos|><|AUDIO|><|audio_eos|><|im_end|>\n<|im_start|>assistant\n"
    inputs = encode(processor, [prompt], [wave(35, seed=24)])
    assert not inputs.query_mask.any()
    with pytest.raises(ValueError, match="no query text"):
        model(**inputs, pruning_method="speechprune", pruning_rate=0.4)
    with torch.no_grad():  # methods that need no query still run
        model(**inputs, pruning_method="random", pruning_rate=0.4)


def test_position_limit_applies_after_selection(processor):
    model = tiny_speechprune(seed=0)[0]
    model.config.text_config.max_position_embeddings = 1000
    inputs = spiral_inputs(processor, (45, 1))  # 1125 audio tokens
    with pytest.raises(ValueError, match="limit of 1000"):
        model(**inputs, pruning_method="full")
    with torch.no_grad():
        model(**inputs, pruning_method="speechprune", pruning_rate=0.4)  # 450 kept: fits
    assert model.last_selection[0]["num_kept"] == 450


def test_loading_a_stock_checkpoint_in_the_legacy_layout(tmp_path, stock, processor):
    import logging

    from safetensors import safe_open

    class Collect(logging.Handler):
        def emit(self, record):
            messages.append(record.getMessage())

    stock.save_pretrained(tmp_path)
    with safe_open(str(tmp_path / "model.safetensors"), "pt") as f:
        keys = set(f.keys())
    assert "language_model.lm_head.weight" in keys  # the legacy layout that needs renaming
    messages, handler = [], Collect()
    logging.getLogger("transformers.configuration_utils").addHandler(handler)
    try:
        SpeechPruneConfig.from_pretrained(tmp_path)  # the config class alone still warns ...
        warned = len(messages)
        model, info = Qwen2AudioSpeechPruneForConditionalGeneration.from_pretrained(
            tmp_path, pruning_method="speechprune", pruning_rate=0.4, output_loading_info=True
        )
    finally:
        logging.getLogger("transformers.configuration_utils").removeHandler(handler)
    assert warned == 1 and "qwen2_audio_speechprune" in messages[0]
    assert len(messages) == 1  # ... but loading a stock checkpoint into the pruning class is silent
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    assert model.config.model_type == "qwen2_audio_speechprune"
    assert (model.config.pruning_method, model.config.pruning_rate) == ("speechprune", 0.4)
    ours, theirs = model.state_dict(), stock.state_dict()
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in theirs)
    # A stock config knows the real Qwen2-Audio special ids, not the tiny tokenizer's: the fallback
    # query rule must refuse to guess rather than pick wrong tokens.
    no_mask = {k: v for k, v in spiral_inputs(processor, (40, 10)).items() if k != "query_mask"}
    with pytest.raises(ValueError, match="special_token_ids"):
        model(**no_mask)
    inputs = spiral_inputs(processor, (20, 3))
    with torch.no_grad():
        assert torch.equal(model(**inputs, pruning_method="full").logits, stock(**stock_inputs(inputs)).logits)


@pytest.mark.parametrize("method", ["full", "none"])
def test_prune_inputs_with_full_keeps_every_token(model, stock, processor, method):
    """The public ``prune_inputs`` with ``full`` (or its alias) must keep everything, not fall through to a pruner."""
    inputs = spiral_inputs(processor, (45, 1))
    with torch.no_grad():
        pruned = model.prune_inputs(
            inputs.input_ids,
            inputs.attention_mask,
            query_mask=inputs.query_mask,
            settings={"pruning_method": method, "pruning_rate": 0.5},
            input_features=inputs.input_features,
            feature_attention_mask=inputs.feature_attention_mask,
        )
    assert model.last_selection[0]["num_kept"] == model.last_selection[0]["num_audio_tokens"] == 1125
    assert torch.equal(pruned.input_ids, inputs.input_ids)
    torch.testing.assert_close(pruned.inputs_embeds, captured_embeds(stock, inputs), rtol=0, atol=1e-5)


# ------------------------------------------------------------------------------------------------
# The usage examples in the docstrings


@pytest.mark.parametrize(
    "name",
    [
        "speechprune.modeling.pruning",
        "speechprune.modeling.audio_spans",
        "speechprune.modeling.families",
        "speechprune.modeling.configuration_speechprune",
        "speechprune.modeling.processing_speechprune",
        "speechprune.modeling.modeling_speechprune",
        "speechprune.testing",
    ],
)
def test_module_doctests_pass(name):
    """Every docstring example of the Hub-copied files (and the tiny model) runs and prints what it says."""
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0, result


def test_llm_attention_ranks_by_the_stock_eager_attention_of_that_layer(model, processor):
    """Left-padded batch, GQA: the probabilities equal transformers' eager output_attentions (1e-5)."""
    batch = spiral_inputs(processor, (45, 1), (20, 2))
    eager = tiny_qwen2_audio(seed=0)[0]
    eager.set_attn_implementation("eager")
    with torch.no_grad():
        reference = eager(**stock_inputs(batch), output_attentions=True).attentions[1]
        out = model(**batch, pruning_method="llm_attention", attention_layer=1, pruning_rate=0.4)
    mask = batch.attention_mask.bool()
    for b in range(2):
        ids = batch.input_ids[b]
        audio = (ids == model.config.audio_token_id).nonzero().flatten()
        after = mask[b].clone()
        after[: int(audio[-1]) + 1] = False
        rows = reference[b][:, after][:, :, audio]
        assert torch.equal(
            out.selection[b]["kept"], pruning.llm_attention_select(rows, pruning.final_count(len(audio), 0.4))
        )
    with pytest.raises(ValueError, match="attention_layer"):
        model(**batch, pruning_method="llm_attention", attention_layer=2)  # the tiny model has 2 layers


# ------------------------------------------------------------------------------------------------
# speechprune.prune / unprune on a loaded stock Qwen2-Audio, and the package's public names


def test_prune_a_loaded_stock_model_selects_as_the_pruning_class(model, processor, tmp_path):
    from transformers import AutoModel, Qwen2AudioConfig, Qwen2AudioForConditionalGeneration

    import speechprune

    stock = tiny_qwen2_audio(seed=0)[0]
    stock.config.special_token_ids = dict(model.config.special_token_ids)  # the tiny tokenizer's ids
    weight = stock.lm_head.weight
    pruned = speechprune.prune(stock, pruning_method="speechprune", pruning_rate=0.4)
    assert pruned is stock and pruned.lm_head.weight is weight and type(pruned) is type(model)
    inputs = spiral_inputs(processor, (45, 1))
    with torch.no_grad():
        ours, theirs = pruned(**inputs), model(**inputs, pruning_method="speechprune", pruning_rate=0.4)
    assert torch.equal(ours.selection[0]["kept"], theirs.selection[0]["kept"])
    assert torch.equal(ours.logits, theirs.logits)
    pruned.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path, trust_remote_code=True)
    assert type(loaded).__name__ == "Qwen2AudioSpeechPruneForConditionalGeneration"
    assert (loaded.config.model_type, loaded.config.pruning_rate) == ("qwen2_audio_speechprune", 0.4)
    speechprune.unprune(pruned)
    assert type(pruned) is Qwen2AudioForConditionalGeneration and type(pruned.config) is Qwen2AudioConfig
    assert "pruning_method" not in pruned.config.to_dict()


@pytest.mark.parametrize(
    ("config_class", "reason"),
    [
        ("MoshiConfig", "no audio placeholder tokens"),
        ("CsmConfig", "output is audio"),
        ("Qwen2_5OmniConfig", "thinker"),
        ("LlamaConfig", "not adapted yet"),
    ],
)
def test_an_unsupported_model_names_its_type_and_why(config_class, reason):
    import transformers

    import speechprune
    from speechprune.errors import UsageError

    class Loaded:
        config = getattr(transformers, config_class)()

    with pytest.raises(UsageError, match=f"model_type '{Loaded.config.model_type}' cannot be pruned.*{reason}"):
        speechprune.prune(Loaded())


def test_import_speechprune_is_light_and_exports_the_public_names():
    import subprocess
    import sys

    code = (
        "import sys, speechprune; heavy = sorted(m for m in ('torch', 'transformers') if m in sys.modules); "
        "names = [speechprune.prune, speechprune.unprune, speechprune.supported_families, "
        "speechprune.SpeechPruneConfig, speechprune.Qwen2AudioSpeechPruneForConditionalGeneration, "
        "speechprune.SpeechPruneProcessor]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
