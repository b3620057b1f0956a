"""AudioFlamingo3 and MusicFlamingo processors that keep the whole recording, with SPEC section 5's ``query_mask``.

The stock ``AudioFlamingo3Processor`` and ``MusicFlamingoProcessor`` cut a recording into 30 s windows
but keep at most ``max_audio_len // 30`` of them (600 s and 1200 s): the rest is dropped, with a log
warning only. The cap is the processors', not the models': the encoder sees each 30 s window on its own
(1500 positions, the same for every window), and MusicFlamingo's rotary time embedding looks up only the
position inside a window (750 of its 1200 rows) and computes the rest from the window's index and each
token's time in seconds, so no table runs out. So these processors keep every window:

1. each recording (16 kHz mono, float or int16 / int32 PCM) is cut into consecutive 30 s windows, the
   last one shorter; each is featurized alone and padded to 3000 frames (``input_features``
   ``(windows, 128, 3000)`` and ``input_features_mask`` ``(windows, 3000)``, recording after recording),
   as the stock processors featurize their windows;
2. a window with ``f`` valid frames yields ``((f - 1) // 2 + 1 - 2) // 2 + 1`` tokens (750 for 30 s, the
   encoder's stride-2 convolution then pooling by 2), and a recording's ``<sound>`` becomes as many
   ``<sound>`` as its windows' tokens together (MusicFlamingo: between ``<|sound_bos|>`` and
   ``<|sound_eos|>``), as the stock processors count them;
3. ``query_mask`` marks the query after the last ``<sound>`` (MusicFlamingo: ``<|sound_eos|>``) up to
   ``<|im_end|>``.

Up to the stock cap the outputs are the stock processors' (the tests check ``input_ids`` and features).
The language model's position limit still applies: the pruning model refuses a prompt that is longer
than it after selection. Beyond 1200 s MusicFlamingo's time embedding gets times that its stock
processor never produces (the angles are computed, so nothing fails, but they are new to the model).

Example:
    >>> import numpy as np
    >>> from speechprune.testing import tiny_family_processor
    >>> processor = tiny_family_processor("audioflamingo3")
    >>> prompt = processor.spiral_prompt("Who spoke?", ["Ann", "Bob", "Cy", "Di"])
    >>> inputs = processor(text=prompt, audio=np.zeros(16000 * 70, np.float32), sampling_rate=16000)
    >>> inputs["input_features"].shape, inputs["input_ids"][0].count(processor.audio_token_id)
    ((3, 128, 3000), 1750)

This file imports only numpy, transformers and its siblings, so it can be copied into a Hub repo.
"""

from __future__ import annotations

import numpy as np

from .processing_placeholder import PlaceholderProcessor, too_short
from .processing_speechprune import _check_query, window_features, window_token_count


class AudioFlamingo3SpeechPruneProcessor(PlaceholderProcessor):
    """AudioFlamingo3 processor for SpeechPrune: every 30 s window of any length, and ``query_mask``.

    Call it with ``text`` (one ``<sound>`` per recording), ``audio``, ``sampling_rate`` and ``query``
    (``processing_placeholder.PlaceholderProcessor.__call__``).

    Args:
        feature_extractor: the checkpoint's ``WhisperFeatureExtractor`` (128 mel bins, 30 s).
        tokenizer: the checkpoint's tokenizer (its ``chat_template`` renders ``spiral_prompt``).
        audio_token: the placeholder.
        query: default ``query`` of every call (``"user_text"`` or ``"question"``).
    """

    long_audio = "any length: every 30 s window is kept (the stock processor keeps the first 600 s)"

    def __init__(
        self, feature_extractor=None, tokenizer=None, chat_template=None, audio_token="<sound>", query="user_text"
    ):
        _check_query(query)
        self.audio_token, self.query = audio_token, query
        super().__init__(feature_extractor, tokenizer, chat_template=chat_template)

    query_after = property(lambda self: self.audio_token)  # the last placeholder ends the audio

    def _featurize(self, recordings: list[np.ndarray]):
        features, masks, counts = [], [], []
        for i, wave in enumerate(recordings):
            windows = window_features(self.feature_extractor, wave)
            counts.append(sum(window_token_count(int(mask.sum())) for _, mask in windows))
            if counts[-1] == 0:
                raise too_short(i, wave)
            features += [feature for feature, _ in windows]
            masks += [mask for _, mask in windows]
        return {"input_features": np.stack(features), "input_features_mask": np.stack(masks)}, counts


class MusicFlamingoSpeechPruneProcessor(AudioFlamingo3SpeechPruneProcessor):
    """MusicFlamingo processor for SpeechPrune: as AudioFlamingo3's, each recording's tokens between its sound tokens.

    Args:
        audio_bos_token, audio_eos_token: written around each recording's ``<sound>`` tokens.
        (the others as :class:`AudioFlamingo3SpeechPruneProcessor`)
    """

    long_audio = "any length: every 30 s window is kept (the stock processor keeps the first 1200 s)"

    def __init__(
        self,
        feature_extractor=None,
        tokenizer=None,
        chat_template=None,
        audio_token="<sound>",
        audio_bos_token="<|sound_bos|>",
        audio_eos_token="<|sound_eos|>",
        query="user_text",
    ):
        self.audio_bos_token, self.audio_eos_token = audio_bos_token, audio_eos_token
        super().__init__(
            feature_extractor, tokenizer, chat_template=chat_template, audio_token=audio_token, query=query
        )

    audio_open = property(lambda self: self.audio_bos_token)
    audio_close = property(lambda self: self.audio_eos_token)
    query_after = property(lambda self: self.audio_eos_token)


AudioFlamingo3SpeechPruneProcessor.register_for_auto_class("AutoProcessor")
MusicFlamingoSpeechPruneProcessor.register_for_auto_class("AutoProcessor")

__all__ = ["AudioFlamingo3SpeechPruneProcessor", "MusicFlamingoSpeechPruneProcessor"]
