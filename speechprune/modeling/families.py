"""Family adapters: every transformers internal that SpeechPrune touches, one small class per model family.

The pruning core (``modeling_speechprune.py``) is family-agnostic. It lets the stock forward build the
language model's inputs, takes them just before the first decoder layer, selects audio rows with
``pruning.py``, drops the unselected positions and calls the stock forward or generate again with
``inputs_embeds``. What differs between families lives here and nowhere else.

Adapter API (what a new family fills in; subclass :class:`FamilyAdapter`, override what differs, and
add an instance to :data:`ADAPTERS` with one class line in ``modeling_speechprune.py``):

Constants (class attributes):
    ``model_type``: the stock config's ``model_type`` this adapter serves (the :data:`ADAPTERS` key).
    ``stock_class`` / ``pruning_class``: the transformers class that is pruned, and the name of its
        pruning subclass in ``modeling_speechprune.py``.
    ``seconds_per_token`` (SPEC section 7's t) and ``tokens_per_window`` (W, the family's own length
        formula for exactly 30 s). They give the defaults ``phase1_tokens = W`` and
        ``tokens_per_frame = floor(1 / t + 0.5)`` (:meth:`default_settings`).
    ``audio_inputs``: the call arguments that carry audio (the first one's presence means "prune").
    ``position_scheme``: ``"1d"`` (``position_ids`` ``(batch, seq)``) or ``"mrope"`` (``(3, batch, seq)``,
        or ``(4, batch, seq)`` with text positions first, as ``generate`` builds them).
    ``per_position_inputs``: further language-model keyword arguments shaped ``(batch, seq, ...)`` that
        must lose the same positions as the embeddings (Gemma 4's ``per_layer_inputs``).
    ``generation_auto_classes``: the auto classes whose transformers mapping holds ``stock_class`` (a
        saved repo maps each of them, and ``AutoModel``, to the pruning class).
    ``query_start_tokens`` / ``query_end_token``: SPEC section 3's fallback query rule for this family's
        chat template: the non-special tokens after the last of ``query_start_tokens`` up to the next
        ``query_end_token``. Names, resolved through ``config.special_token_ids`` (name -> id), whose
        default is ``default_special_token_ids`` (the released checkpoint's tokenizer).
    ``notes``: one line for :func:`speechprune.supported_families`, starting with the family's name and a
        colon (:attr:`FamilyAdapter.name`, which the model card shows).

Hooks (methods taking the model; override only where the family differs):
    ``language_model(model)``: the decoder module whose forward is hooked (its keyword arguments are
        the captured inputs). ``decoder_layers(model)``: its layers.
    ``first_attention(model)``: ``(W_q, W_k, head_dim)`` of the first layer with self-attention (phase 2).
    ``audio_token_id(model)``: the placeholder id.
    ``capture(model, stock_forward, call)``: the language model's keyword arguments for ``call`` (a dict
        of the caller's forward arguments), as the stock forward would pass them. The default runs
        ``stock_forward(**call)`` with a pre-hook on :meth:`language_model` that records the arguments
        and stops the call before any decoder layer runs (in the calling thread only: another thread's call
        on the same model passes the hook untouched).
    ``compact_positions(model, input_ids, attention_mask)``: position ids for the pruned sequence with
        ``positions="compact"``, or ``None`` to let the stock forward derive them (1D families).
    ``pruned_generate(model, stock_generate, call)``: generate from the pruned prompt (``call`` holds
        ``inputs_embeds`` and the generation settings); the default is ``stock_generate(**call)``.
    ``attention_weights(model, captured, layer)``: ``(batch, heads, seq, seq)`` attention probabilities of
        decoder layer ``layer`` on the captured (unpruned) inputs, as eager attention computes them.

Example:
    >>> from speechprune.modeling.families import ADAPTERS
    >>> adapter = ADAPTERS["qwen2_audio"]
    >>> adapter.seconds_per_token, adapter.tokens_per_window, adapter.default_settings()
    (0.04, 750, {'phase1_tokens': 750, 'tokens_per_frame': 25})
    >>> ADAPTERS["qwen3_omni_moe_thinker"].default_settings()
    {'phase1_tokens': 390, 'tokens_per_frame': 13}
"""

from __future__ import annotations

import copy
import functools
import threading
import types

import torch

from .pruning_settings import with_family_defaults

