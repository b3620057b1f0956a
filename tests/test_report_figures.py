"""What the accuracy figure shows, read back from the rendered PNG: the random-weights caveat, overlapping curves."""

from __future__ import annotations

import matplotlib.colors
import matplotlib.image
import numpy as np

from speechprune.evaluation import report


def _doc(revision: str) -> dict:
    same = {"accuracy": 0.5, "accuracy_stderr": 0.0, "n": 8}
    rows = {
        "original": {"accuracy": 0.6, "accuracy_stderr": 0.0, "n": 8},
        "random@0.2": dict(same),
        "random@0.8": dict(same, accuracy=0.25),
        "crop@0.2": dict(same),  # exactly on top of random
        "crop@0.8": dict(same, accuracy=0.25),
    }
    return {"results": {"spiral": rows}, "config": {"model": {"id": "m", "revision": revision}}}


def _pixels_near(image: np.ndarray, color: str, tolerance: float = 0.08) -> int:
    rgb = np.array(matplotlib.colors.to_rgb(color))
    return int((np.abs(image[..., :3] - rgb).max(axis=-1) < tolerance).sum())


def test_tiny_model_runs_carry_the_caveat_on_the_figure(tmp_path):
    tiny = matplotlib.image.imread(report.plot_accuracy(_doc("tiny-seed0"), tmp_path / "tiny.png"))
    real = matplotlib.image.imread(report.plot_accuracy(_doc("0" * 40), tmp_path / "real.png"))
    top = slice(0, tiny.shape[0] // 8)  # the title strip
    assert _pixels_near(tiny[top], "red") > 200 and _pixels_near(real[top], "red") == 0
    assert report.random_weights(_doc("tiny-seed3")) and not report.random_weights(_doc("tiny"))


def test_a_curve_under_another_stays_visible(tmp_path):
    image = matplotlib.image.imread(report.plot_accuracy(_doc("0" * 40), tmp_path / "a.png"))
    random_color, crop_color = report._color("random"), report._color("crop")
    assert random_color != crop_color
    # crop is drawn on top of random along the same points; random's wider line must still show beside it
    assert _pixels_near(image, random_color) > 300 and _pixels_near(image, crop_color) > 300
