"""``speechprune submit``: publish a run's SPIRAL scores into a model repo, after checking they can be trusted.

It writes ``.eval_results/spiral.yaml`` (the Hub's eval-results format, one :class:`EvalResultEntry` per
task: ``spiral`` and ``spiral_h``) and the ``model-index`` of the repo's ``README.md`` (via
:class:`~huggingface_hub.ModelCard`), and with ``--push`` uploads those two files.

Everything is read, checked and rendered first; only then are the two files written. A failure is a
:class:`SubmitError` (a :class:`~speechprune.errors.UsageError`: one line, exit code 2) and writes nothing:

1. **pinned**: the model revision in ``results.json`` is a commit sha (40 hex digits) or a
   :func:`~speechprune.evaluation.provenance.content_hash` (64), never a branch such as ``main``; the dataset
   revision of each entry is the 40-hex commit of the Hub dataset, as the eval-results format expects: a run
   on a local folder (whose revision is its content hash) needs ``--dataset-revision``, the commit of the Hub
   copy that the folder was uploaded as, and the content hash is kept in the notes
   (``dataset_content_hash=...``) so that anyone can check the claim against that commit;
2. **no duplicates**: no two entries describe the same (dataset, task, setup), counting the entries
   already in the repo (``--overwrite`` replaces those instead);
3. **recomputable**: :func:`~speechprune.evaluation.results.aggregate` over the per-sample file next to
   ``results.json`` gives the same accuracies, counts and invalid counts;
4. **same model**: the model revision (or content hash) in ``results.json`` is the repo folder's content
   hash, or the Hub commit the folder holds (git clone ``HEAD``, ``hf download --local-dir`` records of
   unmodified files, or a cache snapshot's name);
5. **one audio source**: the run and its records name one audio source (``espeak-ng``, ``styletts2`` or
   ``authors``), the entry notes name it, and the repo holds no SPIRAL entries from another source;
6. **whole split**: the run covered every sample (no ``eval --limit``), unless ``--allow-partial``, which
   marks the entries ``partial=true``.

The existing ``README.md`` and ``.eval_results/spiral.yaml`` must parse; a corrupt one is reported, never
overwritten.

Example::

    speechprune submit outputs/run/results.json --model-repo my-speechprune-model \\
        --method speechprune --rate 0.2 --dataset-id you/spiral --dataset-revision <commit of the upload>
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from huggingface_hub import EvalResultEntry, ModelCard, eval_result_entries_to_yaml, parse_eval_result_entries
from huggingface_hub.repocard_data import EvalResult

from speechprune.errors import UsageError
from speechprune.evaluation.fileio import atomic_write, read_jsonl
from speechprune.evaluation.provenance import content_hash, git_hash, is_pinned, payload_files
from speechprune.evaluation.results import (
    AUDIO_SOURCES,
    aggregate,
    parse_result_key,
    read_results,
    result_key,
    samples_path,
)
from speechprune.hub_cards import is_hub_id

TASKS = ("spiral", "spiral_h")
TASK_TITLES = {"spiral": "SPIRAL", "spiral_h": "SPIRAL-H"}
EVAL_RESULTS_FILE = Path(".eval_results") / "spiral.yaml"
CARD_FILE = Path("README.md")
# Notes fields that are measurements or provenance, not part of the setup an entry describes.
MEASURED = ("n", "n_invalid", "stderr", "majority_baseline", "dataset_content_hash")
CARD_START = "<!-- speechprune-spiral-results:start -->"
CARD_END = "<!-- speechprune-spiral-results:end -->"
# The Hub's eval-results format (and EvalResultEntry) expect the dataset's git commit.
_COMMIT = re.compile(r"[0-9a-f]{40}")
# Where huggingface_hub keeps the records (and the lock files) of `hf download --local-dir`.
_DOWNLOAD_RECORDS = Path(".cache") / "huggingface" / "download"
_TOLERANCE = 1e-9
_EPILOG = """\
Writes MODEL_REPO/.eval_results/spiral.yaml (tasks spiral and spiral_h) and the model-index of
MODEL_REPO/README.md. Nothing is written unless every check passes (exit code 2 otherwise):
  1. pinned        the model revision is a commit sha or a content hash, not 'main'; the dataset revision is
                   the Hub dataset's commit: a run on a local folder needs --dataset-revision (the commit of
                   its upload), and the folder's content hash goes into the notes
  2. no duplicates no (dataset, task, setup) twice, old entries included (--overwrite replaces them)
  3. recomputable  samples.jsonl beside results.json reproduces every accuracy
  4. same model    results' model revision / content hash is MODEL_REPO's content hash or Hub commit
  5. audio source  one named source (espeak-ng, styletts2, authors), never mixed with the repo's entries
  6. whole split   no eval --limit run, unless --allow-partial (the entries then say partial=true)
