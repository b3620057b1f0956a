"""The ``speechprune`` command line.

Each subcommand lives in its own module, which exposes ``configure(parser)`` (adds its
arguments) and ``main(args) -> int``. Only the chosen subcommand's module is imported, so
``speechprune --help`` stays fast and one broken component never hides the others.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("speechprune.evaluation.demo", "offline demo: tiny model on a small synthesised SPIRAL"),
    "eval": ("speechprune.evaluation.runner", "evaluate a model on SPIRAL for several pruning methods and rates"),
    "report": ("speechprune.evaluation.report", "render the Table-1 markdown table and plots from a results.json"),
    "submit": ("speechprune.evaluation.submit", "write leaderboard eval results into a model repo"),
    "build-spiral": ("speechprune.dataset_script.build", "build the SPIRAL Hub dataset (speech + parquet + card)"),
    "derive-hard": ("speechprune.dataset_script.hard", "derive a hard subset from a run's per-sample predictions"),
    "generate-transcripts": (
        "speechprune.dataset_script.transcripts",
        "generate new SIR dialogues with an OpenAI-compatible endpoint",
    ),
    "export-model": ("speechprune.export_model", "write a Hub-ready SpeechPrune model repo from a Qwen2-Audio"),
}


def _top_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="speechprune", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=sorted(COMMANDS), metavar="COMMAND", help="one of: " + ", ".join(COMMANDS))
    epilog = "\n".join(f"  {name:<22}{text}" for name, (_, text) in COMMANDS.items())
    parser.epilog = "commands:\n" + epilog + "\n\nRun `speechprune COMMAND --help` for a command's options."
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    top = _top_parser()
    if not argv or argv[0] in ("-h", "--help"):
        top.print_help()
        return 0 if argv else 2
    top.parse_args(argv[:1])  # validates the command name with a clear message
    name = argv[0]
    module = importlib.import_module(COMMANDS[name][0])
    parser = argparse.ArgumentParser(prog=f"speechprune {name}", description=COMMANDS[name][1])
    module.configure(parser)
    args = parser.parse_args(argv[1:])
    from speechprune.errors import UsageError

    try:
        return int(module.main(args) or 0)
    except UsageError as error:  # a user mistake: one line, never a traceback
        print(f"speechprune {name}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
