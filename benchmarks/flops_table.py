"""FLOPs and activation-memory estimates of Qwen2-Audio-7B prefill, beside the paper's Table 1.

Counts only, nothing is timed: the 7B architecture is built on the ``meta`` device (no weights)
and counted with ``torch.utils.flop_counter``. Prints three Markdown tables:

1. LLM prefill TFLOPs at the token counts that the paper's column implies (720 x (1 - rate)
   audio + 112 text) and at this project's counts (750 x (1 - rate) audio + 112 text).
2. The audio encoder, which the paper leaves out: 1 window (30 s) against 3 (90 s), and its
   share of the whole prefill (encoder + LLM) at each rate.
3. The analytic activation-memory estimate (bf16) beside the paper's activation column.
4. How many 90 s recordings per second a GPU prefill would consume, from the FLOPs and an
   assumed effective throughput (``--gpu-tflops`` x ``--mfu``): the rate the data path must keep.
5. Every supported family's released language model (``speechprune.evaluation.architectures``
   says where each size came from) on a 90 s recording: LLM TFLOPs at rates 0 to 0.8 with
   ``round((1 - rate) * W)`` audio tokens + 112 text tokens (``W``: the family's tokens per 30 s),
   ``full`` (all the recording's tokens), and the audio encoder's share of encoder + LLM. A speech LoRA
   (Granite Speech's) is counted unmerged, as PEFT runs it: ``2 n r (in + out)`` per adapted projection.

Usage::

    python benchmarks/flops_table.py
"""

from __future__ import annotations

import argparse

from speechprune.evaluation.architectures import FAMILIES, released_architecture
from speechprune.evaluation.architectures import audio_tokens as family_tokens
from speechprune.evaluation.efficiency import (
    QWEN2_AUDIO_7B_CONFIG,
    activation_memory_estimate,
    audio_encoder_flops,
    family_audio_encoder_flops,
    llm_prefill_flops,
    lora_prefill_flops,
)

PAPER = {  # rate -> (LLM TFLOPs, activation GB), SPEC section 6; rate 0 is the paper's "original"
    0.0: (12.2, 0.19),
    0.2: (10.06, 0.15),
    0.4: (7.93, 0.11),
    0.6: (5.79, 0.07),
    0.8: (3.66, 0.04),
}
TEXT_TOKENS = 112
FULL_AUDIO_TOKENS = 2250


def audio_tokens(rate: float, per_window: int) -> int:
    return round(per_window * (1 - rate))


