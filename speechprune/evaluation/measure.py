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
        # Statistics of the device holding the first weights (with a device_map over several
        # GPUs: that one only).
        self.device = next(model.parameters()).device
        self.cuda = self.device.type == "cuda"
        self.ms = self.peak_bytes = self.activation_bytes = self.selection = None
        self.calls = 0

    def _after_forward(self, module, args, output) -> None:
        self.calls += 1
        if self.calls > 1:  # a decoding step
            return
        if self.cuda:
            torch.cuda.synchronize(self.device)
            self.peak_bytes = int(torch.cuda.max_memory_allocated(self.device))
            self.activation_bytes = self.peak_bytes - self._allocated
        self.ms = (time.perf_counter() - self._start) * 1000.0
        selection = getattr(module, "last_selection", None)
        self.selection = None if selection is None else list(selection)

    def __enter__(self) -> PrefillMeter:
        self._hook = self.model.register_forward_hook(self._after_forward)
        if self.cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._allocated = torch.cuda.memory_allocated(self.device)
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self._hook.remove()


class EncoderCache:
    """Encode a batch's audio once and reuse it for every variant (a time saver, not a result changer).

    While active, ``model.encode_audio_windows`` (SpeechPrune's per-window audio encoder) is
    wrapped on the instance: a call with the very same ``input_features`` and mask tensors as the
    previous call returns the previous windows instead of running the encoder again. The stored
    windows are only read by the model (it concatenates and scatters them into new tensors), so a
    hit gives bit-identical results.

    ``ms`` is the wall time of the last real encoding and ``hits`` counts reuses, so that a caller
    can add the encoder's time to the prefill time of a call that reused it. A model without
    ``encode_audio_windows`` is left alone.

    Example:
        >>> import torch
        >>> class Model(torch.nn.Module):
        ...     calls = 0
        ...     def encode_audio_windows(self, features, mask, dtype=None):
        ...         self.calls += 1
        ...         return [features[0]]
        >>> model, features, mask = Model(), torch.ones(1, 2), torch.ones(1, 2)
        >>> with EncoderCache(model) as cache:
        ...     _ = model.encode_audio_windows(features, mask); _ = model.encode_audio_windows(features, mask)
        >>> model.calls, cache.hits, "encode_audio_windows" in vars(model)
        (1, 1, False)
    """

    def __init__(self, model):
        self.model = model
        self.ms = 0.0
        self.hits = 0
        self._key = None
        self._windows = None

    def _encode(self, input_features, feature_attention_mask, dtype=None):
        key = (input_features, feature_attention_mask, dtype)
        if self._key is not None and all(a is b for a, b in zip(key, self._key)):
            self.hits += 1
            return self._windows
        cuda = input_features.device.type == "cuda"
        if cuda:
            torch.cuda.synchronize(input_features.device)
        start = time.perf_counter()
        self._windows = self._original(input_features, feature_attention_mask, dtype)
        if cuda:
            torch.cuda.synchronize(input_features.device)
        self.ms = (time.perf_counter() - start) * 1000.0
        self._key = key  # holds the tensors, so their identity cannot be recycled while cached
        return self._windows

    def clear(self) -> None:
        """Forget the stored windows (the next call encodes again)."""
        self._key = self._windows = None

    def __enter__(self) -> EncoderCache:
        self._original = getattr(self.model, "encode_audio_windows", None)
        if self._original is not None:
            self.model.encode_audio_windows = self._encode
        return self

    def __exit__(self, *exc) -> None:
        if self._original is not None:
            del self.model.encode_audio_windows  # the class's method shows through again
        self.clear()


__all__ = ["PrefillMeter", "EncoderCache"]
