"""The dataset card (README.md) and the Hub benchmark file (eval.yaml) of a SPIRAL build.

Every number on the card is computed from the written shards (rows, categories, answer letters with the
majority baseline, durations), so the card always describes the data beside it. The card is rendered from
``speechprune/hub_cards/spiral_dataset_card.md`` with ``huggingface_hub.DatasetCard``; its YAML header
holds the ``configs:`` block that ``load_dataset(folder, "spiral" | "spiral_h")`` reads.

``eval.yaml`` registers the folder as a Hub benchmark (https://huggingface.co/docs/hub/eval-results) with
one task per config, ``spiral`` and ``spiral_h``; model repos then report results against those task ids.
"""

from __future__ import annotations

import statistics
from collections import Counter
from pathlib import Path

from huggingface_hub import DatasetCard, DatasetCardData

from ..evaluate_metric.spiral_accuracy.spiral_accuracy import CITATION, LETTERS, majority_letter
from .records import CATEGORIES

TEMPLATE = Path(__file__).resolve().parents[1] / "hub_cards" / "spiral_dataset_card.md"
CONFIG_GLOBS = {"spiral": "data/spiral/test-*.parquet", "spiral_h": "data/spiral_h/test-*.parquet"}
# Measured once with the published files (see docs/dataset.md); quoted on every card for orientation.
REFERENCE_BUILD = (
    "For reference, a full espeak-ng build of the 1,012 published dialogues (`--workers 2`) took 9 min 51 s of wall "
    "time (412 s of CPU time, under a load average of about 7) on a 2-core machine shared with other jobs."
)


def config_stats(answers: list[str], categories: list[str], durations: list[float]) -> dict:
    """Counts and duration statistics of one config.

    Returns:
        ``{"rows", "categories": {name: n}, "letters": {letter: n}, "letter_percent": {letter: %},
        "majority_letter", "majority_percent", "duration": {"mean", "median", "min", "max", "std",
        "total_hours"}}``; a config with no rows gets zeros (and majority letter ``"-"``).

    >>> config_stats(["B", "B", "A"], ["lecture"] * 3, [80.0, 90.0, 100.0])["majority_percent"]
    66.66666666666667
    """
    rows = len(answers)
    letters, category_counts = Counter(answers), Counter(categories)
    # the metric's rule (ties to the earlier letter), so the card and results.json name the same baseline
    majority = majority_letter(answers)[0] if rows else None
    duration = {"mean": 0.0, "median": 0.0, "min": 0.0, "max": 0.0, "std": 0.0, "total_hours": 0.0}
    if durations:
        duration = {
            "mean": statistics.fmean(durations),
            "median": statistics.median(durations),
            "min": min(durations),
            "max": max(durations),
            "std": statistics.pstdev(durations),
            "total_hours": sum(durations) / 3600,
        }
    return {
        "rows": rows,
        "categories": {name: category_counts[name] for name in CATEGORIES},
        "letters": {letter: letters[letter] for letter in LETTERS},
        "letter_percent": {letter: 100 * letters[letter] / rows if rows else 0.0 for letter in LETTERS},
        "majority_letter": majority or "-",
        "majority_percent": 100 * letters[majority] / rows if rows else 0.0,
        "duration": duration,
    }


def audio_lines(settings: dict) -> list[str]:
    """The card's "How the audio was made" bullet points for an engine's ``settings()``."""
    engine = settings["engine"]
    if engine == "authors":
        return [
            "The authors' own recordings (StyleTTS 2 with LibriTTS-R voice prompts), read from "
            "`audio_data.combined.audio_files` under the folder given with `--wavs`, downmixed to mono and, only "
            "where needed, resampled to 24 kHz (scipy polyphase); otherwise unchanged.",
            "`key_start`/`key_end` are null: the sentence times of these recordings are not known.",
        ]
    if engine == "espeak-ng":
        voices = settings["voices"]
        first = [
            f"Engine: {settings['version']} (`--tts espeak`), run offline.",
            "Voices: each speaker label got one voice of the gender its `prompts_used` voice prompt names "
            f"(`_F`/`_M`): female `en-us+{{{','.join(voices['F'])}}}`, male `en-us+{{{','.join(voices['M'])}}}`, "
            "chosen from the dialogue id, so consistent within a dialogue and varied across dialogues.",
            f"Speaking rate: {settings['words_per_minute']} words per minute (espeak-ng `-s`), chosen so that the "
            "mean duration lands near the paper's 87.89 s.",
        ]
        rate_line = "Resampled from 22,050 Hz to 24 kHz (scipy polyphase), then"
    else:
        first = [
            "Engine: StyleTTS 2 (`--tts styletts2`), the paper's engine, with the paper's settings: alpha "
            f"{settings['alpha']}, beta {settings['beta']}, {settings['diffusion_steps']} diffusion steps, embedding "
            f"scale {settings['embedding_scale']}; each speaker voiced by its LibriTTS-R prompt from `prompts_used`.",
        ]
        rate_line = "Generated at 24 kHz, then"
    return first + [
        "The sentences of `audio_data.combined.sentences` are spoken in order, with pauses of "
        f"{settings['sentence_pause_s'][0]}-{settings['sentence_pause_s'][1]} s between sentences of a turn and "
        f"{settings['turn_pause_s'][0]}-{settings['turn_pause_s'][1]} s between turns (drawn from the dialogue "
        f"id), {settings['edge_silence_s']} s of silence at both ends, and the trailing {settings['trim_samples']} "
        "samples of each utterance trimmed (paper appendix B).",
        f"{rate_line} loudness-normalised over the whole recording to {settings['target_lufs']:g} LUFS "
        "(ITU-R BS.1770-4, pyloudnorm) and stored losslessly as 16-bit FLAC.",
        "`key_start`/`key_end` are the exact synthesised boundaries of `sentences[indices[0]:indices[1]]`.",
    ]