A local dataset folder has no Hub id: pass --dataset-id owner/name and --dataset-revision COMMIT of its upload.
--push uploads those two files (exit code 1 when the Hub cannot be reached; the local files stay)."""


class SubmitError(UsageError):
    """A check failed or an input cannot be read; nothing was written."""


class PushError(RuntimeError):
    """The upload failed; the local files were written."""


@dataclass
class Plan:
    """What :func:`prepare` decided to write: the entries and the full text of each file."""

    key: str
    dataset_id: str
    audio_source: str
    new: list[EvalResultEntry]
    entries: list[EvalResultEntry]  # the whole file after the update: kept old entries, then the new ones
    files: dict[Path, str] = field(default_factory=dict)  # path relative to the model repo -> its new text


def format_notes(fields: dict) -> str:
    """``key=value; key=value`` (sorted setup first, then measurements), readable and parseable.

    >>> format_notes({"method": "speechprune", "audio_source": "espeak-ng", "n": 3})
    'audio_source=espeak-ng; method=speechprune; n=3'
    """
    setup = sorted(key for key in fields if key not in MEASURED)
    measured = [key for key in MEASURED if key in fields]
    return "; ".join(f"{key}={_text(fields[key])}" for key in setup + measured)


def _text(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def parse_notes(notes: str | None) -> dict[str, str]:
    """Inverse of :func:`format_notes` (values stay strings); ``{}`` for notes not in that form."""
    fields = {}
    for part in (notes or "").split(";"):
        key, sep, value = part.strip().partition("=")
        if sep:
            fields[key] = value
    return fields


def _setup(entry: EvalResultEntry) -> tuple:
    notes = parse_notes(entry.notes)
    return (entry.dataset_id, entry.task_id, tuple(sorted((k, v) for k, v in notes.items() if k not in MEASURED)))


# ---- the checks -------------------------------------------------------------------------------------------


def check_pinned(config: dict) -> None:
    """Check 1, model side: the model revision names fixed content."""
    revision = (config.get("model") or {}).get("revision")
    if not is_pinned(revision):
        raise SubmitError(
            f"check 'pinned' failed: the model revision in results.json is {revision!r}; a score must name "
            "fixed content: a 40-hex commit sha or a 64-hex content hash (speechprune.evaluation.results."
            "content_hash), not a branch or tag. Re-run the evaluation on a pinned revision."
        )


def resolve_dataset_revision(config: dict, given: str | None) -> tuple[str, str | None]:
    """Check 1, dataset side: ``(commit, content_hash)`` for the entries.

    The run's dataset revision is a Hub commit (a run on the Hub copy) or the content hash of a local folder.
    ``given`` (``--dataset-revision``) is the commit of the Hub copy; a local run needs it, a Hub run may
    repeat its own commit. The content hash, when there is one, is returned so that the entries can carry it.
    """
    revision = (config.get("dataset") or {}).get("revision")
    if given is not None and not _COMMIT.fullmatch(given):
        raise SubmitError(
            f"--dataset-revision: {given!r} is not a 40-hex commit sha; pass the commit of the Hub dataset that "
            "the evaluated folder was uploaded as (the upload prints it; `git rev-parse HEAD` in a clone)"
        )
    if isinstance(revision, str) and _COMMIT.fullmatch(revision):
        if given is not None and given != revision:
            raise SubmitError(
                f"--dataset-revision: the run was evaluated on dataset commit {revision}, not {given}; drop the flag"
            )
        return revision, None
    if not is_pinned(revision):
        raise SubmitError(
            f"check 'pinned' failed: the dataset revision in results.json is {revision!r}; a score must name "
            "fixed content (a commit sha or a folder's content hash), not a branch or tag. Re-run the "
            "evaluation on a pinned revision."
        )
    if given is None:
        raise SubmitError(
            "--dataset-revision: the run used a local dataset folder (revision = its content hash "
            f"{revision[:12]}...), which no Hub commit matches. Upload the folder (build-spiral with --push-to-hub "
            "OWNER/NAME prints the commit it made) and pass that commit"
        )
    return given, revision


def check_whole_split(config: dict, allow_partial: bool) -> bool:
    """Check 6: the run covered the whole split. Returns whether the entries are partial."""
    if "limit" not in config:
        if allow_partial:
            return True
        raise SubmitError(
            "check 'whole split' failed: results.json does not record whether the run covered every sample "
            "(no config.limit; it comes from an older speechprune). Re-run the evaluation, or pass "
            "--allow-partial to publish it marked partial"
        )
    limit = config["limit"]
    if limit is None:
        return False
    if not allow_partial:
        raise SubmitError(
            f"check 'whole split' failed: the run evaluated only the first {limit} samples (eval --limit); "
            "publish a run on the whole split, or pass --allow-partial to publish it marked partial"
        )
    return True


def check_recomputable(results_path: Path, results: dict) -> list[dict]:
    """Check 3: the per-sample file beside ``results.json`` reproduces every row. Returns the records."""
    samples = samples_path(results_path, results)
    if not samples.is_file():
        raise SubmitError(f"check 'recomputable' failed: no per-sample file {samples} beside {results_path}")
    try:
        records = read_jsonl(samples)
        recomputed = aggregate(records, circular=bool(results.get("config", {}).get("circular", False)))
    except ValueError as error:
        raise SubmitError(f"check 'recomputable' failed: {samples} cannot be aggregated: {error}") from None
    claimed = results["results"]
    for config in sorted(set(claimed) | set(recomputed)):
        mine, theirs = recomputed.get(config, {}), claimed.get(config, {})
        if set(mine) != set(theirs):
            raise SubmitError(
                f"check 'recomputable' failed: config {config!r}: results.json has rows {sorted(theirs)} "
                f"but {samples.name} gives {sorted(mine)}"
            )
        for key in mine:
            for name in ("accuracy", "n", "n_invalid"):
                a, b = mine[key][name], theirs[key].get(name)
                if b is None or not math.isclose(a, b, rel_tol=0, abs_tol=_TOLERANCE):
                    raise SubmitError(
                        f"check 'recomputable' failed: {config} {key} {name} is {b!r} in results.json but "
                        f"{a!r} recomputed from {samples.name}"
                    )
    return records


@contextlib.contextmanager
def _no_new_lock_files(model_repo: Path):
    """Remove the lock files (and empty folders) that huggingface_hub's record reader creates in ``model_repo``.

    ``read_download_metadata`` takes a file lock beside each record it reads, creating the record's folder
    when needed, and leaves both behind; submitting must leave the model folder as it found it.
    """
    records = model_repo / _DOWNLOAD_RECORDS
    before = set(records.rglob("*"))
    try:
        yield
    finally:
        for path in sorted(set(records.rglob("*")) - before, reverse=True):  # children before their folders
            if path.suffix == ".lock" and path.is_file():
                path.unlink()
            elif path.is_dir() and not any(path.iterdir()):
                path.rmdir()


def _downloaded_commit(model_repo: Path) -> str | None:
    """The Hub commit every payload file of a ``hf download --local-dir`` folder came from, if one and unmodified.

    huggingface_hub keeps, per downloaded file, the commit and the download time under
    ``.cache/huggingface/download``; a file changed after its download has no valid record.
    """
    if not (model_repo / _DOWNLOAD_RECORDS).is_dir():  # not a download folder: read nothing, create nothing
        return None
    try:
        from huggingface_hub._local_folder import read_download_metadata
    except ImportError:  # a huggingface_hub without local-dir bookkeeping
        return None
    commits = set()
    with _no_new_lock_files(model_repo):
        for relative in payload_files(model_repo):
            metadata = read_download_metadata(model_repo, relative)
            if metadata is None:
                return None
            commits.add(metadata.commit_hash)
    return commits.pop() if len(commits) == 1 else None


def model_revisions(model_repo: Path) -> dict[str, str]:
    """The revisions a model folder can be matched by.

    Always its :func:`content_hash`; for a git clone also its ``HEAD``; for a folder made by
    ``hf download --local-dir`` the commit its unmodified files came from; for a Hub cache snapshot
    (``.../snapshots/<commit>``) that commit.
    """
    revisions = {"content_hash": content_hash(model_repo)}
    if (model_repo / ".git").exists():
        head = git_hash(model_repo)
        if head:
            revisions["git_head"] = head
    downloaded = _downloaded_commit(model_repo)
    if downloaded:
        revisions["downloaded_commit"] = downloaded
    resolved = model_repo.resolve()
    if resolved.parent.name == "snapshots" and is_pinned(resolved.name):
        revisions["cache_snapshot"] = resolved.name
    return revisions


def check_model_match(config: dict, model_repo: Path) -> None:
    """Check 4: the results were computed with the model in ``model_repo``."""
    model = config.get("model") or {}
    claimed = {value for value in (model.get("revision"), model.get("content_hash")) if value}
    actual = model_revisions(model_repo)
    if not claimed & set(actual.values()):
        raise SubmitError(
            f"check 'same model' failed: results.json was computed with model {model.get('id')!r} at "
            f"{sorted(claimed)}, but the folder {model_repo} has {actual}. Publish results only into the repo "
            "of the model that produced them (its content hash excludes README.md and .eval_results)."
        )


def check_audio_source(config: dict, records: list[dict], existing: list[EvalResultEntry], dataset_id: str) -> str:
    """Check 5: one named audio source across the run, its records and the repo's SPIRAL entries."""
    source = config.get("audio_source")
    if source not in AUDIO_SOURCES:
        raise SubmitError(
            f"check 'audio source' failed: results.json names audio_source {source!r}, not one of {AUDIO_SOURCES}"
        )
    others = sorted({r["audio_source"] for r in records if r.get("audio_source") not in (None, source)})
    if others:
        raise SubmitError(f"check 'audio source' failed: the run is {source!r} but its records include {others}")
    for entry in existing:
        if entry.dataset_id != dataset_id:
            continue
        theirs = parse_notes(entry.notes).get("audio_source")
        if theirs != source:
            raise SubmitError(
                f"check 'audio source' failed: the repo already has a {entry.dataset_id} {entry.task_id} entry "
                f"with audio source {theirs!r}; results on {source!r} audio must not be mixed with it. Remove the old "
                f"entries from {EVAL_RESULTS_FILE} first if the new source should replace them."
            )
    return source


