"""Granite Speech's speech LoRA: phase 2 binarizes W + scaling * B A, and the pruned prompt is generated with it on.

The release ships a PEFT LoRA on its language model that the stock ``generate`` turns on only when
``input_features`` is given (SPEC section 7). The tiny model of ``tests/test_families.py`` has none; here one
with random weights is added to q, k and v of every decoder layer through transformers' ``add_adapter``.

transformers 5.24 asks for peft >= 0.22, which the package index does not have yet (0.21.2 is the newest);
the LoRA layers and the adapter switches used here are the same in 0.21.2, so these tests lift that check.
"""

import functools

import pytest
import torch
import transformers.integrations.peft as transformers_peft
from peft import LoraConfig

import speechprune
from speechprune.modeling import pruning
from speechprune.modeling.families import ADAPTERS
from speechprune.testing import tiny_family, tiny_family_inputs

ADAPTER = ADAPTERS["granite_speech"]


@pytest.fixture(autouse=True)
def peft_0_21(monkeypatch):
    monkeypatch.setattr(transformers_peft, "check_peft_version", lambda min_version: None)


def with_lora(model):
    """``model`` with a rank-4 LoRA of random weights (``init_lora_weights=False``: B A is not zero)."""
    targets = r"model\.language_model\.layers\.\d+\.self_attn\.(q_proj|k_proj|v_proj)"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5)
        model.add_adapter(LoraConfig(r=4, lora_alpha=8, target_modules=targets, init_lora_weights=False))
    return model


@functools.cache
def lora_model():
    return speechprune.prune(with_lora(tiny_family("granite_speech")), pruning_method="speechprune", pruning_rate=0.4)


def naive_effective(projection):
    """SPEC section 7 read plainly: the base weight plus scaling times B A of the one adapter."""
    a, b = projection.lora_A["default"].weight, projection.lora_B["default"].weight
    return projection.base_layer.weight + projection.scaling["default"] * (b @ a)


def test_phase2_binarizes_the_lora_effective_weights_of_layer_0():
    model = lora_model()
    model.enable_adapters()
    attention = model.model.language_model.layers[0].self_attn
    q_weight, k_weight, head_dim = ADAPTER.first_attention(model)
    assert torch.equal(q_weight, naive_effective(attention.q_proj))
    assert torch.equal(k_weight, naive_effective(attention.k_proj))
    assert head_dim == 16
    batch = tiny_family_inputs(model, [40.0])
    with torch.no_grad():
        out = model(**batch)
        rows = ADAPTER.capture(
            model, super(type(model), model).forward, {k: v for k, v in batch.items() if k != "query_mask"}
        )
    embeds, ids = rows["inputs_embeds"][0], batch["input_ids"][0]
    audio, query = embeds[ids == 593], embeds[batch["query_mask"][0]]

    def select(w_q, w_k):
        return pruning.speechprune_select(
            audio, query, w_q, w_k, 0.4, phase1_tokens=300, tokens_per_frame=10, head_dim=16
        )

    effective = select(naive_effective(attention.q_proj), naive_effective(attention.k_proj))
    assert torch.equal(out.selection[0]["kept"], effective)
    # The LoRA changes the choice here, so a selection from the base weights alone would be caught.
    assert not torch.equal(effective, select(attention.q_proj.base_layer.weight, attention.k_proj.base_layer.weight))


def test_a_merged_adapter_is_not_added_twice():
    model = speechprune.prune(with_lora(tiny_family("granite_speech")), pruning_method="speechprune")
    before = ADAPTER.first_attention(model)[:2]
    for projection in (
        model.model.language_model.layers[0].self_attn.q_proj,
        model.model.language_model.layers[0].self_attn.k_proj,
    ):
        projection.merge()
    after = ADAPTER.first_attention(model)[:2]
    for b, a in zip(before, after):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_the_pruned_prompt_is_generated_with_the_lora_on():
    """The stock generate turns the LoRA off without input_features; the pruned prompt carries audio all the same."""
    model = lora_model()
    batch = tiny_family_inputs(model, [12.0])  # 120 tokens: rate 0 keeps them all
    settings = {"max_new_tokens": 3, "do_sample": False, "return_dict_in_generate": True, "output_scores": True}
    model.disable_adapters()
    stock = model.generate(**batch, pruning_method="full", **settings)  # stock: input_features given, LoRA on
    model.disable_adapters()  # as after a text-only call
    pruned = model.generate(**batch, pruning_rate=0.0, **settings)
    assert model.last_selection[0]["num_kept"] == 120
    assert torch.equal(pruned.sequences, stock.sequences)
    assert all(torch.equal(a, b) for a, b in zip(pruned.scores, stock.scores))
    model.disable_adapters()
    with torch.no_grad():  # the LoRA matters: without it the first step's scores differ
        off = model(**batch, pruning_method="full").logits[:, -1]
    assert not torch.allclose(off, stock.scores[0], atol=1e-3)
