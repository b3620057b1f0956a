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
  * ``optimised``: pruning.py as shipped: weights binarized once (identity cache), int8 products
    with int32 accumulation, Q K^T split into base-128 int8 digits; also exact.
  Both must return the same indices; the script checks it.

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
    # The first optimised call binarizes the weights; later calls reuse them.
    pruning.clear_weight_cache()
    cold = timed(pruning.binarize_weights, q_weight, k_weight)

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

    print(f"torch {torch.__version__}, {args.threads} threads, {platform.processor() or platform.machine()}")
    print(
        f"N={args.tokens}, D={d}, L={args.query}, k1=750; prefill {args.prefill_tokens} tokens; {args.repeats} repeats"
    )
    print(
        f"one-off weight binarization (first call per model): wall {cold[0] * 1e3:.0f} ms, cpu {cold[1] * 1e3:.0f} ms"
    )
    for clock, column in (("wall", 0), ("process CPU", 1)):
        med = {name: statistics.median(v[column] for v in values) for name, values in times.items()}
        prefill = 32 * med["layer"]
        print(f"\n{clock} time (medians): one decoder layer {med['layer'] * 1e3:.0f} ms, 32 layers {prefill:.1f} s")
        print(f"phase 1 alone (2250 -> 750): {med['phase1'] * 1e3:.1f} ms = {100 * med['phase1'] / prefill:.3f} %\n")
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
