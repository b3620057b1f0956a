"""The Space's widget: a table of predictions and references in, the SPIRAL accuracy out.

evaluate's own widget (``launch_gradio_widget``, which needs gradio 3: the Space's ``sdk_version``). The
module is loaded from the file beside this one, so the Space works under any name and needs no Hub call.
"""

from pathlib import Path

import evaluate
from evaluate.utils import launch_gradio_widget

module = evaluate.load(str(Path(__file__).resolve().parent / "spiral_accuracy.py"))
launch_gradio_widget(module)
