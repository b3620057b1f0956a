"""Cost of SpeechPrune's selection next to the LLM prefill, at Qwen2-Audio-7B dimensions, on CPU.

Side by side in one run, on one machine, interleaved repeats (other work on a shared machine
slows every case alike), medians on two clocks: wall time and this process's CPU time (the
latter is less disturbed by other processes on shared cores):

- one Qwen2-7B decoder layer (hidden 4096, intermediate 11008, 32 heads, MHA; transformers'
  ``Qwen2DecoderLayer`` with random weights, float32, SDPA, causal) on 830 tokens, the
  ``original`` prefill length; 32 layers estimate the prefill (embeddings and the output head,
  which scores one position, are left out);
- ``speechprune_select`` on N = 2250 audio tokens (90 s), D = 4096, k1 = 750, a 48-token query
  and 4096 x 4096 W_q / W_k, at rates 0.2 .. 0.8, twice:
  * ``plain``: phase 2 as SPEC writes it, binarizing W_q and W_k on every call, Q and K as
    float32 products (exact: sums of +-1) and Q K^T in float64 (exact: beyond float32's integers);
  * ``optimised``: pruning.py as shipped: weights binarized on every call too (nothing is
    cached, so casts and ``.data`` changes are always seen), int8 products with int32
    accumulation, Q K^T split into base-128 int8 digits; also exact.
  Both must return the same indices; the script checks it.
- the weight binarization alone (part of every optimised call), and SPEC section 8's baselines
  at rate 0.4: ``uniform_select``, ``oracle_select``, ``dart_select`` (8 pivots), and the
  ranking step of ``llm_attention`` on (32 heads, 80 queries, N) probabilities. ``llm_attention``
  itself needs K + 1 = 3 decoder layers on the unpruned sequence (N + 80 tokens) before the
  pruned prefill: ``--llm-attention`` times one layer on that length once (slow on a CPU).

Usage::

    python benchmarks/bench_selection.py            # all cores, 5 repeats
    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_selection.py --repeats 3 --threads 2

On cores shared with other jobs, ``OMP_WAIT_POLICY=PASSIVE`` keeps OpenMP threads from spinning
while they wait for a descheduled sibling, which otherwise inflates both clocks of the many short
parallel steps of the selection far more than those of the layer's few large matrix products.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import time

import torch
from transformers import Qwen2Config
from transformers.models.qwen2.modeling_qwen2 import Qwen2DecoderLayer, Qwen2RotaryEmbedding

from speechprune.modeling import pruning

RATES = (0.2, 0.4, 0.6, 0.8)


def plain_phase2(audio, q_weight, k_weight, k, tie_break):
    """SPEC phase 2 written directly (MHA): binarize everything each call, float32 Q/K, float64 Q K^T."""
    if audio.shape[0] <= k:
        return torch.arange(audio.shape[0])
    signs = torch.where(audio >= 0, 1.0, -1.0)
    q = signs @ torch.where(q_weight >= 0, 1.0, -1.0).T
    keys = signs @ torch.where(k_weight >= 0, 1.0, -1.0).T
    logits = (q.double() @ keys.double().T) / math.sqrt(q.shape[1])
    return pruning._top_k_by(pruning.log_importance(logits), tie_break.double(), k)


@torch.no_grad()
def plain_speechprune(audio, text, q_weight, k_weight, rate):
    scores = pruning.token_scores(audio, text)
    kept1 = pruning._phase1_from_scores(scores, min(audio.shape[0], 750), 25, 1.0)
    k2 = pruning.final_count(audio.shape[0], rate)
    return kept1[plain_phase2(audio[kept1], q_weight, k_weight, k2, scores[kept1])]


def timed(fn, *args, **kwargs):
    """(wall seconds, process CPU seconds, result) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return time.perf_counter() - wall, time.process_time() - cpu, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--tokens", type=int, default=2250, help="audio tokens N")
    parser.add_argument("--query", type=int, default=48, help="query tokens L")
    parser.add_argument("--prefill-tokens", type=int, default=830)
    parser.add_argument("--llm-attention", action="store_true", help="also time one layer on N + 80 tokens")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    d = 4096

    config = Qwen2Config(
        hidden_size=d,
        intermediate_size=11008,
        num_attention_heads=32,
        num_key_value_heads=32,
        max_position_embeddings=8192,
    )
    config._attn_implementation = "sdpa"
    layer = Qwen2DecoderLayer(config, layer_idx=0).eval()
    hidden = torch.randn(1, args.prefill_tokens, d)
    positions = torch.arange(args.prefill_tokens)[None]
    rope = Qwen2RotaryEmbedding(config)(hidden, positions)

    audio = torch.randn(args.tokens, d)
    text = torch.randn(args.query, d)
    q_weight = layer.self_attn.q_proj.weight  # the real layout: nn.Linear (out, in)
    k_weight = layer.self_attn.k_proj.weight

    def run_layer():
        with torch.inference_mode():
            return layer(hidden, position_embeddings=rope)

    run_layer()  # warm-up
    k2 = pruning.final_count(args.tokens, 0.4)
    attention = torch.softmax(torch.randn(32, 80, args.tokens), dim=-1)

    times: dict[str, list[tuple[float, float]]] = {}

    def record(name, fn, *call_args):
        wall, cpu, out = timed(fn, *call_args)
        times.setdefault(name, []).append((wall, cpu))
        return out

    for _ in range(args.repeats):
        record("layer", run_layer)
        for rate in RATES:
            plain = record(f"plain {rate}", plain_speechprune, audio, text, q_weight, k_weight, rate)
            fast = record(f"fast {rate}", pruning.speechprune_select, audio, text, q_weight, k_weight, rate)
            if not torch.equal(plain, fast):
                raise AssertionError(f"plain and optimised selections differ at rate {rate}")
        record("phase1", pruning.phase1_select, audio, text, 750)
        record("binarize", pruning.binarize_weights, q_weight, k_weight)
        record("uniform", pruning.uniform_select, args.tokens, k2)
        record("oracle", pruning.oracle_select, args.tokens, k2, 30.0, 34.5)
        record("dart", pruning.dart_select, audio, k2)
        record("llm_attention ranking", pruning.llm_attention_select, attention, k2)

    print(f"torch {torch.__version__}, {args.threads} threads, {platform.processor() or platform.machine()}")
    print(
        f"N={args.tokens}, D={d}, L={args.query}, k1=750; prefill {args.prefill_tokens} tokens; {args.repeats} repeats"
    )
    long_layer = None
    if args.llm_attention:
        long_hidden = torch.randn(1, args.tokens + 80, d)
        long_rope = Qwen2RotaryEmbedding(config)(long_hidden, torch.arange(args.tokens + 80)[None])
        with torch.inference_mode():
            long_layer = timed(layer, long_hidden, position_embeddings=long_rope)
    for clock, column in (("wall", 0), ("process CPU", 1)):
        med = {name: statistics.median(v[column] for v in values) for name, values in times.items()}
        prefill = 32 * med["layer"]
        print(f"\n{clock} time (medians): one decoder layer {med['layer'] * 1e3:.0f} ms, 32 layers {prefill:.1f} s")
        print(f"phase 1 alone (2250 -> 750): {med['phase1'] * 1e3:.1f} ms = {100 * med['phase1'] / prefill:.3f} %")
        print(f"weight binarization (in every call): {med['binarize'] * 1e3:.1f} ms")
        speechprune = med["fast 0.4"]
        print(f"\nSPEC section 8 at rate 0.4 (k2 = {k2}), next to speechprune_select ({speechprune * 1e3:.0f} ms):")
        for name in ("uniform", "oracle", "dart", "llm_attention ranking"):
            print(f"  {name}: {med[name] * 1e3:.2f} ms = {med[name] / speechprune:.3f}x speechprune")
        if long_layer is not None:
            three = 3 * long_layer[column]
            print(
                f"  llm_attention's K + 1 = 3 layers on {args.tokens + 80} tokens: {three:.1f} s = "
                f"{three / speechprune:.0f}x speechprune = {100 * three / prefill:.1f} % of the original prefill"
            )
        print()
        print("| rate | kept | plain ms | plain % of prefill | optimised ms | optimised % of prefill | speedup |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for rate in RATES:
            plain, fast = med[f"plain {rate}"], med[f"fast {rate}"]
            kept = pruning.final_count(args.tokens, rate)
            print(
                f"| {rate} | {kept} | {plain * 1e3:.0f} | {100 * plain / prefill:.2f} | {fast * 1e3:.0f} | "
                f"{100 * fast / prefill:.2f} | {plain / fast:.1f}x |"
            )


if __name__ == "__main__":
    main()