def flops_table(config) -> list[str]:
    lines = [
        "| rate | tokens (720-based) | TFLOPs | paper | error | tokens (750-based) | TFLOPs |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for rate, (paper, _) in PAPER.items():
        n720, n750 = audio_tokens(rate, 720) + TEXT_TOKENS, audio_tokens(rate, 750) + TEXT_TOKENS
        ours, ours750 = llm_prefill_flops(config, n720) / 1e12, llm_prefill_flops(config, n750) / 1e12
        label = "0 (original)" if rate == 0 else f"{rate}"
        lines.append(
            f"| {label} | {n720} | {ours:.2f} | {paper} | {100 * (ours - paper) / paper:+.2f}% "
            f"| {n750} | {ours750:.2f} |"
        )
    n_full = FULL_AUDIO_TOKENS + TEXT_TOKENS
    lines.append(f"| full (90 s) | - | - | - | - | {n_full} | {llm_prefill_flops(config, n_full) / 1e12:.2f} |")
    return lines


def encoder_table(config) -> list[str]:
    one, three = audio_encoder_flops(config, 1) / 1e12, audio_encoder_flops(config, 3) / 1e12
    lines = [
        f"Audio encoder: {one:.2f} TFLOPs for 30 s (1 window), {three:.2f} TFLOPs for 90 s (3 windows).",
        "",
        "| case | windows | encoder TFLOPs | LLM TFLOPs (750-based) | total | encoder share |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    rows = [("original", 1, audio_tokens(0, 750)), ("full", 3, FULL_AUDIO_TOKENS)]
    rows += [(f"speechprune {rate}", 3, audio_tokens(rate, 750)) for rate in PAPER]
    for name, windows, n_audio in rows:
        enc = one * windows
        llm = llm_prefill_flops(config, n_audio + TEXT_TOKENS) / 1e12
        lines.append(
            f"| {name} | {windows} | {enc:.2f} | {llm:.2f} | {enc + llm:.2f} | {100 * enc / (enc + llm):.0f}% |"
        )
    return lines


def memory_table(config) -> list[str]:
    lines = [
        "| rate | tokens | KV cache GB | transient GB (no KV) | total GB | paper activation GB |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for rate, (_, paper) in PAPER.items():
        n = audio_tokens(rate, 720) + TEXT_TOKENS
        est = activation_memory_estimate(config, n)
        transient = est["total"] - est["kv_cache"]
        lines.append(
            f"| {rate} | {n} | {est['kv_cache'] / 1e9:.3f} | {transient / 1e9:.3f} "
            f"| {est['total'] / 1e9:.3f} | {paper} |"
        )
    first = activation_memory_estimate(config, audio_tokens(0, 720) + TEXT_TOKENS)
    last = activation_memory_estimate(config, audio_tokens(0.8, 720) + TEXT_TOKENS)
    cut_total = 1 - last["total"] / first["total"]
    cut_transient = 1 - (last["total"] - last["kv_cache"]) / (first["total"] - first["kv_cache"])
    lines += [
        "",
        f"Cut at rate 0.8 against original: {100 * cut_total:.0f}% with the KV cache, "
        f"{100 * cut_transient:.0f}% without (paper: 79%).",
    ]
    return lines


def gpu_rate_table(config, peak_tflops: float, mfu: float) -> list[str]:
    effective = peak_tflops * mfu
    one = audio_encoder_flops(config, 1) / 1e12
    lines = [
        f"Assumed: {peak_tflops:g} TFLOPS peak x {mfu:g} utilisation = {effective:g} TFLOPS effective "
        "(an assumption, not a measurement).",
        "",
        "| case | encoder + LLM TFLOPs per recording | GPU ms per recording | recordings/s to keep up |",
        "| --- | ---: | ---: | ---: |",
    ]
    rows = [("original (30 s used)", 1, audio_tokens(0, 750)), ("full", 3, FULL_AUDIO_TOKENS)]
    rows += [(f"speechprune {rate}", 3, audio_tokens(rate, 750)) for rate in (0.0, 0.8)]
    for name, windows, n_audio in rows:
        total = one * windows + llm_prefill_flops(config, n_audio + TEXT_TOKENS, logits="last") / 1e12
        ms = 1e3 * total / effective
        lines.append(f"| {name} | {total:.2f} | {ms:.1f} | {1e3 / ms:.1f} |")
    return lines


def _llm_tflops(arch, num_tokens: int) -> float:
    """A released LLM's prefill TFLOPs, with its speech LoRA (Granite Speech's) counted unmerged beside it."""
    flops = llm_prefill_flops(arch.text_config, num_tokens)
    return (flops + lora_prefill_flops(arch.text_config, arch.lora, num_tokens)) / 1e12


def families_table(families=FAMILIES, seconds: float = 90.0) -> list[str]:
    """LLM prefill TFLOPs per family on one recording of ``seconds``, and the audio encoder's share."""
    rates = list(PAPER)
    lines = [
        "| family (release) | W | N | "
        + " | ".join("0 (original)" if r == 0 else f"{r}" for r in rates)
        + " | full | encoder | encoder share at 0 / 0.8 |",
        "| --- | ---: | ---: | " + " | ".join("---:" for _ in rates) + " | ---: | ---: | ---: |",
    ]
    for family in families:
        arch = released_architecture(family)
        window, total = arch.tokens_per_30s, family_tokens(family, seconds)

        llm = [_llm_tflops(arch, audio_tokens(r, window) + TEXT_TOKENS) for r in rates]
        full = _llm_tflops(arch, total + TEXT_TOKENS)
        enc = family_audio_encoder_flops(family, seconds) / 1e12
        share = f"{100 * enc / (enc + llm[0]):.0f}% / {100 * enc / (enc + llm[-1]):.0f}%"
        lines.append(
            f"| {family} ({arch.checkpoint}) | {window} | {total} | "
            + " | ".join(f"{v:.2f}" for v in llm)
            + f" | {full:.2f} | {enc:.2f} | {share} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(QWEN2_AUDIO_7B_CONFIG), help="a Qwen2-Audio config.json")
    parser.add_argument("--gpu-tflops", type=float, default=989.0, help="GPU peak bf16 dense TFLOPS (H100 SXM: 989)")
    parser.add_argument("--mfu", type=float, default=0.4, help="assumed share of the peak a prefill reaches")
    parser.add_argument(
        "--families", nargs="+", default=list(FAMILIES), choices=FAMILIES, help="families of the last table"
    )
    args = parser.parse_args(argv)
    if args.gpu_tflops <= 0 or not 0 < args.mfu <= 1:
        parser.error("--gpu-tflops must be positive and --mfu in (0, 1]")
    sections = [
        ("LLM prefill FLOPs (output head at every position, as the paper counted)", flops_table(args.config)),
        ("Audio encoder FLOPs (not in the paper's column)", encoder_table(args.config)),
        (
            "Activation memory, ESTIMATE (analytic, bf16, eager attention, last-position logits)",
            memory_table(args.config),
        ),
        (
            "Recordings per second one GPU prefill consumes (output head at the last position, as generate())",
            gpu_rate_table(args.config, args.gpu_tflops, args.mfu),
        ),
        (
            "Every family on a 90 s recording: LLM prefill TFLOPs (output head at every position), "
            "audio encoder + projector TFLOPs and its share",
            families_table(args.families),
        ),
    ]
    for title, lines in sections:
        print(f"### {title}\n")
        print("\n".join(lines))
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
