"""Measure one model call's prefill: wall time and, on CUDA, peak and activation memory.

The prefill is everything a call does before its first new token: for ``model(**inputs)`` the
whole call (audio encoder, selection, language-model prefill); for ``model.generate(...)`` the
time from the call's start to the end of its first ``forward`` (SpeechPrune's ``generate``
encodes and selects before that first forward, the stock one inside it). Both scoring modes
therefore time the same work.

Example:
    >>> import torch
    >>> layer = torch.nn.Linear(4, 4)
    >>> with PrefillMeter(layer) as meter:
    ...     _ = layer(torch.ones(1, 4)); _ = layer(torch.ones(1, 4))  # a prefill, then a decoding step
    >>> meter.calls, meter.ms > 0, meter.peak_bytes  # memory is only measured on CUDA
    (2, True, None)
"""

from __future__ import annotations

import time

import torch


class PrefillMeter:
    """Context manager: the clock starts on entry and stops after the first ``forward`` of ``model``.

    Attributes (after the block):
        ms: prefill wall time in milliseconds (CUDA-synchronised on a GPU).
        peak_bytes: ``torch.cuda.max_memory_allocated()`` during the prefill; ``None`` on CPU.
        activation_bytes: that peak minus what was allocated on entry (weights, inputs, cache of
            earlier calls), i.e. the memory the prefill itself needed; ``None`` on CPU.
        selection: ``model.last_selection`` as it was right after the first forward, or ``None``
            when the model has no such attribute.
        calls: how many forward calls the block made.
    """

    def __init__(self, model: torch.nn.Module):
        self.model = model
        self.cuda = next(model.parameters()).device.type == "cuda"
        self.ms = self.peak_bytes = self.activation_bytes = self.selection = None
        self.calls = 0

    def _after_forward(self, module, args, output) -> None:
        self.calls += 1
        if self.calls > 1:  # a decoding step
            return
        if self.cuda:
            torch.cuda.synchronize()
            self.peak_bytes = int(torch.cuda.max_memory_allocated())
            self.activation_bytes = self.peak_bytes - self._allocated
        self.ms = (time.perf_counter() - self._start) * 1000.0
        selection = getattr(module, "last_selection", None)
        self.selection = None if selection is None else list(selection)

    def __enter__(self) -> PrefillMeter:
        self._hook = self.model.register_forward_hook(self._after_forward)
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._allocated = torch.cuda.memory_allocated()
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self._hook.remove()


__all__ = ["PrefillMeter"]