def check_duplicates(new: list[EvalResultEntry], existing: list[EvalResultEntry], overwrite: bool) -> list:
    """Check 2: no setup twice. Returns the existing entries to keep (``overwrite`` drops the replaced ones)."""
    seen = set()
    for entry in new:
        if _setup(entry) in seen:
            raise SubmitError(f"check 'no duplicates' failed: two new entries for {entry.task_id}: {entry.notes}")
        seen.add(_setup(entry))
    keep, kept = [], set()
    for entry in existing:
        setup = _setup(entry)
        if setup in seen:
            if not overwrite:
                raise SubmitError(
                    f"check 'no duplicates' failed: {EVAL_RESULTS_FILE} already has {entry.dataset_id} "
                    f"{entry.task_id} for this setup ({entry.notes}, value {entry.value}); pass --overwrite to "
                    "replace it"
                )
            continue
        if setup in kept:
            raise SubmitError(f"check 'no duplicates' failed: {EVAL_RESULTS_FILE} lists {entry.notes} twice")
        kept.add(setup)
        keep.append(entry)
    return keep


# ---- reading, building and rendering (nothing is written here) ----------------------------------------------


def select_key(results: dict, method: str | None, rate: float | None) -> str:
    """The result row to publish: ``method``/``rate`` if given, else the only row of the run."""
    keys = sorted({key for rows in results["results"].values() for key in rows})
    if method is not None:
        key = result_key(method, rate)
        if key not in keys:
            raise SubmitError(f"--method/--rate: results.json has no row {key!r}; it has {keys}")
        return key
    if rate is not None:
        raise SubmitError("--rate needs --method")
    if len(keys) != 1:
        raise SubmitError(f"--method: results.json has several rows {keys}: choose one with --method and --rate")
    return keys[0]