# Qwen chat-template special tokens shared by the Qwen-based families (ids of the released tokenizers).
_QWEN_CHAT_IDS = {"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645}
# Qwen2-Audio's audio tokens, which Qwen2.5-Omni's tokenizer has at the same ids.
_QWEN2_AUDIO_IDS = {**_QWEN_CHAT_IDS, "<|AUDIO|>": 151646, "<|audio_bos|>": 151647, "<|audio_eos|>": 151648}


class _Captured(Exception):
    """Raised by the capture hook to stop the stock forward once the language model's inputs are known."""

    def __init__(self, kwargs: dict):
        super().__init__("language-model inputs captured")
        self.kwargs = kwargs


class FamilyAdapter:
    """Defaults shared by the families whose stock forward merges audio and then calls its language model once."""

    model_type = ""
    stock_class = ""
    pruning_class = ""
    seconds_per_token = 0.04
    tokens_per_window = 750
    audio_inputs: tuple = ("input_features",)
    position_scheme = "1d"
    per_position_inputs: tuple = ()
    generation_auto_classes: tuple = ("AutoModelForMultimodalLM",)
    query_start_tokens: tuple = ()
    query_end_token = "<|im_end|>"
    default_special_token_ids: dict = {}
    notes = ""

    # -- constants ---------------------------------------------------------------------------------

    def default_settings(self) -> dict:
        """SPEC section 7's defaults: ``phase1_tokens = W`` and one second of tokens per phase-1 frame."""
        return self.with_defaults({"phase1_tokens": None, "tokens_per_frame": None})

    def with_defaults(self, settings: dict) -> dict:
        """``settings`` with ``phase1_tokens`` / ``tokens_per_frame`` that are ``None`` set to this family's."""
        return with_family_defaults(
            settings, window_tokens=self.tokens_per_window, seconds_per_token=self.seconds_per_token
        )

    @property
    def name(self) -> str:
        """The family's name as people write it: what ``notes`` says before its first colon."""
        return self.notes.partition(":")[0]

    def special_token_ids(self, model) -> dict:
        """Token name -> id for the fallback query rule: the config's ``special_token_ids``, else the defaults."""
        return dict(getattr(model.config, "special_token_ids", None) or self.default_special_token_ids)

    # -- where things are ----------------------------------------------------------------------------

    def audio_token_id(self, model) -> int:
        return int(model.config.audio_token_id)

    def language_model(self, model) -> torch.nn.Module:
        return model.model.language_model

    def decoder_layers(self, model):
        return self.language_model(model).layers

    def text_config(self, model):
        return self.language_model(model).config

    def first_attention(self, model):
        """``(W_q, W_k, head_dim)`` of the first decoder layer that has self-attention (SPEC section 7)."""
        for layer in self.decoder_layers(model):
            attention = getattr(layer, "self_attn", None)
            if attention is not None:
                text = self.text_config(model)
                head_dim = getattr(attention, "head_dim", None) or text.hidden_size // text.num_attention_heads
                return attention.q_proj.weight, attention.k_proj.weight, int(head_dim)
        raise ValueError(f"{self.model_type}: no decoder layer with self-attention")

    def max_positions(self, model) -> int:
        return int(self.text_config(model).max_position_embeddings)

    # -- the language model's inputs -----------------------------------------------------------------

    def capture(self, model, stock_forward, call: dict) -> dict:
        """The keyword arguments the stock forward hands the language model for ``call``.

        Returns a dict with at least ``inputs_embeds`` ``(batch, seq, hidden)``, ``attention_mask`` and
        ``position_ids`` (``None`` when the stock forward leaves them to the language model), plus any
        of :attr:`per_position_inputs`. No decoder layer runs.
        """

        caller = threading.get_ident()

        def stop(module, args, kwargs):
            if threading.get_ident() != caller:  # another thread's call on the same model passes through
                return None
            if args:
                raise TypeError(f"{self.model_type}: the language model was called with positional arguments")
            raise _Captured(kwargs)

        hook = self.language_model(model).register_forward_pre_hook(stop, with_kwargs=True)
        try:
            stock_forward(**call)
        except _Captured as captured:
            kwargs = dict(captured.kwargs)
        else:
            raise RuntimeError(f"{self.model_type}: the stock forward never called its language model")
        finally:
            hook.remove()
        if kwargs.get("attention_mask") is None:
            kwargs["attention_mask"] = call.get("attention_mask")
        kwargs.setdefault("position_ids", None)
        return kwargs

    def compact_positions(self, model, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        """Positions of the pruned prompt with ``positions="compact"``; ``None``: the stock forward derives them."""
        return None

    def unpruned_positions(self, captured: dict) -> torch.Tensor:
        """The position ids the language model uses for the captured (unpruned) prompt, made explicit."""
        positions = captured.get("position_ids")
        if positions is not None:
            return positions
        embeds = captured["inputs_embeds"]
        batch, length = embeds.shape[:2]
        positions = torch.arange(length, device=embeds.device).expand(batch, length)
        return positions if self.position_scheme == "1d" else positions.unsqueeze(0).expand(3, batch, length)

    def pruned_generate(self, model, stock_generate, call: dict):
        """Generate from the pruned prompt (``call``: ``inputs_embeds``, ``attention_mask``, generation settings)."""
        return stock_generate(**call)

    # -- llm_attention (SPEC section 8) --------------------------------------------------------------

    def attention_weights(self, model, captured: dict, layer: int) -> torch.Tensor:
        """``(batch, heads, seq, seq)`` float32 attention probabilities of decoder layer ``layer`` (0-based).

        An eager view of the language model (:func:`eager_view`: its own module objects and an eager copy
        of the config, the same weights) runs on the captured inputs, so the layer applies its own norm,
        RoPE, causal and padding mask and head layout exactly as transformers' eager path does (what
        ``output_attentions=True`` returns); the call stops as soon as that layer's attention has its
        probabilities. The model itself, its config and its hooks are left as they are, so another call
        may use them meanwhile, with whatever attention kernel it was loaded with.
        """
        layers = self.decoder_layers(model)
        if not 0 <= layer < len(layers):
            raise ValueError(f"attention_layer must be in [0, {len(layers)}), got {layer}")
        attention = getattr(layers[layer], "self_attn", None)
        if attention is None:
            raise ValueError(f"attention_layer {layer} of {self.model_type} has no self-attention")

        language_model = self.language_model(model)
        eager = copy.deepcopy(language_model.config)
        eager._attn_implementation = "eager"
        views: dict = {}
        view = eager_view(language_model, language_model.config, eager, views)
        target = views[id(attention)]
        forward = target.forward

        def forward_then_stop(*args, **kwargs):
            raise _Captured({"weights": forward(*args, **kwargs)[1]})

        target.forward = forward_then_stop  # on the view's module only
        try:
            view(**{**captured, "use_cache": False})
        except _Captured as captured_weights:
            weights = captured_weights.kwargs["weights"]
        else:
            raise RuntimeError(f"{self.model_type}: layer {layer}'s attention never ran")
        if weights is None:
            raise RuntimeError(f"{self.model_type}: eager attention of layer {layer} returned no probabilities")
        return weights.float()


def eager_view(module: torch.nn.Module, config, eager_config, views: dict | None = None) -> torch.nn.Module:
    """A copy of ``module``'s tree of modules that reads ``eager_config`` wherever the original reads ``config``.

    Each module of the tree is copied shallowly: the copies share every parameter, buffer and hook with
    the original (no weight is copied), and only the copies' ``config`` and children differ. Per-module
    forwards bound to an original module (accelerate's device hooks set ``forward`` and ``_old_forward``
    that way) are bound to its copy, so a dispatched model runs its copy with the same device moves.
    Nothing of the original is changed. ``views`` (if given) maps ``id(original module)`` to its copy.

    Example:
        >>> from speechprune.testing import tiny_qwen2_audio
        >>> lm = tiny_qwen2_audio()[0].model.language_model
        >>> eager = copy.deepcopy(lm.config)
        >>> eager._attn_implementation = "eager"
        >>> view = eager_view(lm, lm.config, eager)
        >>> view.layers[0].self_attn.config._attn_implementation, lm.layers[0].self_attn.config._attn_implementation
        ('eager', 'sdpa')
        >>> view.layers[0].self_attn is lm.layers[0].self_attn, view.norm.weight is lm.norm.weight
        (False, True)
    """
    views = {} if views is None else views
    copied = copy.copy(module)
    views[id(module)] = copied
    for name, value in module.__dict__.items():
        if name == "config" and value is config:
            copied.__dict__[name] = eager_config
        elif isinstance(value, types.MethodType) and value.__self__ is module:
            copied.__dict__[name] = types.MethodType(value.__func__, copied)
        elif isinstance(value, functools.partial) and value.args and value.args[0] is module:
            copied.__dict__[name] = functools.update_wrapper(
                functools.partial(value.func, copied, *value.args[1:], **value.keywords), value
            )
    copied.__dict__["_modules"] = {
        name: None if child is None else eager_view(child, config, eager_config, views)
        for name, child in module._modules.items()
    }
    return copied


class Qwen2AudioAdapter(FamilyAdapter):
    """Qwen2-Audio: 40 ms tokens, 750 per 30 s window. Audio is encoded window by window (see :meth:`capture`)."""

    model_type = "qwen2_audio"
    stock_class = "Qwen2AudioForConditionalGeneration"
    pruning_class = "Qwen2AudioSpeechPruneForConditionalGeneration"
    audio_inputs = ("input_features", "feature_attention_mask")
    generation_auto_classes = ("AutoModelForMultimodalLM", "AutoModelForSeq2SeqLM")
    query_start_tokens = ("<|audio_eos|>",)
    default_special_token_ids = _QWEN2_AUDIO_IDS
    notes = "Qwen2-Audio: 40 ms per token, 750 per 30 s; long audio through SpeechPruneProcessor's 30 s windows"

    def first_attention(self, model):
        attention = model.model.language_model.layers[0].self_attn
        text = model.config.text_config
        head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
        return attention.q_proj.weight, attention.k_proj.weight, head_dim

    def capture(self, model, stock_forward, call: dict) -> dict:
        """Today's per-window path: each 30 s window is encoded alone, so a batch never changes a token.

        The stock forward encodes the windows as one batch; its tokens then depend (in the last bits)
        on the other windows of the batch. Encoding each window on its own with the stock padding mask
        keeps selections independent of batching, and the placement is the stock ``masked_scatter``.
        """
        input_ids, attention_mask = call["input_ids"], call["attention_mask"]
        features, feature_mask = call["input_features"], call.get("feature_attention_mask")
        inputs_embeds = model.get_input_embeddings()(input_ids)
        windows = model.encode_audio_windows(features, feature_mask, inputs_embeds.dtype)
        audio = torch.cat(windows).to(inputs_embeds.device, inputs_embeds.dtype)
        placeholders = (input_ids == self.audio_token_id(model)).to(inputs_embeds.device)
        inputs_embeds = inputs_embeds.masked_scatter(placeholders.unsqueeze(-1), audio)
        return {
            "inputs_embeds": inputs_embeds,
            "attention_mask": attention_mask,
            "position_ids": call.get("position_ids"),
        }


class _QwenOmniThinkerAdapter(FamilyAdapter):
    """The Qwen Omni thinkers: M-RoPE positions; audio-only prompts give three equal 1D rows."""

    audio_inputs = ("input_features", "feature_attention_mask")
    position_scheme = "mrope"
    generation_auto_classes = ("AutoModelForMultimodalLM", "AutoModelForImageTextToText")

    def compact_positions(self, model, input_ids, attention_mask):
        # The family's own rule for a prompt without images or video: three equal rows of
        # attention_mask.cumsum - 1 (padding 1). Explicit, because with `inputs_embeds` alone the stock
        # forward would reuse `rope_deltas` left over from an earlier call.
        positions, _ = model.model.get_rope_index(input_ids, attention_mask=attention_mask)
        return positions


class Qwen2_5OmniThinkerAdapter(_QwenOmniThinkerAdapter):
    """Qwen2.5-Omni's thinker (never the talker): 40 ms tokens, 750 per 30 s."""

    model_type = "qwen2_5_omni_thinker"
    stock_class = "Qwen2_5OmniThinkerForConditionalGeneration"
    pruning_class = "Qwen2_5OmniThinkerSpeechPruneForConditionalGeneration"
    query_start_tokens = ("<|audio_eos|>",)
    default_special_token_ids = _QWEN2_AUDIO_IDS
    notes = "Qwen2.5-Omni thinker: 40 ms per token, 750 per 30 s, M-RoPE; prune the thinker, not the talker"


class Qwen3OmniMoeThinkerAdapter(_QwenOmniThinkerAdapter):
    """Qwen3-Omni-MoE's thinker: 13 tokens per second (390 per 30 s), q/k norms, interleaved M-RoPE."""

    model_type = "qwen3_omni_moe_thinker"
    stock_class = "Qwen3OmniMoeThinkerForConditionalGeneration"
    pruning_class = "Qwen3OmniMoeThinkerSpeechPruneForConditionalGeneration"
    seconds_per_token = 1 / 13
    tokens_per_window = 390
    query_start_tokens = ("<|audio_end|>",)
    default_special_token_ids = {
        **_QWEN_CHAT_IDS,
        "<|audio_start|>": 151669,
        "<|audio_end|>": 151670,
        "<|audio_pad|>": 151675,
    }
    notes = "Qwen3-Omni-MoE thinker: 13 tokens per second, 390 per 30 s, interleaved M-RoPE"


class AudioFlamingo3Adapter(FamilyAdapter):
    """AudioFlamingo3: a Whisper encoder on 30 s windows (750 tokens each), Qwen2.5 language model."""

    model_type = "audioflamingo3"
    stock_class = "AudioFlamingo3ForConditionalGeneration"
    pruning_class = "AudioFlamingo3SpeechPruneForConditionalGeneration"
    audio_inputs = ("input_features", "input_features_mask")
    generation_auto_classes = ("AutoModelForSeq2SeqLM",)
    query_start_tokens = ("<sound>",)
    default_special_token_ids = {**_QWEN_CHAT_IDS, "<sound>": 151669}
    notes = "AudioFlamingo3: 40 ms per token, 750 per 30 s window; any length (its stock processor stops at 600 s)"


class MusicFlamingoAdapter(AudioFlamingo3Adapter):
    """MusicFlamingo: as AudioFlamingo3, with a rotary time embedding on the audio (built by the stock forward)."""

    model_type = "musicflamingo"
    stock_class = "MusicFlamingoForConditionalGeneration"
    pruning_class = "MusicFlamingoSpeechPruneForConditionalGeneration"
    query_start_tokens = ("<|sound_eos|>",)
    default_special_token_ids = {**_QWEN_CHAT_IDS, "<sound>": 151669, "<|sound_bos|>": 151670, "<|sound_eos|>": 151671}
    notes = "MusicFlamingo: 40 ms per token, 750 per 30 s window; any length (its stock processor stops at 1200 s)"


class VoxtralAdapter(FamilyAdapter):
    """Voxtral: independent 30 s chunks of 375 tokens (80 ms each, the last chunk's padding included), Llama LM."""

    model_type = "voxtral"
    stock_class = "VoxtralForConditionalGeneration"
    pruning_class = "VoxtralSpeechPruneForConditionalGeneration"
    seconds_per_token = 0.08
    tokens_per_window = 375
    audio_inputs = ("input_features",)
    generation_auto_classes = ("AutoModelForMultimodalLM", "AutoModelForSeq2SeqLM", "AutoModelForSpeechSeq2Seq")
    # Voxtral's instruct layout: <s>[INST][BEGIN_AUDIO][AUDIO]...[AUDIO]{text}[/INST]; the text after the
    # last placeholder is the user's.
    query_start_tokens = ("[AUDIO]",)
    query_end_token = "[/INST]"
    default_special_token_ids = {"<s>": 1, "</s>": 2, "[INST]": 3, "[/INST]": 4, "[AUDIO]": 24, "[BEGIN_AUDIO]": 25}
    notes = "Voxtral: 80 ms per token, 375 per 30 s chunk (any length; padding of the last chunk included)"


class Gemma4Adapter(FamilyAdapter):
    """Gemma 4: 40 ms tokens, at most 750 per clip (30 s, the model's cap); a second per-position input.

    The stock forward hands its language model ``per_layer_inputs`` ``(batch, seq, layers, width)``
    beside the embeddings (looked up from the ids, with the pad token at multimodal positions); they lose
    the same positions as the embeddings. Layer 0 is a sliding layer whose head width (256 in the
    release) differs from the global layers' (512): phase 2 takes it from that layer.
    """

    model_type = "gemma4"
    stock_class = "Gemma4ForConditionalGeneration"
    pruning_class = "Gemma4SpeechPruneForConditionalGeneration"
    audio_inputs = ("input_features", "input_features_mask")
    per_position_inputs = ("per_layer_inputs",)
    generation_auto_classes = ("AutoModelForCausalLM", "AutoModelForImageTextToText")
    query_start_tokens = ("<audio|>",)
    query_end_token = "<turn|>"
    default_special_token_ids = {
        "<pad>": 0,
        "<eos>": 1,
        "<bos>": 2,
        "<|turn>": 105,
        "<turn|>": 106,
        "<|audio>": 256000,
        "<|audio|>": 258881,
        "<audio|>": 258883,
    }
    notes = "Gemma 4: 40 ms per token, at most 750 per clip (30 s, the model's cap); per_layer_inputs pruned alike"

    def capture(self, model, stock_forward, call: dict) -> dict:
        """The stock capture, made independent of the attention kernel and of the batch layout.

        Gemma 4's forward builds its per-layer-type masks itself (for the loaded kernel) and passes one
        ``(1, seq)`` row of positions; the language model builds the same masks from the caller's 2-D
        mask for any kernel (``llm_attention`` runs eager), and the positions are made one row per sample.
        """
        captured = super().capture(model, stock_forward, call)
        if isinstance(captured.get("attention_mask"), dict):
            captured["attention_mask"] = call.get("attention_mask")
        positions, embeds = captured.get("position_ids"), captured["inputs_embeds"]
        if positions is not None and positions.shape[0] == 1 < embeds.shape[0]:
            captured["position_ids"] = positions.expand(embeds.shape[0], -1)
        return captured


class GlmAsrAdapter(FamilyAdapter):
    """GLM-ASR: 30 s windows of 375 tokens (80 ms each: four 20 ms encoder positions), a Llama language model.

    The processor cuts a recording into 30 s windows (at most 21, so 630 s; beyond, it warns, naming 655 s)
    and counts its placeholders with the conv formula over the recording's frames; the stock forward
    encodes the windows as one batch and scatters each window's valid tokens in order. The encoder has no
    padding mask: a window's tokens depend on its padding, which the processor makes 3000 frames for every
    window.
    """

    model_type = "glmasr"
    stock_class = "GlmAsrForConditionalGeneration"
    pruning_class = "GlmAsrSpeechPruneForConditionalGeneration"
    seconds_per_token = 0.08
    tokens_per_window = 375
    audio_inputs = ("input_features", "input_features_mask")
    generation_auto_classes = ("AutoModelForMultimodalLM", "AutoModelForSeq2SeqLM")
    # The GLM chat layout: <|user|>\n<|begin_of_audio|><|pad|>...<|pad|><|end_of_audio|>{text}<|assistant|>\n
    # (zai-org/GLM-ASR's inference.py builds it; vLLM's and SGLang's GLM-ASR code use the same audio markers).
    query_start_tokens = ("<|end_of_audio|>",)
    query_end_token = "<|assistant|>"
    # <|pad|> = 59260 is GlmAsrConfig's audio_token_id (transformers 5.24, verified). The rest is inferred, not
    # read from the released tokenizer (not readable offline): the config's eos ids [59246, 59253, 59255] sit
    # where GLM-4's tokenizer has <|endoftext|>, <|user|> and <|observation|> (offsets 0, 7, 9), which puts
    # <|assistant|> at 59254. The audio markers' ids are not known here (-1: never matches); pass the
    # processor's query_mask, or prune(model, tokenizer=processor.tokenizer), which reads every id.
    default_special_token_ids = {
        "<|endoftext|>": 59246,
        "<|user|>": 59253,
        "<|assistant|>": 59254,
        "<|observation|>": 59255,
        "<|pad|>": 59260,
        "<|begin_of_audio|>": -1,
        "<|end_of_audio|>": -1,
    }
    notes = "GLM-ASR: 80 ms per token, 375 per 30 s window, up to 630 s (the processor keeps 21 windows and warns)"


class Qwen3AsrAdapter(FamilyAdapter):
    """Qwen3-ASR: 13 tokens per second (390 per 30 s), one padded feature row per recording, Qwen3 q/k norms.

    The encoder cuts each recording into 100-frame chunks (13 tokens each, the last by the conv formula) and
    attends within 8 s windows of one recording, so a recording's tokens never see the rest of the batch.
    Phase 2 ignores the q/k norms, as SPEC section 3 says.
    """

    model_type = "qwen3_asr"
    stock_class = "Qwen3ASRForConditionalGeneration"
    pruning_class = "Qwen3AsrSpeechPruneForConditionalGeneration"
    seconds_per_token = 1 / 13
    tokens_per_window = 390
    audio_inputs = ("input_features", "input_features_mask")
    generation_auto_classes = ("AutoModelForMultimodalLM", "AutoModelForSeq2SeqLM", "AutoModelForSpeechSeq2Seq")
    # Qwen chat layout; the released template renders the user turn as <|audio_start|><|audio_pad|><|audio_end|>
    # and puts a text context in the system turn, so its prompts have no query after the audio: there the
    # caller passes query_mask (a SPIRAL prompt puts the question after <|audio_end|>, as here).
    query_start_tokens = ("<|audio_end|>",)
    # <|audio_pad|> = 151676 is Qwen3ASRConfig's audio_token_id (transformers 5.24, verified); the audio markers
    # are the Qwen3 tokenizer's, as two independent ports of Qwen3-ASR list them (not read from the Hub file).
    default_special_token_ids = {
        **_QWEN_CHAT_IDS,
        "<|audio_start|>": 151669,
        "<|audio_end|>": 151670,
        "<|audio_pad|>": 151676,
    }
    notes = "Qwen3-ASR: 13 tokens per second, 390 per 30 s, any length (8 s attention windows)"


# -- Granite Speech ------------------------------------------------------------------------------


def lora_effective_weight(linear: torch.nn.Module) -> torch.Tensor:
    """The weight a projection applies to its input: ``W + scaling * B A`` for each active PEFT LoRA adapter.

    ``linear`` is an ``nn.Linear``, or a PEFT ``lora.Linear`` that wraps one (``base_layer``, ``lora_A`` /
    ``lora_B`` per adapter name, ``scaling``, ``active_adapters``). Adapters already merged into the base
    weight are not added again. The sum is computed in float32 (SPEC section 3: scores in float32), shape
    ``(out, in)``. Read through attributes, so PEFT itself is never imported (the file goes into Hub repos).

    Example:
        >>> lora_effective_weight(torch.nn.Linear(4, 2, bias=False)).shape
        torch.Size([2, 4])
    """
    base = getattr(linear, "base_layer", None)
    if base is None or not hasattr(linear, "lora_A"):
        return linear.weight
    if getattr(linear, "fan_in_fan_out", False):
        raise ValueError("a LoRA layer with fan_in_fan_out=True is not supported for phase 2's weights")
    weight = base.weight.detach().float()
    merged = set(getattr(linear, "merged_adapters", ()))
    for name in linear.active_adapters:
        if name not in linear.lora_A or name in merged:
            continue
        if name in getattr(linear, "lora_variant", {}):  # DoRA and other variants scale the weight differently
            raise ValueError(f"LoRA adapter {name!r} is a {type(linear.lora_variant[name]).__name__}: not supported")
        a, b = linear.lora_A[name].weight.detach().float(), linear.lora_B[name].weight.detach().float()
        weight = weight + linear.scaling[name] * (b @ a)
    return weight


class GraniteSpeechAdapter(FamilyAdapter):
    """Granite Speech: 100 ms tokens (300 per 30 s), a Granite LM with a speech LoRA that is on only for audio.

    Token count (``GraniteSpeechFeatureExtractor._get_num_audio_features``): mel frames of 10 ms, two per
    encoder frame, Q-Former windows of 15 encoder frames (0.3 s) giving 3 tokens each: 30 s -> 1500 encoder
    frames -> 100 windows -> 300 tokens. The whole utterance is one run of placeholders (no cap in code).

    The release ships a PEFT LoRA adapter on its language model; the stock ``generate`` switches it on when
    ``input_features`` is given and off otherwise (the stock ``forward`` leaves it as it is). Phase 2 uses
    ``W + scaling * B A`` of layer 0's q and k (:func:`lora_effective_weight`, SPEC section 7), and the pruned
    prompt, whose audio travels in ``inputs_embeds``, is generated with the LoRA on (:meth:`pruned_generate`).
    The language model multiplies its input rows by ``embedding_multiplier`` (a positive constant, 12 in
    the release) before layer 0; cosine scores and signs do not change under it, so the captured rows are used.
    """

    model_type = "granite_speech"
    stock_class = "GraniteSpeechForConditionalGeneration"
    pruning_class = "GraniteSpeechSpeechPruneForConditionalGeneration"
    seconds_per_token = 0.1
    tokens_per_window = 300
    audio_inputs = ("input_features", "input_features_mask")
    generation_auto_classes = ("AutoModelForMultimodalLM", "AutoModelForSeq2SeqLM")
    # The chat layout: <|start_of_role|>user<|end_of_role|><|audio|>...<|audio|>{text}<|end_of_text|>; the text
    # after the last placeholder is the user's.
    query_start_tokens = ("<|audio|>",)
    query_end_token = "<|end_of_text|>"
    # Granite 3.x tokenizer ids: <|end_of_text|> 0 (also the pad and eos), <|start_of_role|> 49152, <|end_of_role|>
    # 49153; <|audio|> 49155 is GraniteSpeechConfig's default audio_token_index, documented as
    # ibm-granite/granite-speech-3.3-2b's. Not checked against the tokenizer file here (offline).
    default_special_token_ids = {
        "<|end_of_text|>": 0,
        "<|start_of_role|>": 49152,
        "<|end_of_role|>": 49153,
        "<|audio|>": 49155,
    }
    notes = "Granite Speech: 100 ms per token, 300 per 30 s, whole utterance; phase 2 on the speech LoRA's W + s B A"

    def first_attention(self, model):
        attention = self.decoder_layers(model)[0].self_attn
        return lora_effective_weight(attention.q_proj), lora_effective_weight(attention.k_proj), attention.head_dim

    def capture(self, model, stock_forward, call: dict) -> dict:
        """Each recording encoded alone, so that a batch never changes a token; placed as the stock forward does.

        The stock forward encodes the padded batch in one pass: the conformer's 200-frame attention blocks and
        its convolution then mix a short recording's last frames with the batch's padding. Here recording
        ``b`` is encoded on its own first ``15 * n_b / 3`` frames (the frames its ``n_b`` tokens cover, or all
        frames when there are fewer), which for a batch of one is exactly the stock input.
        """
        input_ids, features = call["input_ids"], call["input_features"]
        token_mask = call.get("input_features_mask")
        inner = model.model
        projector = inner.projector
        features = features.to(inner.dtype) if features.dtype != inner.dtype else features
        counts = (
            token_mask.sum(-1).tolist()
            if token_mask is not None
            else [-(-features.shape[1] // projector.window_size) * projector.num_queries] * features.shape[0]
        )
        audio = []
        for b, n in enumerate(counts):
            frames = min(features.shape[1], -(-int(n) // projector.num_queries) * projector.window_size)
            encoded = inner.get_audio_features(features[b : b + 1, :frames], return_dict=True).pooler_output
            audio.append(encoded[0, : int(n)])
        inputs_embeds = inner.get_merged_audio_embeddings(input_ids, torch.cat(audio), input_features_mask=None)
        return {
            "inputs_embeds": inputs_embeds,
            "attention_mask": call.get("attention_mask"),
            "position_ids": call.get("position_ids"),
        }

    def pruned_generate(self, model, stock_generate, call: dict):
        """The stock generate turns the LoRA on only when ``input_features`` is given; the pruned prompt has none."""
        if not getattr(model, "_hf_peft_config_loaded", False):
            return stock_generate(**call)
        from transformers import GenerationMixin

        model.enable_adapters()  # what the stock generate does for a prompt with audio
        return GenerationMixin.generate(model, **call)


# -- Phi-4-multimodal ----------------------------------------------------------------------------


class Phi4MultimodalAdapter(FamilyAdapter):
    """Phi-4-multimodal: 80 ms tokens (375 per 30 s), a decoder that merges the audio itself, a fused q/k/v.

    Token count (``Phi4MultimodalFeatureExtractor``): 10 ms frames ``(samples - 400) // 160 + 1``, then
    ``ceil(frames / 8)`` tokens: 30 s -> 2998 frames -> 375 tokens. No length cap in code.

    The decoder (``model.model``) is also the language model: it embeds the ids and merges the audio in
    ``embed_tokens_extend`` (an ``index_put`` at the placeholders) before its first layer, so the capture
    builds those rows itself from the stock modules, each clip encoded alone (padding frames would reach a
    short clip's last tokens through the convolutions). Layer 0's ``qkv_proj`` holds q, then k, then v rows;
    a speech LoRA loaded on it with PEFT counts as ``W + scaling * B A`` (:func:`lora_effective_weight`).
    """

    model_type = "phi4_multimodal"
    stock_class = "Phi4MultimodalForCausalLM"
    pruning_class = "Phi4MultimodalSpeechPruneForCausalLM"
    seconds_per_token = 0.08
    tokens_per_window = 375
    audio_inputs = ("audio_input_features", "audio_embed_sizes", "audio_attention_mask")
    generation_auto_classes = ("AutoModelForCausalLM", "AutoModelForMultimodalLM")
    # The chat layout: <|user|><|audio|>...<|audio|>{text}<|end|><|assistant|>.
    query_start_tokens = ("<|audio|>",)
    query_end_token = "<|end|>"
    # Phi-4-multimodal-instruct's ids: 199999 (<|endoftext|>, the config's bos / pad and first eos), 200011 (the
    # audio placeholder, Phi4MultimodalAudioConfig's audio_token_id) and 200020 (the config's second eos, the
    # template's <|end|>) are the config class's defaults; <|assistant|> 200019, <|user|> 200021 and the name
    # <|audio|> are the published tokenizer's as recalled here, not checked against its file (offline).
    default_special_token_ids = {
        "<|endoftext|>": 199999,
        "<|audio|>": 200011,
        "<|assistant|>": 200019,
        "<|end|>": 200020,
        "<|user|>": 200021,
    }
    notes = "Phi-4-multimodal: 80 ms per token, 375 per 30 s, no cap; fused qkv_proj (q rows first) for phase 2"

    def audio_token_id(self, model) -> int:
        return int(model.config.audio_config.audio_token_id)

    def language_model(self, model) -> torch.nn.Module:
        return model.model

    def text_config(self, model):
        return model.config

    def first_attention(self, model):
        attention = self.decoder_layers(model)[0].self_attn
        config = self.text_config(model)
        q_rows = config.num_attention_heads * attention.head_dim
        k_rows = config.num_key_value_heads * attention.head_dim
        fused = lora_effective_weight(attention.qkv_proj)
        return fused[:q_rows], fused[q_rows : q_rows + k_rows], attention.head_dim

    def capture(self, model, stock_forward, call: dict) -> dict:
        """The rows ``embed_tokens_extend`` would give the decoder, each audio clip encoded on its own frames.

        ``audio_input_features`` ``(clips, frames, 80)`` with ``audio_attention_mask`` ``(clips, frames)`` (the
        feature extractor gives none for one clip) and ``audio_embed_sizes`` ``(clips,)``: clip ``i`` is
        encoded alone on its real frames (for one clip, exactly the stock input), then the clips' tokens go
        into the placeholders in order, as the stock ``index_put`` puts them.
        """
        if call.get("image_pixel_values") is not None:
            raise ValueError("phi4_multimodal: prompts with images are not pruned (their audio uses the vision mode)")
        input_ids, features = call["input_ids"], call["audio_input_features"]
        sizes, frame_mask = call.get("audio_embed_sizes"), call.get("audio_attention_mask")
        if sizes is None:
            raise ValueError("audio_embed_sizes is required with audio_input_features (from the feature extractor)")
        decoder = self.language_model(model)
        embed = decoder.embed_tokens_extend.audio_embed
        inputs_embeds = decoder.embed_tokens(input_ids)
        audio = []
        for i in range(features.shape[0]):
            frames = int(frame_mask[i].sum()) if frame_mask is not None else features.shape[1]
            n = int(sizes[i])
            placeholders = torch.full((1, n), self.audio_token_id(model), device=input_ids.device)
            clip = embed(
                placeholders,
                inputs_embeds.new_zeros(1, n, inputs_embeds.shape[-1]),
                audio_input_features=features[i : i + 1, :frames],
                audio_embed_sizes=sizes[i : i + 1],
                audio_attention_mask=None,
                audio_projection_mode="speech",
            )
            audio.append(clip[0])
        where = (input_ids == self.audio_token_id(model)).to(inputs_embeds.device)
        inputs_embeds = inputs_embeds.masked_scatter(where.unsqueeze(-1), torch.cat(audio).to(inputs_embeds.dtype))
        return {
            "inputs_embeds": inputs_embeds,
            "attention_mask": call.get("attention_mask"),
            "position_ids": call.get("position_ids"),
        }


ADAPTERS = {
    adapter.model_type: adapter
    for adapter in (
        Qwen2AudioAdapter(),
        Qwen2_5OmniThinkerAdapter(),
        Qwen3OmniMoeThinkerAdapter(),
        AudioFlamingo3Adapter(),
        MusicFlamingoAdapter(),
        VoxtralAdapter(),
        Gemma4Adapter(),
        GlmAsrAdapter(),
        Qwen3AsrAdapter(),
        GraniteSpeechAdapter(),
        Phi4MultimodalAdapter(),
    )
}

# Families that cannot be pruned the SpeechPrune way, and why (model_type -> reason).
UNSUPPORTED = {
    **dict.fromkeys(
        ("voxtral_realtime", "kyutai_speech_to_text", "moshi"),
        "audio is added to time-aligned text positions; there are no audio placeholder tokens to prune",
    ),
    **dict.fromkeys(
        ("csm", "higgs_audio_v2", "vibevoice"),
        "the model's output is audio, not text read from audio placeholders",
    ),
    **dict.fromkeys(
        ("qwen2_5_omni", "qwen3_omni_moe"),
        "the full Omni model also produces audio: prune its thinker (`model.thinker`), the part that reads audio",
    ),
}


def adapter_for(model_type: str) -> FamilyAdapter:
    """The adapter for a stock ``model_type`` (or a pruning config's ``<type>_speechprune``), else a ``ValueError``."""
    base = model_type.removesuffix("_speechprune")
    if base in ADAPTERS:
        return ADAPTERS[base]
    reason = UNSUPPORTED.get(base, "this family is not adapted yet")
    raise ValueError(f"model_type {base!r} cannot be pruned: {reason} (supported: {', '.join(sorted(ADAPTERS))})")


__all__ = ["FamilyAdapter", "ADAPTERS", "UNSUPPORTED", "adapter_for", "lora_effective_weight"]
