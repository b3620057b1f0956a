"""Read a ``results.json`` as the paper does: a Table-1-style markdown table and plots.

- :func:`results_table`: method, rate, LLM TFLOPs, prefill ms, total / activation memory, SPIRAL and
  SPIRAL-H accuracy +- standard error, and each config's majority-letter baseline.
- :func:`plot_accuracy` (accuracy vs pruning rate per method) and :func:`plot_cost` (LLM TFLOPs and
  prefill time vs rate).
- :func:`plot_pruning_map`: which audio tokens a method kept, on the time axis, with the key sentence shaded.

Plots use matplotlib's object API with the Agg canvas, so nothing here opens a window or changes the
caller's pyplot backend. Command line: ``python -m speechprune.evaluation.report results.json --out DIR``.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.patches import Patch

from speechprune.evaluation.results import METHOD_ORDER, key_order, parse_result_key, read_results

CONFIG_TITLES = {"spiral": "SPIRAL", "spiral_h": "SPIRAL-H"}


def _number(value, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _percent(row: dict | None, with_stderr: bool = True) -> str:
    if row is None or row.get("accuracy") is None:
        return "-"
    text = f"{100 * row['accuracy']:.2f}"
    if with_stderr and row.get("accuracy_stderr") is not None:
        text += f" ± {100 * row['accuracy_stderr']:.2f}"
    return text


def _configs(results: dict) -> list[str]:
    """Config names, ``spiral`` and ``spiral_h`` first."""
    known = list(CONFIG_TITLES)
    return sorted(results["results"], key=lambda name: (known.index(name) if name in known else len(known), name))


def _keys(results: dict) -> list[str]:
    keys = {key for rows in results["results"].values() for key in rows}
    return sorted(keys, key=key_order)


def results_table(results: dict) -> str:
    """Table 1 of the paper, from a results document, as GitHub markdown.

    Costs come from the first config that has the row (``spiral`` before ``spiral_h``). Accuracies are in
    percent with their standard error; ``-`` marks a value the run did not measure.

    >>> doc = {"results": {"spiral": {"speechprune@0.2": {"accuracy": 0.9, "accuracy_stderr": 0.01,
    ...        "majority_baseline": 0.596, "llm_tflops": 10.06, "prefill_ms": 662.0}}}}
    >>> print(results_table(doc).splitlines()[2])
    | speechprune | 0.2 | 10.06 | 662 | - | - | 90.00 ± 1.00 | 59.60 |
    """
    configs = _configs(results)
    header = ["method", "rate", "LLM TFLOPs", "prefill ms", "total mem GB", "activation GB"]
    for config in configs:
        title = CONFIG_TITLES.get(config, config)
        header += [f"{title} acc %", f"{title} majority %"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for key in _keys(results):
        method, rate = parse_result_key(key)
        rows = [results["results"][config].get(key) for config in configs]
        cost = next(row for row in rows if row is not None)
        cells = [
            method,
            "-" if rate is None else f"{rate:g}",
            _number(cost.get("llm_tflops"), 2),
            _number(cost.get("prefill_ms"), 0),
            _number(cost.get("peak_memory_gb"), 2),
            _number(cost.get("activation_memory_gb"), 2),
        ]
        for row in rows:
            baseline = None if row is None else row.get("majority_baseline")
            cells += [_percent(row), _number(None if baseline is None else 100 * baseline, 2)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _series(rows: dict[str, dict], field: str) -> tuple[dict[str, list], dict[str, float]]:
    """Split rows into per-method (rates, values, errors) curves and rate-less reference levels."""
    curves: dict[str, list] = {}
    levels: dict[str, float] = {}
    for key in sorted(rows, key=key_order):
        method, rate = parse_result_key(key)
        value = rows[key].get(field)
        if value is None:
            continue
        if rate is None:
            levels[method] = value
        else:
            curves.setdefault(method, []).append((rate, value, rows[key].get(f"{field}_stderr")))
    return curves, levels


def _rank(method: str) -> int:
    return METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER) + sum(map(ord, method))


def _color(method: str) -> str:
    """One colour per method in every plot (matplotlib's cycle, in table order)."""
    return f"C{_rank(method) % 10}"


MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def _draw(ax, rows: dict[str, dict], field: str, scale: float = 1.0) -> None:
    """One curve per rated method. Curves that lie on each other stay visible: each one drawn later is
    thinner, with a smaller marker of another shape, so an earlier curve shows as a band around it."""
    curves, levels = _series(rows, field)
    for order, (method, points) in enumerate(curves.items()):
        rates = [p[0] for p in points]
        values = [scale * p[1] for p in points]
        errors = [scale * p[2] if p[2] is not None else 0.0 for p in points]
        ax.errorbar(
            rates,
            values,
            yerr=errors,
            marker=MARKERS[_rank(method) % len(MARKERS)],
            markersize=max(3.0, 9.0 - 1.5 * order),
            linewidth=max(1.0, 4.5 - 1.0 * order),
            capsize=3,
            label=method,
            color=_color(method),
            zorder=2 + order,
        )
    for method, value in levels.items():
        ax.axhline(scale * value, linestyle="--", linewidth=1.2, label=f"{method} (no pruning)", color=_color(method))


def _save(fig: Figure, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130, bbox_inches="tight")
    return path


RANDOM_WEIGHTS_CAVEAT = "RANDOM WEIGHTS (tiny test model): these accuracies are meaningless"


def random_weights(results: dict) -> bool:
    """Whether the run evaluated the embedded tiny model, whose weights are random (revision ``tiny-seed<N>``)."""
    revision = ((results.get("config") or {}).get("model") or {}).get("revision")
    return isinstance(revision, str) and re.fullmatch(r"tiny-seed\d+", revision) is not None


def plot_accuracy(results: dict, path: str | os.PathLike) -> Path:
    """Accuracy (%) vs pruning rate, one panel per config, one line per method (+- stderr bars).

    Methods without a rate (``full``, ``original``) are dashed horizontal lines, and the majority-letter
    baseline a dotted grey one, so a curve that sits on it has learned nothing but the letter bias. A run
    of the tiny random model carries ``RANDOM_WEIGHTS_CAVEAT`` on the figure itself, so the picture cannot
    be shown without it.
    """
    configs = _configs(results)
    fig = Figure(figsize=(5.2 * len(configs), 4.0), layout="constrained")
    if random_weights(results):
        fig.suptitle(RANDOM_WEIGHTS_CAVEAT, color="red", fontweight="bold")
    axes = fig.subplots(1, len(configs), squeeze=False)[0]
    for ax, config in zip(axes, configs, strict=True):
        rows = results["results"][config]
        _draw(ax, rows, "accuracy", scale=100.0)
        baselines = [row["majority_baseline"] for row in rows.values() if row.get("majority_baseline") is not None]
        if baselines:
            ax.axhline(100 * max(baselines), color="0.5", linestyle=":", label="majority letter")
        ax.set(title=CONFIG_TITLES.get(config, config), xlabel="pruning rate", ylabel="accuracy (%)", ylim=(0, 100))
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small", loc="lower left")
    return _save(fig, path)


def plot_cost(results: dict, path: str | os.PathLike, config: str | None = None) -> Path:
    """LLM prefill TFLOPs and prefill time (ms) vs pruning rate, per method (``config`` default: the first)."""
    config = config or _configs(results)[0]
    rows = results["results"][config]
    fig = Figure(figsize=(10.4, 4.0), layout="constrained")
    for ax, (field, label) in zip(
        fig.subplots(1, 2), [("llm_tflops", "LLM prefill TFLOPs"), ("prefill_ms", "prefill time (ms)")], strict=True
    ):
        _draw(ax, rows, field)
        ax.set(title=label, xlabel="pruning rate", ylabel=label)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
    return _save(fig, path)


def plot_pruning_map(path: str | os.PathLike, samples: Sequence[dict], title: str = "Kept audio tokens") -> Path:
    """Draw which audio tokens were kept, one row per sample, on a time axis in seconds.

    Args:
        path: output image (``.png``, ``.svg``, ... by extension).
        samples: dicts with ``kept_times`` (seconds of the kept tokens: a list or a 1-D tensor, such as
            ``model.last_selection[i]["times"]``), ``duration`` (seconds), ``key_start`` and ``key_end``
            (seconds of the key sentence, or ``None`` when unknown), and optionally ``label`` (row name)
            and ``num_audio_tokens`` (shown as kept/total).
        title: figure title.

    Each kept token is a short vertical tick; the key sentence's span is shaded, so a good selection shows
    a dense cluster of ticks inside the shaded band.
    """
    if not samples:
        raise ValueError("samples must not be empty")
    fig = Figure(figsize=(10.0, 0.8 + 0.55 * len(samples)), layout="constrained")
    ax = fig.subplots()
    labels = []
    for row, sample in enumerate(samples):
        times = [float(t) for t in sample["kept_times"]]
        duration = float(sample["duration"])
        ax.broken_barh([(0.0, duration)], (row - 0.4, 0.8), color="0.93")
        if sample.get("key_start") is not None and sample.get("key_end") is not None:
            start, end = float(sample["key_start"]), float(sample["key_end"])
            # filled behind the ticks, outlined in front of them, so the span stays visible under dense ticks
            ax.broken_barh([(start, end - start)], (row - 0.45, 0.9), color="tab:orange", alpha=0.35)
            ax.broken_barh(
                [(start, end - start)], (row - 0.45, 0.9), facecolor="none", edgecolor="tab:orange", lw=1.5, zorder=3
            )
        ax.eventplot([times], lineoffsets=row, linelengths=0.7, linewidths=0.5, colors="tab:blue")
        label = str(sample.get("label", f"sample {row}"))
        total = sample.get("num_audio_tokens")
        labels.append(f"{label}\n{len(times)}/{total} kept" if total is not None else f"{label}\n{len(times)} kept")
    ax.set_yticks(range(len(samples)), labels, fontsize="small")
    ax.set_ylim(len(samples) - 0.5, -0.5)
    ax.set_xlim(0, max(float(s["duration"]) for s in samples))
    ax.set_xlabel("time (s)")
    ax.set_title(title)
    ax.legend(
        handles=[
            Patch(color="tab:blue", label="kept token"),
            Patch(color="tab:orange", alpha=0.35, label="key sentence"),
            Patch(color="0.93", label="recording"),
        ],
        loc="upper center",
        bbox_to_anchor=(0.5, -0.6 / len(samples) - 0.12),
        ncol=3,
        fontsize="small",
        frameon=False,
    )
    return _save(fig, path)


def render_report(results: dict, out: str | os.PathLike, footnotes: Sequence[str] = ()) -> dict[str, Path]:
    """Write ``table.md`` (``footnotes`` as a list under the table), ``accuracy.png`` and ``cost.png`` into ``out``.

    Returns:
        ``{"table": Path, "accuracy": Path, "cost": Path}``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    text = results_table(results)
    if footnotes:
        text += "\n" + "\n".join(f"- {note}" for note in footnotes) + "\n"
    table = out / "table.md"
    table.write_text(text, encoding="utf-8")
    return {
        "table": table,
        "accuracy": plot_accuracy(results, out / "accuracy.png"),
        "cost": plot_cost(results, out / "cost.png"),
    }


def write_report(results_path: str | os.PathLike, out_dir: str | os.PathLike | None = None) -> dict[str, Path]:
    """Write ``table.md``, ``accuracy.png`` and ``cost.png`` for a ``results.json`` (default: beside it)."""
    out = Path(out_dir) if out_dir is not None else Path(results_path).parent
    return render_report(read_results(results_path), out)


def _sample_count(text: str) -> int | None:
    if text == "all":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a count or 'all', got {text!r}") from None


def configure(parser: argparse.ArgumentParser) -> None:
    from speechprune.evaluation.explorer import DEFAULT_SAMPLES, ORDERS

    parser.add_argument("results", help="path of a results.json")
    parser.add_argument("--out", default=None, help="output folder (default: beside results.json)")
    parser.add_argument(
        "--html", action="store_true", help="also write the run explorer, RUN/explorer/index.html, with its audio"
    )
    parser.add_argument(
        "--samples",
        type=_sample_count,
        default=DEFAULT_SAMPLES,
        help=f"samples in the explorer, each with its audio file (default {DEFAULT_SAMPLES}; 'all' for every one)",
    )
    parser.add_argument("--order", choices=ORDERS, default="failures", help="explorer sample order (default failures)")
    parser.add_argument("--dataset", default=None, help="the run's dataset, if it moved since the run")


def main(args: argparse.Namespace) -> int:
    paths = write_report(args.results, args.out)
    print(paths["table"].read_text(encoding="utf-8"))
    for name, path in paths.items():
        print(f"{name}: {path}")
    if getattr(args, "html", False):
        from speechprune.evaluation.explorer import summary_line, write_explorer

        out = None if args.out is None else Path(args.out) / "explorer"
        written = write_explorer(args.results, out, samples=args.samples, order=args.order, dataset=args.dataset)
        print(summary_line(written, args.order))
    return 0


def _cli(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m speechprune.evaluation.report", description=__doc__.splitlines()[0]
    )
    configure(parser)
    return main(parser.parse_args(None if argv is None else list(argv)))


if __name__ == "__main__":
    raise SystemExit(_cli())

__all__ = ["plot_accuracy", "plot_cost", "plot_pruning_map", "render_report", "results_table", "write_report"]