def _read_existing(model_repo: Path) -> list[EvalResultEntry]:
    path = model_repo / EVAL_RESULTS_FILE
    if not path.is_file():
        return []
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise SubmitError(f"{path} is not valid YAML ({_first_line(error)}); fix or remove it") from None
    if not isinstance(data, list):
        raise SubmitError(f"{path} is not a list of eval results; fix or remove it")
    try:
        return parse_eval_result_entries(data)
    except (AttributeError, KeyError, TypeError, ValueError) as error:
        raise SubmitError(f"{path} is not in the eval-results format: {error!r}; fix or remove it") from None


def _first_line(error: Exception) -> str:
    return " ".join(str(error).split())


def _read_card(model_repo: Path) -> ModelCard | None:
    """The repo's card, or ``None`` when it has none; a card whose YAML header cannot be parsed is an error."""
    path = model_repo / CARD_FILE
    if not path.is_file():
        return None
    try:
        card = ModelCard.load(path)
        card.data.eval_results  # noqa: B018 - a model-index that does not parse fails here, not after writing
    except (yaml.YAMLError, UnicodeDecodeError, ValueError, TypeError, KeyError) as error:
        raise SubmitError(
            f"{path}: its YAML front matter cannot be parsed ({_first_line(error)}); fix or remove it"
        ) from None
    return card


