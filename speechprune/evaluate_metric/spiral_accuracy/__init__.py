"""The SPIRAL accuracy `evaluate` module.

Load it as a metric with ``evaluate.load(<this folder>)`` (see :data:`METRIC_PATH`), or import the parser
directly: ``from speechprune.evaluate_metric.spiral_accuracy.spiral_accuracy import parse_answer``.
Nothing is imported here, so importing the package stays cheap.
"""

from pathlib import Path

METRIC_PATH = str(Path(__file__).resolve().parent)

__all__ = ["METRIC_PATH"]
