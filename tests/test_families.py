"""Every supported family other than Qwen2-Audio (tests/test_model.py), against its own stock model.

Each family is a tiny random config built offline (``speechprune.testing.tiny_family``). The references are
independent of the wrapper: the stock model's logits and greedy tokens, the rows the stock forward hands its
language model (captured by a hook on the stock object), and ``pruning.py`` called directly on those rows.
"""

import functools

import pytest
import torch

import speechprune
from speechprune.modeling import pruning
from speechprune.modeling.families import ADAPTERS
from speechprune.testing import TINY_FAMILIES, tiny_family, tiny_family_inputs

pytestmark = pytest.mark.parametrize("family", TINY_FAMILIES)


@functools.cache
def models(family):
    """``(stock, pruned)``: two objects with the same weights; ``pruned`` went through ``speechprune.prune``."""
    stock = tiny_family(family, seed=0)
    pruned = speechprune.prune(tiny_family(family, seed=0), pruning_method="speechprune", pruning_rate=0.4)
    return stock, pruned


@functools.cache
def inputs(family, *seconds, seed=1):
    return tiny_family_inputs(models(family)[0], list(seconds), seed=seed)


def stock_args(batch):
    return {k: v for k, v in batch.items() if k != "query_mask"}


def row(family, batch, b):
    """Sample ``b`` of a left-padded batch, alone (without padding, with only its own audio inputs)."""
    real = batch["attention_mask"][b].bool()
    out = {name: batch[name][b : b + 1, real] for name in ("input_ids", "attention_mask", "query_mask")}
    if family == "voxtral":  # 30 s chunks of every recording in order, 375 placeholders each
        chunks = [int(n) // 375 for n in (batch["input_ids"] == 593).sum(1)]
        out["input_features"] = batch["input_features"][sum(chunks[:b]) : sum(chunks[: b + 1])]
    elif family == "glmasr":  # 30 s windows of every recording in order: ceil(tokens / 375) each
        windows = [-(-int(n) // 375) for n in (batch["input_ids"] == 593).sum(1)]
        for name in ("input_features", "input_features_mask"):
            out[name] = batch[name][sum(windows[:b]) : sum(windows[: b + 1])]
    elif family == "qwen3_asr":  # one row per recording, padded to whole 100-frame chunks of the longest
        length = -(-int(batch["input_features_mask"][b].sum()) // 100) * 100
        out["input_features"] = batch["input_features"][b : b + 1, :, :length]
        out["input_features_mask"] = batch["input_features_mask"][b : b + 1, :length]
    elif family == "gemma4":  # one clip per recording, padded to the longest
        frames = int(batch["input_features_mask"][b].sum())
        out["input_features"] = batch["input_features"][b : b + 1, :frames]
        out["input_features_mask"] = batch["input_features_mask"][b : b + 1, :frames]
    elif "input_features_mask" in batch:  # 30 s windows of every recording in order: find this sample's
        tower = models(family)[0].model.audio_tower
        per_window = tower._get_feat_extract_output_lengths(batch["input_features_mask"].sum(-1))[1].tolist()
        needed = (batch["input_ids"] == 593).sum(1).tolist()
        first = 0
        for n in needed[:b]:
            while n > 0:
                n -= per_window[first]
                first += 1
        end, n = first, needed[b]
        while n > 0:
            n -= per_window[end]
            end += 1
        out["input_features"] = batch["input_features"][first:end]
        out["input_features_mask"] = batch["input_features_mask"][first:end]
    else:
        frames = int(batch["feature_attention_mask"][b].sum())
        out["input_features"] = batch["input_features"][b : b + 1, :, :frames]
        out["feature_attention_mask"] = batch["feature_attention_mask"][b : b + 1, :frames]
    return out


def lm_inputs(model, call):
    """What ``model``'s language model receives in ``model(**call)`` (stock or pruned), by a hook."""
    adapter = ADAPTERS[model.config.model_type]
    seen = {}
    hook = adapter.language_model(model).register_forward_pre_hook(
        lambda module, args, kwargs: seen.update(kwargs), with_kwargs=True
    )
    try:
        with torch.no_grad():
            model(**call)
    finally:
        hook.remove()
    return seen


def greedy(model, call, n=4, **kwargs):
    return model.generate(**call, max_new_tokens=n, do_sample=False, **kwargs)


# ------------------------------------------------------------------------------------------------
# full: the stock model bit for bit


def test_full_is_the_stock_model_single_and_batched(family):
    stock, model = models(family)
    for batch in (inputs(family, 12.0), inputs(family, 12.0, 5.0)):
        with torch.no_grad():
            theirs = stock(**stock_args(batch)).logits
            ours = model(**batch, pruning_method="full")
        assert torch.equal(ours.logits, theirs)
        assert [s["num_kept"] for s in ours.selection] == [s["num_audio_tokens"] for s in ours.selection]
        kwargs = {"return_dict_in_generate": True, "output_scores": True}
        ours, theirs = (
            greedy(model, batch, pruning_method="full", **kwargs),
            greedy(stock, stock_args(batch), **kwargs),
        )
        assert torch.equal(ours.sequences, theirs.sequences)
        assert all(torch.equal(a, b) for a, b in zip(ours.scores, theirs.scores))


def test_rate_zero_within_the_budget_keeps_everything_and_matches_stock(family):
    stock, model = models(family)
    batch = inputs(family, 12.0)  # fewer tokens than the family's 30 s
    with torch.no_grad():
        ours = model(**batch, pruning_rate=0.0)
        theirs = stock(**stock_args(batch)).logits
    assert ours.selection[0]["num_kept"] == ours.selection[0]["num_audio_tokens"]
    assert torch.equal(ours.logits, theirs)


# ------------------------------------------------------------------------------------------------
# speechprune: SPEC's counts and the direct pruning.py selection on what the language model receives


def test_speechprune_counts_and_selection_match_pruning_py_on_the_rows_the_language_model_receives(family):
    stock, model = models(family)
    adapter = ADAPTERS[family]
    batch = inputs(family, 40.0)
    embeds = lm_inputs(stock, stock_args(batch))["inputs_embeds"][0]
    ids = batch["input_ids"][0]
    audio = embeds[ids == 593]
    query = embeds[batch["query_mask"][0]]
    attention = stock.model.language_model.layers[0].self_attn
    text = stock.model.language_model.config
    # The layer's own head width (Gemma 4's differs between layer types; its config refuses a global one).
    head_dim = getattr(attention, "head_dim", None) or text.hidden_size // text.num_attention_heads
    defaults = adapter.default_settings()
    expected = pruning.speechprune_select(
        audio,
        query,
        attention.q_proj.weight,
        attention.k_proj.weight,
        0.4,
        phase1_tokens=defaults["phase1_tokens"],
        tokens_per_frame=defaults["tokens_per_frame"],
        head_dim=head_dim,
    )
    with torch.no_grad():
        out = model(**batch)
    n = audio.shape[0]
    assert out.selection[0]["num_audio_tokens"] == n > adapter.tokens_per_window
    assert out.selection[0]["num_kept"] == round(0.6 * adapter.tokens_per_window)
    assert torch.equal(out.selection[0]["kept"], expected)
    torch.testing.assert_close(out.selection[0]["times"], expected.double().mul(adapter.seconds_per_token).float())
    # The pruned language model saw exactly the kept rows, in order, with the text around them.
    seen = lm_inputs(model, batch)["inputs_embeds"][0]
    keep = torch.ones_like(ids, dtype=torch.bool)
    keep[ids == 593] = False
    keep[(ids == 593).nonzero().flatten()[expected]] = True
    assert torch.equal(seen, embeds[keep])


@pytest.mark.slow
@pytest.mark.parametrize("method", ["speechprune", "crop"])  # rows-dependent, and count-dependent
def test_a_batch_selects_as_one_recording_at_a_time(family, method):
    _, model = models(family)
    batch = inputs(family, 40.0, 12.0)
    with torch.no_grad():
        together = model(**batch, pruning_method=method, sample_ids=["a", "b"]).selection
        for b, sample_id in enumerate(["a", "b"]):
            alone = model(**row(family, batch, b), pruning_method=method, sample_ids=[sample_id]).selection
            assert torch.equal(together[b]["kept"], alone[0]["kept"]), (method, b)


def test_random_methods_are_reproducible_per_sample_id(family):
    _, model = models(family)
    batch = inputs(family, 40.0, 12.0)
    with torch.no_grad():
        first = model(**batch, pruning_method="random", sample_ids=["x", "y"]).selection
        again = model(**batch, pruning_method="random", sample_ids=["x", "y"]).selection
        other = model(**batch, pruning_method="random", sample_ids=["z", "y"]).selection
    n = first[0]["num_audio_tokens"]
    k = pruning.final_count(n, 0.4, ADAPTERS[family].tokens_per_window)
    assert torch.equal(first[0]["kept"], pruning.random_select(n, k, pruning.sample_seed(0, "x")))
    assert torch.equal(first[0]["kept"], again[0]["kept"]) and not torch.equal(first[0]["kept"], other[0]["kept"])


# ------------------------------------------------------------------------------------------------
# generate and positions


def test_generate_returns_the_callers_ids_then_the_new_tokens(family):
    _, model = models(family)
    batch = inputs(family, 40.0, 12.0)
    out = greedy(model, batch, n=3)
    assert out.shape == (2, batch["input_ids"].shape[1] + 3)
    assert torch.equal(out[:, : batch["input_ids"].shape[1]], batch["input_ids"])
    with torch.no_grad():  # the first new token is the pruned forward's argmax
        logits = model(**batch).logits[:, -1]
    assert torch.equal(out[:, batch["input_ids"].shape[1]], logits.argmax(-1))


def test_original_positions_keep_the_unpruned_position_ids(family):
    stock, model = models(family)
    batch = inputs(family, 40.0, 12.0)
    before = lm_inputs(stock, stock_args(batch))
    positions = before["position_ids"]
    if positions is None:  # the 1D families leave them to the language model: 0..S-1 per row
        positions = torch.arange(batch["input_ids"].shape[1]).expand_as(batch["input_ids"])
    if positions.shape[-2] == 1:  # Gemma 4 passes one row of positions for the whole batch
        positions = positions.expand(*positions.shape[:-2], batch["input_ids"].shape[0], -1)
    after = lm_inputs(model, {**batch, "positions": "original"})
    kept = model.last_pruned_input_ids
    mask = after["attention_mask"]
    if isinstance(mask, dict):  # Gemma 4 hands its language model 4-D masks: the last query row's keys
        mask = mask["full_attention"][:, 0, -1]
        mask = mask if mask.dtype == torch.bool else mask == 0
    mask = mask.bool()
    for b in range(2):
        ids = batch["input_ids"][b]
        keep = batch["attention_mask"][b].bool() & (ids != 593)
        selection = model.last_selection[b]["kept"]
        keep[(ids == 593).nonzero().flatten()[selection]] = True
        expected = positions[..., b, :][..., keep]
        assert torch.equal(after["position_ids"][..., b, :][..., mask[b]], expected)
        assert torch.equal(kept[b][mask[b]], ids[keep])
    compact = lm_inputs(model, batch)["position_ids"]
    if ADAPTERS[family].position_scheme == "mrope":  # an ordinary prompt: three equal rows 0..L-1
        lengths = mask.sum(1)
        for b in range(2):
            assert torch.equal(compact[:, b, mask[b]], torch.arange(int(lengths[b])).expand(3, -1))
    elif family == "gemma4":  # its stock forward numbers any prompt 0..L-1 (one row) before its language model
        assert torch.equal(compact, torch.arange(compact.shape[-1]).unsqueeze(0))
    else:
        assert compact is None  # derived by the stock language model, as for any prompt


# ------------------------------------------------------------------------------------------------
# prune / unprune


def test_prune_is_in_place_and_unprune_gives_the_stock_object_back(family):
    model = tiny_family(family, seed=0)
    stock_class, weights = type(model), dict(model.named_parameters())
    pruned = speechprune.prune(model, pruning_method="random", pruning_rate=0.5)
    assert pruned is model and type(model).__name__ == ADAPTERS[family].pruning_class
    assert all(p is weights[name] for name, p in model.named_parameters())
    assert model.config.phase1_tokens == ADAPTERS[family].tokens_per_window
    speechprune.unprune(model)
    assert type(model) is stock_class and not hasattr(model.config, "pruning_method")


def test_a_stock_checkpoint_loads_into_the_pruning_class_with_every_weight(family, tmp_path):
    """The stock class saves some families in a legacy key layout; the pruning class must rename it too."""
    from speechprune.modeling.modeling_speechprune import PRUNING_CLASSES

    stock = models(family)[0]
    stock.save_pretrained(tmp_path)
    model, info = PRUNING_CLASSES[family].from_pretrained(tmp_path, output_loading_info=True)
    assert not any(info[key] for key in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
    ours, theirs = model.state_dict(), stock.state_dict()
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in theirs)


# ------------------------------------------------------------------------------------------------
# SPEC section 8 on the model side: llm_attention's probabilities, oracle's key times


def eager_attentions(family, batch):
    """transformers' own eager attention probabilities of every decoder layer (``output_attentions``)."""
    stock = tiny_family(family, seed=0)
    stock.set_attn_implementation("eager")
    with torch.no_grad():
        return stock(**stock_args(batch), output_attentions=True).attentions


def test_llm_attention_ranks_by_transformers_eager_attention_of_that_layer(family):
    """GQA (4 query heads, 2 key heads), left padding, the layer's own norm, RoPE (M-RoPE too) and mask."""
    stock, model = models(family)
    batch = inputs(family, 40.0, 12.0)
    reference = eager_attentions(family, batch)
    captured = ADAPTERS[family].capture(model, super(type(model), model).forward, stock_args(batch))
    for layer in (0, 2):
        ours = ADAPTERS[family].attention_weights(model, captured, layer)
        mask = batch["attention_mask"].bool()
        for b in range(2):  # padding rows are free to differ; every real query row must match
            torch.testing.assert_close(ours[b][:, mask[b]], reference[layer][b][:, mask[b]], rtol=0, atol=1e-5)
    with torch.no_grad():
        out = model(**batch, pruning_method="llm_attention", attention_layer=2)
    for b in range(2):
        ids = batch["input_ids"][b]
        audio = (ids == 593).nonzero().flatten()
        after = batch["attention_mask"][b].bool().clone()
        after[: int(audio[-1]) + 1] = False
        rows = reference[2][b][:, after][:, :, audio]  # (heads, positions after the recording, N)
        k = pruning.final_count(audio.numel(), 0.4, ADAPTERS[family].tokens_per_window)
        assert torch.equal(out.selection[b]["kept"], pruning.llm_attention_select(rows, k))


def test_oracle_keeps_the_key_tokens_from_the_given_key_times(family):
    _, model = models(family)
    batch = inputs(family, 40.0, 12.0)
    with torch.no_grad():
        out = model(**batch, pruning_method="oracle", key_times=[(3.0, 5.5), (1.0, 2.0)])
    t = ADAPTERS[family].seconds_per_token
    for b, (start, end) in enumerate([(3.0, 5.5), (1.0, 2.0)]):
        n = out.selection[b]["num_audio_tokens"]
        k = pruning.final_count(n, 0.4, ADAPTERS[family].tokens_per_window)
        assert torch.equal(out.selection[b]["kept"], pruning.oracle_select(n, k, start, end, t))
        key = pruning.key_token_set(n, start, end, t)
        assert set(key.tolist()) <= set(out.selection[b]["kept"].tolist())  # every key token fits here
    with pytest.raises(ValueError, match="key times"):
        model(**batch, pruning_method="oracle")


def test_without_query_mask_the_family_fallback_rule_finds_the_question(family):
    _, model = models(family)
    batch = inputs(family, 40.0, 12.0)
    without = {k: v for k, v in batch.items() if k != "query_mask"}
    with torch.no_grad():
        given = model(**batch).selection
        found = model(**without).selection
    assert all(torch.equal(a["kept"], b["kept"]) for a, b in zip(given, found))
    bad = speechprune.prune(tiny_family(family), pruning_method="speechprune")
    # template tokens that never occur (the tiny Voxtral shares the released ids, so {} would fall back to them):
    # nothing to find the template by, so refuse rather than guess
    bad.config.special_token_ids = {name: -1 for name in ADAPTERS[family].default_special_token_ids}
    with pytest.raises(ValueError, match="query_mask is missing"):
        bad(**without)