def build_entries(
    results: dict,
    key: str,
    dataset_id: str,
    revision: str,
    dataset_hash: str | None = None,
    partial: bool = False,
) -> list[EvalResultEntry]:
    """One entry per task (``spiral``, ``spiral_h``) that has the ``key`` row; value = accuracy in percent.

    ``revision`` is the Hub dataset's commit; ``dataset_hash`` the evaluated folder's content hash (kept in
    the notes for a local run); ``partial`` marks a run on a subset.
    """
    config = results["config"]
    method, rate = parse_result_key(key)
    pruning = {k: v for k, v in (config.get("pruning") or {}).items() if isinstance(v, str | int | float | bool)}
    entries = []
    for task in TASKS:
        row = results["results"].get(task, {}).get(key)
        if row is None:
            continue
        fields = {
            **pruning,
            "audio_source": config["audio_source"],
            "method": method,
            "scoring": config.get("scoring"),
            "circular": bool(config.get("circular", False)),
            "n": row["n"],
            "n_invalid": row["n_invalid"],
            "majority_baseline": round(100 * row["majority_baseline"], 2),
        }
        if rate is not None:
            fields["rate"] = rate
        if partial:
            fields["partial"] = True
        if row.get("accuracy_stderr") is not None:
            fields["stderr"] = round(100 * row["accuracy_stderr"], 2)
        if dataset_hash is not None:
            fields["dataset_content_hash"] = dataset_hash
        entries.append(
            EvalResultEntry(
                dataset_id=dataset_id,
                task_id=task,
                value=round(100 * row["accuracy"], 2),
                dataset_revision=revision,
                date=results.get("date"),
                notes=format_notes(fields),
            )
        )
    if not entries:
        raise SubmitError(f"--method/--rate: results.json has no {' or '.join(TASKS)} row {key!r}")
    return entries


def _setting(notes: dict) -> str:
    """``speechprune@0.2, espeak-ng audio`` (plus ``partial``): the setup as the card shows it."""
    rate = float(notes["rate"]) if "rate" in notes else None
    words = [result_key(notes.get("method", "?"), rate), f"{notes.get('audio_source')} audio"]
    if notes.get("circular") == "true":
        words.append("circular")
    if notes.get("partial") == "true":
        words.append("partial")
    return ", ".join(words)


def _card_section(plan: Plan) -> str:
    lines = [
        CARD_START,
        "## SPIRAL results",
        "",
        f"Accuracy (%) on [{plan.dataset_id}](https://huggingface.co/datasets/{plan.dataset_id}), "
        f"written by `speechprune submit` from a recomputed per-sample file ({plan.audio_source} audio).",
        "",
        "| task | accuracy % | setup |",
        "| --- | --- | --- |",
    ]
    for entry in plan.entries:
        if entry.dataset_id == plan.dataset_id:
            lines.append(f"| {TASK_TITLES.get(entry.task_id, entry.task_id)} | {entry.value} | {entry.notes} |")
    return "\n".join([*lines, CARD_END])