def _size_category(rows: int) -> str:
    for bound, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K")):
        if rows < bound:
            return label
    return "n>100K"


def render_card(
    stats: dict,
    settings: dict,
    *,
    hard_source: str | None,
    records_in: int,
    rejects: int,
    annotations_sha256: str,
    command: str,
    repo_id: str = "<user>/spiral",
) -> DatasetCard:
    """The dataset card of a build.

    Args:
        stats: ``{"spiral": config_stats(...), "spiral_h": config_stats(...)}``; without ``"spiral_h"`` (no hard
            subset, or none of its ids among the rows) that config is left out.
        settings: the audio settings (engine ``settings()`` plus the assembly constants).
        hard_source: where the hard ids came from (None when there is no ``spiral_h``).
        records_in, rejects: the build's record counts.
        annotations_sha256: hash of the source annotations file.
        command: the build command (file names only).
        repo_id: the Hub id used in the loading example.
    """
    configs = [
        {"config_name": "spiral", "default": True, "data_files": [{"split": "test", "path": CONFIG_GLOBS["spiral"]}]}
    ]
    if "spiral_h" in stats:
        configs.append(
            {"config_name": "spiral_h", "data_files": [{"split": "test", "path": CONFIG_GLOBS["spiral_h"]}]}
        )
    source = {"espeak-ng": "espeak-ng", "styletts2": "StyleTTS 2", "authors": "the authors' recordings"}
    pretty_name = f"SPIRAL ({source[settings['engine']]} audio)"
    card_data = DatasetCardData(
        pretty_name=pretty_name,
        license="unknown",
        language=["en"],
        # The Hub's dataset filters hide audio-text-to-text; audio-classification is the visible audio task
        # nearest to picking one of four labels for a recording and a question.
        task_categories=["multiple-choice", "audio-classification"],
        task_ids=["multiple-choice-qa"],
        # The authors generated the dialogues, questions and answers with a language model; the speech is
        # synthesised from them. The annotations are SPIRAL's own (no other dataset is their source).
        annotations_creators=["machine-generated"],
        language_creators=["machine-generated"],
        multilinguality=["monolingual"],
        source_datasets=["original"],
        size_categories=[_size_category(stats["spiral"]["rows"])],
        tags=["speech", "long-audio", "benchmark", "spiral", "speechprune", "speech-information-retrieval"],
        configs=configs,
    )
    audio_source_line = {
        "espeak-ng": "speech synthesised offline with espeak-ng",
        "styletts2": "speech synthesised with StyleTTS 2, the paper's engine",
        "authors": "the authors' own recordings",
    }[settings["engine"]]
    return DatasetCard.from_template(
        card_data,
        template_path=str(TEMPLATE),
        pretty_name=pretty_name,
        repo_id=repo_id,
        audio_source_line=audio_source_line,
        stats=stats,
        hard_source=hard_source or "not built",
        audio_lines=audio_lines(settings),
        records_in=records_in,
        rejects=rejects,
        annotations_sha256=annotations_sha256,
        command=command,
        build_time_line=REFERENCE_BUILD,
        citation=CITATION,
    )


_EVAL_TASK = """\
  - id: {name}
    config: {name}
    split: test
    # The question is about the `audio` column: a harness must give the model the recording
    # (`speechprune eval` does). A text-only run measures the answer-letter prior, nothing more.
    field_spec:
      id: id
      input: question
      choices: choices
      target: answer
      metadata: [category, audio_source, key_start, key_end]
    solvers:
      - name: multiple_choice
    scorers:
      - name: choice
"""


def render_eval_yaml(configs: list[str]) -> str:
    """``eval.yaml``: the benchmark name, description, framework and one task per config (task id = config)."""
    head = (
        "# Registers this dataset as a Hub benchmark (https://huggingface.co/docs/hub/eval-results).\n"
        "name: SPIRAL\n"
        "description: >\n"
        "  Speech information retrieval: a spoken lecture, meeting or conversation of about 90 seconds and a\n"
        "  four-choice question about one detail said once in it (Lin et al., SpeechPrune, ICME 2025).\n"
        "  Task spiral holds every sample; spiral_h the hard subset. Accuracy in percent, higher is better;\n"
        "  the answer letters are skewed (see the card), so compare with the majority-letter baseline.\n"
        "evaluation_framework: inspect-ai\n"
        "\n"
        "tasks:\n"
    )
    return head + "".join(_EVAL_TASK.format(name=name) for name in configs)
