"""Phi-4-multimodal's fused qkv_proj with a speech LoRA: phase 2 binarizes the q and k rows of W + scaling * B A.

The release's speech LoRA is a PEFT adapter on the decoder's projections (loaded with ``load_adapter``); here a
rank-4 one with random weights is put on every layer's ``qkv_proj`` with PEFT directly. The tiny model of
``tests/test_families.py`` (which checks everything else) has none.
"""

import pytest
import torch
from peft import LoraConfig, inject_adapter_in_model

import speechprune
from speechprune.modeling import pruning
from speechprune.modeling.families import ADAPTERS
from speechprune.testing import tiny_family, tiny_family_inputs

ADAPTER = ADAPTERS["phi4_multimodal"]


def test_phase2_takes_the_q_and_k_rows_of_the_lora_effective_qkv_weight():
    model = speechprune.prune(tiny_family("phi4_multimodal"), pruning_method="speechprune", pruning_rate=0.4)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5)
        lora = LoraConfig(r=4, lora_alpha=8, target_modules=["qkv_proj"], init_lora_weights=False)
        inject_adapter_in_model(lora, model.model)
    qkv = model.model.layers[0].self_attn.qkv_proj
    a, b = qkv.lora_A["default"].weight, qkv.lora_B["default"].weight
    fused = qkv.base_layer.weight + qkv.scaling["default"] * (b @ a)  # SPEC section 7, read plainly
    assert fused.shape == (64 + 32 + 32, 64)  # 4 query heads, then 2 key and 2 value heads, of 16
    q_weight, k_weight, head_dim = ADAPTER.first_attention(model)
    assert torch.equal(q_weight, fused[:64]) and torch.equal(k_weight, fused[64:96]) and head_dim == 16

    batch = tiny_family_inputs(model, [40.0])
    with torch.no_grad():
        out = model(**batch)
    rows = ADAPTER.capture(model, None, {k: v for k, v in batch.items() if k != "query_mask"})["inputs_embeds"][0]
    ids = batch["input_ids"][0]
    audio, query = rows[ids == 593], rows[batch["query_mask"][0]]

    def select(w_q, w_k):
        return pruning.speechprune_select(
            audio, query, w_q, w_k, 0.4, phase1_tokens=375, tokens_per_frame=13, head_dim=16
        )

    assert torch.equal(out.selection[0]["kept"], select(fused[:64], fused[64:96]))
    base = qkv.base_layer.weight
    assert not torch.equal(out.selection[0]["kept"], select(base[:64], base[64:96]))  # the LoRA changes the choice


def test_audio_without_its_token_counts_is_refused_by_name():
    model = speechprune.prune(tiny_family("phi4_multimodal"), pruning_method="speechprune")
    batch = tiny_family_inputs(model, [12.0])
    batch.pop("audio_embed_sizes")
    with pytest.raises(ValueError, match="audio_embed_sizes is required"):
        model(**batch)