def render_card(card: ModelCard | None, plan: Plan, model_name: str) -> str:
    """The card with the repo's SPIRAL entries mirrored into its ``model-index`` and a results section.

    The model-index keeps each field to its meaning: the dataset's Hub id, config, split and commit; the
    metric's type ``accuracy``. The setup (method, rate, audio source) is free text, so it goes into the
    metric's name; ``metric.config`` (a metric configuration) and ``dataset.args`` (``load_dataset``
    arguments) stay empty.
    """
    if card is None:
        card = ModelCard(f"---\ntags:\n- speechprune\n---\n\n# {model_name}\n")
    card.data.model_name = model_name
    datasets = list(card.data.datasets or [])
    if plan.dataset_id not in datasets:
        card.data.datasets = [*datasets, plan.dataset_id]
    others = [r for r in (card.data.eval_results or []) if r.dataset_type != plan.dataset_id]
    ours = [
        EvalResult(
            task_type="audio-text-to-text",
            task_name="Speech Information Retrieval",
            dataset_type=entry.dataset_id,
            dataset_name=TASK_TITLES.get(entry.task_id, entry.task_id),
            dataset_config=entry.task_id,
            dataset_split="test",
            dataset_revision=entry.dataset_revision,
            metric_type="accuracy",
            metric_name=f"accuracy % ({_setting(parse_notes(entry.notes))})",
            metric_value=entry.value,
        )
        for entry in plan.entries
        if entry.dataset_id == plan.dataset_id
    ]
    card.data.eval_results = others + ours
    section = _card_section(plan)
    text = card.text
    if CARD_START in text and CARD_END in text:
        head, rest = text.split(CARD_START, 1)
        text = head + section + rest.split(CARD_END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    card.text = text
    return str(card)


def _model_name(explicit: str | None, repo_id: str | None, card: ModelCard | None, config: dict, repo: Path) -> str:
    """The model-index name: ``--model-name``, else the repo id (``--repo-id``, card, run), else the folder's name."""
    named = card.data.get("model_name") if card is not None else None
    run_id = (config.get("model") or {}).get("id")
    for candidate in (explicit, repo_id, named):
        if candidate:
            return candidate
    if is_hub_id(run_id, namespaced=True) and not Path(run_id).exists():
        return run_id
    return repo.resolve().name


def prepare(
    results_path: str | os.PathLike,
    model_repo: str | os.PathLike,
    *,
    method: str | None = None,
    rate: float | None = None,
    dataset_id: str | None = None,
    dataset_revision: str | None = None,
    overwrite: bool = False,
    allow_partial: bool = False,
    model_name: str | None = None,
    repo_id: str | None = None,
) -> Plan:
    """Run every check, read the repo's files and render the new ones; writes nothing. Raises :class:`SubmitError`."""
    results_path, model_repo = Path(results_path), Path(model_repo)
    if not model_repo.is_dir():
        raise SubmitError(f"--model-repo: {model_repo} is not a folder")
    try:
        results = read_results(results_path)
    except (OSError, ValueError) as error:
        raise SubmitError(f"cannot read {results_path}: {error}") from None
    config = results.get("config") or {}
    dataset_id = dataset_id or (config.get("dataset") or {}).get("id")
    if not is_hub_id(dataset_id, namespaced=True) or Path(dataset_id).exists():
        raise SubmitError(
            f"--dataset-id: the run's dataset {dataset_id!r} is no Hub id (owner/name); pass --dataset-id with the "
            "Hub repo that the dataset folder was (or will be) uploaded to"
        )
    key = select_key(results, method, rate)

    check_pinned(config)
    revision, dataset_hash = resolve_dataset_revision(config, dataset_revision)
    partial = check_whole_split(config, allow_partial)
    records = check_recomputable(results_path, results)
    check_model_match(config, model_repo)
    existing = _read_existing(model_repo)
    card = _read_card(model_repo)
    source = check_audio_source(config, records, existing, dataset_id)
    new = build_entries(results, key, dataset_id, revision, dataset_hash, partial)
    keep = check_duplicates(new, existing, overwrite)
    plan = Plan(key=key, dataset_id=dataset_id, audio_source=source, new=new, entries=keep + new)
    name = _model_name(model_name, repo_id, card, config, model_repo)
    plan.files = {
        EVAL_RESULTS_FILE: yaml.safe_dump(
            eval_result_entries_to_yaml(plan.entries), sort_keys=False, allow_unicode=True
        ),
        CARD_FILE: render_card(card, plan, name),
    }
    return plan


def write(plan: Plan, model_repo: str | os.PathLike) -> list[Path]:
    """Write the files a checked :class:`Plan` rendered; returns their paths."""
    model_repo = Path(model_repo)
    paths = []
    for relative, text in plan.files.items():
        atomic_write(model_repo / relative, text)
        paths.append(model_repo / relative)
    return paths


def push(model_repo: str | os.PathLike, repo_id: str, token: str | None = None, message: str | None = None):
    """Upload the eval results and the card to the Hub repo ``repo_id``. Raises :class:`PushError` offline."""
    import httpx2
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    try:
        return HfApi(token=token).upload_folder(
            repo_id=repo_id,
            folder_path=str(model_repo),
            allow_patterns=[f"{EVAL_RESULTS_FILE.parent.as_posix()}/*", CARD_FILE.as_posix()],
            commit_message=message or "Add SPIRAL eval results (speechprune submit)",
        )
    except (OSError, httpx2.HTTPError, HfHubHTTPError) as error:
        raise PushError(
            f"could not upload to the Hub repo {repo_id!r}: {str(error).rstrip('.')}. The Hub is unreachable "
            "(offline, HF_HUB_OFFLINE=1, or a wrong HF_ENDPOINT) or refused the token; the files are written locally, "
            "run `speechprune submit ... --push` again when online."
        ) from None


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = _EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("results", help="results.json of a run; its samples.jsonl must sit beside it")
    parser.add_argument("--model-repo", required=True, help="local folder of the model repo that produced the run")
    parser.add_argument("--method", default=None, help="which row to publish (default: the run's only row)")
    parser.add_argument("--rate", type=float, default=None, help="pruning rate of that row (e.g. 0.2)")
    parser.add_argument(
        "--dataset-id",
        default=None,
        help="Hub id of the SPIRAL dataset (needed for a local folder; default: the run's)",
    )
    parser.add_argument(
        "--dataset-revision",
        default=None,
        help="40-hex commit of the Hub dataset that the evaluated folder was uploaded as (needed for a local run)",
    )
    parser.add_argument("--allow-partial", action="store_true", help="publish an eval --limit run, marked partial")
    parser.add_argument("--model-name", default=None, help="model name in the card's model-index (default: repo id)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing entries of the same setup")
    parser.add_argument("--push", action="store_true", help="upload .eval_results/ and README.md to the Hub")
    parser.add_argument("--repo-id", default=None, help="Hub repo of the model (push target; default: from results)")
    parser.add_argument("--token", default=None, help="Hub token with write access (default: HF_TOKEN / login)")


def main(args: argparse.Namespace) -> int:
    try:
        plan = prepare(
            args.results,
            args.model_repo,
            method=args.method,
            rate=args.rate,
            dataset_id=args.dataset_id,
            dataset_revision=args.dataset_revision,
            overwrite=args.overwrite,
            allow_partial=args.allow_partial,
            model_name=args.model_name,
            repo_id=args.repo_id,
        )
    except SubmitError as error:  # cli.main prints it as one line, exit code 2
        raise SubmitError(f"nothing written: {error}") from None
    paths = write(plan, args.model_repo)
    for entry in plan.new:
        print(f"{entry.dataset_id} {entry.task_id}: {entry.value} ({entry.notes})")
    print("wrote " + ", ".join(str(p) for p in paths))
    if not args.push:
        return 0
    repo_id = args.repo_id or read_results(args.results)["config"]["model"].get("id")
    if not is_hub_id(repo_id, namespaced=True) or Path(repo_id).exists():
        print(f"speechprune submit: --push needs --repo-id owner/name (got {repo_id!r})", file=sys.stderr)
        return 1
    try:
        info = push(args.model_repo, repo_id, token=args.token)
    except PushError as error:
        print(f"speechprune submit: {error}", file=sys.stderr)
        return 1
    print(f"pushed to {getattr(info, 'commit_url', repo_id)}")
    return 0


__all__ = [
    "Plan",
    "PushError",
    "SubmitError",
    "check_audio_source",
    "check_duplicates",
    "check_model_match",
    "check_pinned",
    "check_recomputable",
    "check_whole_split",
    "configure",
    "main",
    "prepare",
    "push",
    "render_card",
    "resolve_dataset_revision",
    "write",
]
