"""SpeechPrune token pruning for Qwen2-Audio and the SPIRAL benchmark, in the Hugging Face ecosystem.

The package is laid out by component (see DESIGN.md):

- ``speechprune.modeling``: the Hub model-repo payload (pruning algorithm, config, model, processor).
- ``speechprune.dataset_script``: builds the SPIRAL Hub dataset from the published annotations.
- ``speechprune.evaluate_metric``: the ``evaluate`` metric module.
- ``speechprune.evaluation``: runner, efficiency measurements, results and leaderboard files.
- ``speechprune.testing``: an offline tiny Qwen2-Audio.
"""

__version__ = "0.1.0"
