"""See the package docstring of speechprune.

``SAMPLE_ANNOTATIONS``: 24 of the published SPIRAL records (8 lectures, 8 meetings, 8 conversations, unchanged),
packaged so that the demo and the tests run with nothing else on the machine.
"""

from pathlib import Path

SAMPLE_ANNOTATIONS = Path(__file__).resolve().parent / "sample_annotations.jsonl"
