"""The offline tiny Qwen2-Audio: real audio geometry, deterministic, runs through the stock model."""

import numpy as np
import torch

from speechprune.testing import SPECIAL_TOKENS, tiny_qwen2_audio


def test_same_seed_same_weights_and_other_seed_differs():
    a, _ = tiny_qwen2_audio(seed=0)
    b, _ = tiny_qwen2_audio(seed=0)
    c, _ = tiny_qwen2_audio(seed=1)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_global_rng_untouched():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    tiny_qwen2_audio(seed=5)
    assert torch.equal(torch.rand(3), expected)


def test_special_tokens_are_single_tokens():
    _, processor = tiny_qwen2_audio()
    tok = processor.tokenizer
    for token in SPECIAL_TOKENS:
        ids = tok(token, add_special_tokens=False).input_ids
        assert len(ids) == 1 and tok.convert_ids_to_tokens(ids[0]) == token
    for letter in "ABCD":
        assert len(tok(letter, add_special_tokens=False).input_ids) == 1


def test_thirty_seconds_give_750_audio_tokens_through_stock_forward():
    model, processor = tiny_qwen2_audio()
    messages = [{"role": "user", "content": [{"type": "audio", "audio": "x"}, {"type": "text", "text": "Why?"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert text.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>")
    wave = np.random.default_rng(0).standard_normal(16000 * 30).astype(np.float32) * 0.1
    inputs = processor(text=text, audio=wave, sampling_rate=16000, return_tensors="pt")
    assert inputs.input_features.shape == (1, 128, 3000)
    assert int((inputs.input_ids == model.config.audio_token_id).sum()) == 750
    with torch.no_grad():
        logits = model(**inputs).logits
    assert logits.shape == (1, inputs.input_ids.shape[1], len(processor.tokenizer))
    assert torch.isfinite(logits).all()
