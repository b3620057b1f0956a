"""Prefill time of SpeechPrune against `original` and `full`, measured side by side in one run.

Three measurements, each a ratio of medians over interleaved repeats (other work on the machine
slows every case alike):

1. LLM prefill alone, at the token counts of a 90 s recording: `full` = 2250 audio tokens,
   `original` (= rate 0) = 750, and 600 / 450 / 300 / 150 at rates 0.2 .. 0.8, each plus the text
   tokens. The FLOP ratio of the same model predicts each speedup; the table shows both.
2. End to end against `original`: audio encoder (1 window for `original`, 3 for SpeechPrune),
   projector, ``speechprune_select`` and prefill.
3. End to end against `full`: 3 windows and a prefill of all 2250 tokens, no selection.

On a CPU the default model is the Qwen2-Audio-7B shape scaled down (fewer layers, narrower
widths, head width kept, vocabulary scaled so that the output head keeps its share of FLOPs) with
the real token counts. ``--device cuda`` runs the real 7B shape in bf16 with random weights and
adds peak activation memory from CUDA statistics. Weights are random: speed does not depend on
their values.

Clocks: on a CPU the main columns use this process's CPU time with one torch thread, because the
machine's cores are shared and the wall clock also counts the time other processes hold them;
wall-clock speedups are shown beside. On CUDA the wall clock (with synchronisation) is used.

``--family NAME`` (any of ``speechprune.evaluation.architectures.FAMILIES`` other than
``qwen2_audio``) measures that family's released language model instead (random weights, its
real shape on CUDA in bf16, scaled on a CPU): the LLM prefill at its own token counts of a 90 s
recording (``W`` per 30 s, ``N`` in all) and the selection on its ``N`` rows. The end-to-end
sections stay Qwen2-Audio's (its encoder is the one this benchmark builds).

Usage::

    python benchmarks/bench_prefill.py                    # CPU, scaled model, 5 repeats
    python benchmarks/bench_prefill.py --device cuda      # one GPU, the real 7B shape in bf16
    python benchmarks/bench_prefill.py --device cuda --family voxtral   # Voxtral-Mini-3B's LLM
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch
from transformers import Qwen2AudioConfig, Qwen2AudioEncoder, Qwen2ForCausalLM

from speechprune.evaluation.architectures import FAMILIES, audio_tokens, released_architecture
from speechprune.evaluation.efficiency import (
    QWEN2_AUDIO_7B_CONFIG,
    activation_memory_estimate,
    audio_encoder_flops,
    build_language_model,
    llm_prefill_flops,
)

RATES = (0.0, 0.2, 0.4, 0.6, 0.8)
WINDOW_TOKENS = 750  # one 30 s window
WINDOWS = 3  # a 90 s recording


def scaled_config(layer_factor: float, width_factor: float) -> Qwen2AudioConfig:
    """The 7B fixture with ``layer_factor`` of its layers and ``width_factor`` of its widths.

    Head widths stay real (128 text, 64 audio): the number of heads shrinks instead. The
    vocabulary shrinks by both factors, so that the output head's share of per-token FLOPs stays
    what it is in the 7B model (about 9%). Audio geometry (128 mel bins, 1500 positions) is real.
    """
    data = {k: v for k, v in json.loads(QWEN2_AUDIO_7B_CONFIG.read_text()).items() if not k.startswith("_")}
    text, audio = data["text_config"], data["audio_config"]

    def scale(value: int, factor: float, multiple: int = 1) -> int:
        return max(multiple, round(value * factor / multiple) * multiple)

    if (layer_factor, width_factor) != (1.0, 1.0):
        text_head = text["hidden_size"] // text["num_attention_heads"]
        audio_head = audio["d_model"] // audio["encoder_attention_heads"]
        text["num_attention_heads"] = scale(text["num_attention_heads"], width_factor)
        text["num_key_value_heads"] = scale(text["num_key_value_heads"], width_factor)
        text["hidden_size"] = text["num_attention_heads"] * text_head
        text["intermediate_size"] = scale(text["intermediate_size"], width_factor, 8)
        text["vocab_size"] = scale(text["vocab_size"], width_factor * layer_factor, 8)
        text["num_hidden_layers"] = scale(text["num_hidden_layers"], layer_factor)
        text["bos_token_id"] = text["eos_token_id"] = None  # the real ids lie outside the scaled vocabulary
        audio["encoder_attention_heads"] = scale(audio["encoder_attention_heads"], width_factor)
        audio["d_model"] = audio["encoder_attention_heads"] * audio_head
        audio["encoder_ffn_dim"] = scale(audio["encoder_ffn_dim"], width_factor, 8)
        audio["encoder_layers"] = scale(audio["encoder_layers"], layer_factor)
    return Qwen2AudioConfig(**data)


class Pipeline:
    """Random-weight encoder, projector and language model of one config, on one device."""

    def __init__(self, config: Qwen2AudioConfig, device: str, dtype: torch.dtype, logits: str, seed: int = 0):
        self.config, self.device, self.dtype = config, torch.device(device), dtype
        self.logits_to_keep = 0 if logits == "all" else 1
        text, audio = config.text_config, config.audio_config
        text._attn_implementation = "sdpa"
        audio._attn_implementation = "sdpa"
        torch.manual_seed(seed)
        # Build in the target dtype on the target device: a 7B model in float32 would need 28 GB first.
        default = torch.get_default_dtype()
        torch.set_default_dtype(dtype)
        try:
            with self.device:
                self.lm = Qwen2ForCausalLM(text).eval()
                self.encoder = Qwen2AudioEncoder(audio).eval()
                self.projector = torch.nn.Linear(audio.d_model, text.hidden_size)
        finally:
            torch.set_default_dtype(default)
        frames = audio.max_source_positions * 2  # conv2 halves 3000 mel frames to 1500
        self.features = torch.randn(WINDOWS, audio.num_mel_bins, frames, device=self.device, dtype=dtype)
        self.text = torch.randn(1, 256, text.hidden_size, device=self.device, dtype=dtype)
        attn = self.lm.model.layers[0].self_attn
        self.q_weight, self.k_weight = attn.q_proj.weight, attn.k_proj.weight
        self.head_dim = attn.head_dim

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def prefill(self, audio: torch.Tensor, text_tokens: int) -> torch.Tensor:
        """One prefill over ``audio`` rows (n, H) followed by ``text_tokens`` text rows."""
        embeds = torch.cat([audio[None], self.text[:, :text_tokens]], dim=1)
        return self.lm(inputs_embeds=embeds, use_cache=True, logits_to_keep=self.logits_to_keep).logits

    def encode(self, windows: int) -> torch.Tensor:
        """Encoder + projector over ``windows`` 30 s windows -> (windows * 750, H) audio rows."""
        hidden = self.encoder(self.features[:windows]).last_hidden_state
        return self.projector(hidden).reshape(-1, self.config.text_config.hidden_size)

    def select(self, audio: torch.Tensor, rate: float, query_tokens: int) -> torch.Tensor:
        from speechprune.modeling.pruning import speechprune_select

        query = self.text[0, :query_tokens]
        kept = speechprune_select(audio, query, self.q_weight, self.k_weight, rate, head_dim=self.head_dim)
        return audio[kept.to(audio.device)]


def _time(fn, pipe: Pipeline) -> dict[str, float]:
    """Seconds of one call, on two clocks: ``wall`` and ``cpu`` (this process's CPU time).

    On a shared CPU the wall clock also counts the time other processes hold the cores; with one
    torch thread the CPU clock counts only this work, so it is the steadier measure of cost there.
    """
    pipe.sync()
    wall, cpu = time.perf_counter(), time.process_time()
    with torch.no_grad():
        fn()
    pipe.sync()
    return {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}


def _peak_bytes(fn, pipe: Pipeline) -> int | None:
    """Peak CUDA memory above what was allocated before ``fn`` (weights, inputs): activations."""
    if pipe.device.type != "cuda":
        return None
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    with torch.no_grad():
        fn()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - base


def _cases(pipe: Pipeline, text_tokens: int, query_tokens: int) -> dict[str, tuple]:
    """name -> (callable, group). Groups: "llm" (prefill only), "e2e" (encoder .. prefill), "select"."""
    audio_rows = torch.randn(WINDOWS * WINDOW_TOKENS, pipe.config.text_config.hidden_size, dtype=pipe.dtype)
    audio_rows = audio_rows.to(pipe.device)
    cases: dict[str, tuple] = {"llm/full": (lambda: pipe.prefill(audio_rows, text_tokens), "llm")}
    for rate in RATES:
        n = round(WINDOW_TOKENS * (1 - rate))
        cases[f"llm/{rate}"] = (lambda n=n: pipe.prefill(audio_rows[:n], text_tokens), "llm")
    cases["e2e/original"] = (lambda: pipe.prefill(pipe.encode(1)[:WINDOW_TOKENS], text_tokens), "e2e")
    cases["e2e/full"] = (lambda: pipe.prefill(pipe.encode(WINDOWS), text_tokens), "e2e")
    for rate in RATES:

        def e2e(rate=rate):
            return pipe.prefill(pipe.select(pipe.encode(WINDOWS), rate, query_tokens), text_tokens)

        cases[f"e2e/{rate}"] = (e2e, "e2e")
    cases["select/0.8"] = (lambda: pipe.select(audio_rows, 0.8, query_tokens), "select")
    return cases


def scaled_text_config(family: str, layer_factor: float, width_factor: float) -> dict:
    """``family``'s released text config with ``layer_factor`` of its layers and ``width_factor`` of its widths.

    As :func:`scaled_config`: head widths stay, head counts shrink (at least one), the vocabulary
    shrinks by both factors. Gemma 4's layer pattern and KV-shared layers shrink with the layers.
    """
    text = released_architecture(family).text_config
    if (layer_factor, width_factor) == (1.0, 1.0):
        return text

    def scale(value: int, factor: float, multiple: int = 1) -> int:
        return max(multiple, round(value * factor / multiple) * multiple)

    head = text.get("head_dim") or text["hidden_size"] // text["num_attention_heads"]
    text["num_attention_heads"] = scale(text["num_attention_heads"], width_factor)
    text["num_key_value_heads"] = min(text["num_attention_heads"], scale(text["num_key_value_heads"], width_factor))
    text["hidden_size"] = text["num_attention_heads"] * head
    for key in ("intermediate_size", "moe_intermediate_size"):
        if key in text:
            text[key] = scale(text[key], width_factor, 8)
    for key in ("vocab_size", "vocab_size_per_layer_input"):
        if key in text:
            text[key] = scale(text[key], width_factor * layer_factor, 8)
    layers = scale(text["num_hidden_layers"], layer_factor)
    if "layer_types" in text:  # keep the pattern's first layers, and a global last layer
        text["layer_types"] = text["layer_types"][: layers - 1] + ["full_attention"]
    if "num_kv_shared_layers" in text:
        text["num_kv_shared_layers"] = min(layers - 2, round(text["num_kv_shared_layers"] * layer_factor))
    text["num_hidden_layers"] = layers
    return text


class FamilyPipeline:
    """Random-weight language model of one family's released (or scaled) architecture, on one device."""

    def __init__(self, family: str, text: dict, device: str, dtype: torch.dtype, logits: str, seed: int = 0):
        self.family, self.text, self.device, self.dtype = family, text, torch.device(device), dtype
        self.logits_to_keep = 0 if logits == "all" else 1
        torch.manual_seed(seed)
        default = torch.get_default_dtype()
        torch.set_default_dtype(dtype)
        try:
            self.lm = build_language_model(text, str(self.device)).eval()
        finally:
            torch.set_default_dtype(default)
        if self.device.type == "cpu":  # the grouped-mm experts kernel wants bf16 on a CPU
            self.lm.config._experts_implementation = "eager"
        self.hidden = text["hidden_size"]
        self.text_rows = torch.randn(1, 256, self.hidden, device=self.device, dtype=dtype)
        layer0 = self.lm.model.layers[0].self_attn
        self.q_weight, self.k_weight, self.head_dim = layer0.q_proj.weight, layer0.k_proj.weight, layer0.head_dim

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def prefill(self, audio: torch.Tensor, text_tokens: int):
        embeds = torch.cat([audio[None], self.text_rows[:, :text_tokens]], dim=1)
        extra = {}
        if self.text.get("hidden_size_per_layer_input"):  # Gemma 4's second per-position input
            shape = (1, embeds.shape[1], self.text["num_hidden_layers"], self.text["hidden_size_per_layer_input"])
            extra["per_layer_inputs"] = torch.randn(shape, device=self.device, dtype=self.dtype)
        return self.lm(inputs_embeds=embeds, use_cache=True, logits_to_keep=self.logits_to_keep, **extra)

    def select(self, audio: torch.Tensor, rate: float, query_tokens: int, window: int) -> torch.Tensor:
        from speechprune.modeling.pruning import speechprune_select

        query = self.text_rows[0, :query_tokens]
        kept = speechprune_select(
            audio, query, self.q_weight, self.k_weight, rate, phase1_tokens=window, head_dim=self.head_dim
        )
        return audio[kept.to(audio.device)]


def run_family(args: argparse.Namespace) -> dict:
    """Time one family's LLM prefill at its 90 s token counts, and the selection (interleaved repeats)."""
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[args.dtype]
    if args.threads:
        torch.set_num_threads(args.threads)
    text = scaled_text_config(args.family, args.layer_factor, args.width_factor)
    pipe = FamilyPipeline(args.family, text, args.device, dtype, args.logits)
    window = released_architecture(args.family).tokens_per_30s
    total = audio_tokens(args.family, 90)
    rows = torch.randn(total, pipe.hidden, dtype=dtype).to(pipe.device)
    counts = {"full": total, **{f"{rate}": round(window * (1 - rate)) for rate in RATES}}
    cases = {f"llm/{key}": (lambda n=n: pipe.prefill(rows[:n], args.text_tokens)) for key, n in counts.items()}
    cases["select/0.8"] = lambda: pipe.select(rows, 0.8, args.query_tokens, window)
    for fn in cases.values():
        _time(fn, pipe)
    times: dict[str, list[dict]] = {name: [] for name in cases}
    names = list(cases)
    for rep in range(args.repeats):
        for name in names[rep % len(names) :] + names[: rep % len(names)]:
            times[name].append(_time(cases[name], pipe))
    peaks = {name: _peak_bytes(cases[name], pipe) for name in names if name.startswith("llm/")}
    return {"text": text, "counts": counts, "times": times, "peaks": peaks, "window": window}


def report_family(args: argparse.Namespace, result: dict) -> str:
    text, counts, times = result["text"], result["counts"], result["times"]
    clock = args.clock
    med = {name: statistics.median(t[clock] for t in values) for name, values in times.items()}
    device = (
        f"{args.device} ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
        if args.device == "cpu"
        else torch.cuda.get_device_name()
    )
    lines = [
        f"device: {device}",
        f"family: {args.family} ({released_architecture(args.family).checkpoint}); LLM {text['num_hidden_layers']} "
        f"layers x {text['hidden_size']} (vocab {text['vocab_size']}); dtype {args.dtype}; {args.repeats} repeats, "
        f"medians; clock: {clock}",
        "",
        f"LLM prefill of a 90 s recording (N = {counts['full']}, W = {result['window']}), speedup against `original`:",
        "",
        f"| case | tokens | {clock} ms | speedup | FLOP-predicted | peak activation GiB |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    base = "llm/0.0"

    def flops(key: str) -> int:
        return llm_prefill_flops(text, counts[key] + args.text_tokens, logits=args.logits)

    for key in counts:
        name, peak = f"llm/{key}", result["peaks"].get(f"llm/{key}")
        peak_text = "-" if peak is None else f"{peak / 2**30:.3f}"
        lines.append(
            f"| {'original / 0.0' if key == '0.0' else key} | {counts[key] + args.text_tokens} | "
            f"{1e3 * med[name]:.1f} | {med[base] / med[name]:.2f}x | {flops('0.0') / flops(key):.2f}x | {peak_text} |"
        )
    lines += [
        "",
        f"Selection alone (`speechprune_select`, {counts['full']} -> {result['window']} -> {counts['0.8']} rows): "
        f"{1e3 * med['select/0.8']:.1f} ms ({clock}), {100 * med['select/0.8'] / med['llm/0.8']:.1f}% of the "
        "rate-0.8 prefill.",
    ]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> dict:
    device = args.device
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[args.dtype]
    config = scaled_config(args.layer_factor, args.width_factor)
    if args.threads:
        torch.set_num_threads(args.threads)
    pipe = Pipeline(config, device, dtype, args.logits)
    cases = _cases(pipe, args.text_tokens, args.query_tokens)
    names = list(cases)
    for name in names:  # warm-up: allocator, kernels, lazy init
        _time(cases[name][0], pipe)
    times: dict[str, list[dict]] = {name: [] for name in names}
    for rep in range(args.repeats):
        # Interleave and rotate the order, so that load from other processes hits every case alike.
        order = names[rep % len(names) :] + names[: rep % len(names)]
        for name in order:
            times[name].append(_time(cases[name][0], pipe))
    peaks = {name: _peak_bytes(cases[name][0], pipe) for name in names if name.startswith("llm/")}
    return {"config": config, "times": times, "peaks": peaks, "pipe": pipe}


def _llm_tokens(name: str, text_tokens: int) -> int:
    key = name.split("/")[1]
    audio = WINDOWS * WINDOW_TOKENS if key == "full" else round(WINDOW_TOKENS * (1 - float(key)))
    return audio + text_tokens


def _transient(estimate: dict) -> int:
    return estimate["total"] - estimate["kv_cache"]


def report(args: argparse.Namespace, result: dict) -> str:
    config, times = result["config"], result["times"]
    clock, other = args.clock, ("wall" if args.clock == "cpu" else "cpu")
    med = {name: statistics.median(t[clock] for t in values) for name, values in times.items()}
    alt = {name: statistics.median(t[other] for t in values) for name, values in times.items()}
    text = config.text_config
    lines = [
        f"device: {args.device} ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
        if args.device == "cpu"
        else f"device: {torch.cuda.get_device_name()}",
        f"model: text {text.num_hidden_layers} layers x {text.hidden_size} (mlp {text.intermediate_size}, "
        f"vocab {text.vocab_size}), audio {config.audio_config.encoder_layers} layers x "
        f"{config.audio_config.d_model}; dtype {args.dtype}; logits at {args.logits} positions; "
        f"{args.repeats} repeats, medians; clock: {clock} (speedups on the {other} clock beside)",
        "",
        "LLM prefill (audio + text tokens), speedup against `original` (= rate 0, 750 audio tokens):",
        "",
        f"| case | tokens | {clock} ms | speedup | FLOP-predicted | measured / predicted | time cut "
        f"| {other} speedup |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]

    def flops(name: str) -> int:
        return llm_prefill_flops(config, _llm_tokens(name, args.text_tokens), logits=args.logits)

    base = "llm/0.0"
    for name in ["llm/full", *[f"llm/{r}" for r in RATES]]:
        speed, predicted = med[base] / med[name], flops(base) / flops(name)
        label = "full" if name == "llm/full" else ("original / 0.0" if name == base else name.split("/")[1])
        lines.append(
            f"| {label} | {_llm_tokens(name, args.text_tokens)} | {1e3 * med[name]:.1f} | {speed:.2f}x | "
            f"{predicted:.2f}x | {speed / predicted:.2f} | {100 * (1 - med[name] / med[base]):.0f}% "
            f"| {alt[base] / alt[name]:.2f}x |"
        )

    def e2e_flops(name: str) -> int:
        key = name.split("/")[1]
        windows = 1 if key == "original" else WINDOWS
        llm_name = "llm/0.0" if key == "original" else ("llm/full" if key == "full" else f"llm/{key}")
        return audio_encoder_flops(config, windows) + flops(llm_name)

    for ref in ("original", "full"):
        lines += [
            "",
            f"End to end (encoder + projector + selection + prefill), speedup against `{ref}`:",
            "",
            f"| case | windows | {clock} ms | speedup | FLOP-predicted (selection excluded) | {other} speedup |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for name in [f"e2e/{ref}", *[f"e2e/{r}" for r in RATES]]:
            windows = 1 if name == "e2e/original" else WINDOWS
            label = name.split("/")[1] if name == f"e2e/{ref}" else f"speechprune {name.split('/')[1]}"
            lines.append(
                f"| {label} | {windows} | {1e3 * med[name]:.1f} | {med[f'e2e/{ref}'] / med[name]:.2f}x | "
                f"{e2e_flops(f'e2e/{ref}') / e2e_flops(name):.2f}x | {alt[f'e2e/{ref}'] / alt[name]:.2f}x |"
            )
    lines += [
        "",
        f"Selection alone (`speechprune_select`, 2250 -> 750 -> 150 rows): {1e3 * med['select/0.8']:.1f} ms "
        f"({clock}), {100 * med['select/0.8'] / med['e2e/0.8']:.1f}% of the end-to-end time at rate 0.8.",
    ]

    lines += ["", "Activation memory of the LLM prefill, rate 0.8 against `original`:", ""]
    peaks = result["peaks"]
    if peaks.get(base) is not None:
        cut = 1 - peaks["llm/0.8"] / peaks[base]
        lines.append(
            f"measured (CUDA peak above weights): original {peaks[base] / 2**30:.3f} GiB, "
            f"rate 0.8 {peaks['llm/0.8'] / 2**30:.3f} GiB, cut {100 * cut:.0f}% (paper: 79%)"
        )
    orig = activation_memory_estimate(QWEN2_AUDIO_7B_CONFIG, _llm_tokens(base, args.text_tokens))
    pruned = activation_memory_estimate(QWEN2_AUDIO_7B_CONFIG, _llm_tokens("llm/0.8", args.text_tokens))
    lines.append(
        f"ESTIMATE for the 7B architecture in bf16 (analytic, not measured): original {orig['total'] / 1e9:.3f} GB, "
        f"rate 0.8 {pruned['total'] / 1e9:.3f} GB, cut {100 * (1 - pruned['total'] / orig['total']):.0f}% "
        f"(without the KV cache: {100 * (1 - _transient(pruned) / _transient(orig)):.0f}%)"
    )
    spread = {name: (min(t[clock] for t in v), max(t[clock] for t in v)) for name, v in times.items()}
    worst = max(spread, key=lambda n: spread[n][1] / spread[n][0])
    lines += ["", f"largest spread ({clock}): {worst} {spread[worst][0] * 1e3:.1f} .. {spread[worst][1] * 1e3:.1f} ms"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument(
        "--dtype",
        default=None,
        choices=["float32", "bfloat16", "float16"],
        help="default: float32 on cpu, bfloat16 on cuda",
    )
    parser.add_argument(
        "--layer-factor", type=float, default=None, help="share of the 7B's layers (default 0.125 on cpu, 1 on cuda)"
    )
    parser.add_argument(
        "--width-factor", type=float, default=None, help="share of the 7B's widths (default 0.25 on cpu, 1 on cuda)"
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--family", default="qwen2_audio", choices=FAMILIES, help="whose language model (default qwen2_audio)"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default 1 on cpu)")
    parser.add_argument(
        "--clock",
        default=None,
        choices=["cpu", "wall"],
        help="the clock of the main columns: process CPU time (default on cpu) or wall time (default on cuda)",
    )
    parser.add_argument("--text-tokens", type=int, default=112, help="text tokens after the audio (paper: 112)")
    parser.add_argument("--query-tokens", type=int, default=60, help="query rows for phase 1 (question + choices)")
    parser.add_argument(
        "--logits",
        default="all",
        choices=["all", "last"],
        help="output head at every position (as the FLOP count) or the last only",
    )
    args = parser.parse_args(argv)
    on_gpu = args.device.startswith("cuda")
    args.dtype = args.dtype or ("bfloat16" if on_gpu else "float32")
    args.layer_factor = args.layer_factor or (1.0 if on_gpu else 0.125)
    args.width_factor = args.width_factor or (1.0 if on_gpu else 0.25)
    args.threads = args.threads or (None if on_gpu else 1)
    args.clock = args.clock or ("wall" if on_gpu else "cpu")
    if args.clock == "cpu" and on_gpu:
        parser.error("--clock cpu measures CPU work only; use the wall clock with --device cuda")
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.family != "qwen2_audio":
        print(report_family(args, run_family(args)))
        return 0
    result = run(args)
    print(report(args, result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
