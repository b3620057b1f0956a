"""SpeechPruneProcessor: 30 s windows, one placeholder span per recording, SPIRAL prompt, query_mask."""

import numpy as np
import pytest
import torch

from speechprune.modeling.audio_spans import fallback_query_mask
from speechprune.modeling.processing_speechprune import SpeechPruneProcessor
from speechprune.testing import tiny_processor, tiny_qwen2_audio

SR = 16000
QUESTION = "What did the speaker say about the project?"
CHOICES = ["It failed", "It was late", "It won", "It ended"]


@pytest.fixture(scope="module")
def stock():
    return tiny_processor()


@pytest.fixture(scope="module")
def processor(stock):
    return SpeechPruneProcessor(
        feature_extractor=stock.feature_extractor, tokenizer=stock.tokenizer, chat_template=stock.chat_template
    )


def wave(seconds: float, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(int(round(seconds * SR))) * 0.1).astype(np.float32)


def expected_tokens(num_samples: int) -> int:
    """SPEC section 2, computed independently: per 30 s window, 160-sample mel frames, conv /2 then pool /2."""
    total = 0
    for start in range(0, num_samples, 30 * SR):
        frames = -(-min(30 * SR, num_samples - start) // 160)
        total += max(0, ((frames - 1) // 2 + 1 - 2) // 2 + 1)
    return total


def test_spiral_prompt_is_spec_section_5(processor):
    expected = (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nAudio 1: <|audio_bos|><|AUDIO|><|audio_eos|>\n"
        f"{QUESTION}\nA. It failed\nB. It was late\nC. It won\nD. It ended\n"
        "Answer with the letter of the correct option.<|im_end|>\n<|im_start|>assistant\n"
    )
    assert processor.spiral_prompt(QUESTION, CHOICES) == expected


@pytest.mark.parametrize("choices", [["a"], [str(i) for i in range(11)], "abcd", ["a", "b\nx", "c", "d"]])
def test_spiral_prompt_refuses_bad_choices(processor, choices):
    with pytest.raises(ValueError, match="choices"):
        processor.spiral_prompt(QUESTION, choices)


def test_short_audio_matches_the_stock_processor(processor, stock):
    prompt = processor.spiral_prompt(QUESTION, CHOICES)
    audio = wave(12.3)
    ours = processor(text=[prompt], audio=[audio], sampling_rate=SR, return_tensors="pt")
    theirs = stock(text=[prompt], audio=[audio], sampling_rate=SR, return_tensors="pt")
    for key in ("input_ids", "attention_mask", "input_features", "feature_attention_mask"):
        assert torch.equal(ours[key], theirs[key]), key


@pytest.mark.parametrize("seconds", [70.0, 90.0, 30.0 + 1 / SR, 60.0 + 480 / SR])
def test_long_audio_is_split_into_windows(processor, stock, seconds):
    audio = wave(seconds)
    prompt = processor.spiral_prompt(QUESTION, CHOICES)
    inputs = processor(text=[prompt], audio=[audio], sampling_rate=SR, return_tensors="pt")
    audio_id = processor.tokenizer.convert_tokens_to_ids("<|AUDIO|>")
    n = expected_tokens(len(audio))
    assert int((inputs.input_ids == audio_id).sum()) == n
    # One contiguous span per recording.
    positions = (inputs.input_ids[0] == audio_id).nonzero().flatten()
    assert int(positions[-1] - positions[0]) + 1 == n
    # Window w holds exactly the stock features of the w-th 30 s slice (a trailing slice too short
    # for a token is dropped).
    slices = [audio[s : s + 30 * SR] for s in range(0, len(audio), 30 * SR)]
    slices = [s for s in slices if expected_tokens(len(s)) > 0]
    assert inputs.input_features.shape == (len(slices), 128, 3000)
    for w, piece in enumerate(slices):
        ref = stock.feature_extractor(
            piece, sampling_rate=SR, padding="max_length", return_attention_mask=True, return_tensors="pt"
        )
        assert torch.equal(inputs.input_features[w], ref.input_features[0])
        assert torch.equal(inputs.feature_attention_mask[w], ref.attention_mask[0].to(torch.int32))


def test_second_window_reaches_the_stock_model(processor, stock):
    """The stock model consumes the windowed inputs unchanged, and audio after 30 s changes its answer."""
    model, _ = tiny_qwen2_audio()
    prompt = processor.spiral_prompt(QUESTION, CHOICES)
    first = wave(45.0, seed=1)
    second = first.copy()
    second[31 * SR :] = wave(14.0, seed=2)  # only the second window differs
    logits = []
    for audio in (first, second):
        inputs = processor(text=[prompt], audio=[audio], sampling_rate=SR, return_tensors="pt")
        assert inputs.input_features.shape[0] == 2
        with torch.no_grad():
            logits.append(model(**inputs).logits[0, -1])
    assert not torch.allclose(logits[0], logits[1])
    # The stock processor cuts at 30 s: the same change is invisible to it.
    cut = []
    for audio in (first, second):
        inputs = stock(text=[prompt], audio=[audio], sampling_rate=SR, return_tensors="pt")
        with torch.no_grad():
            cut.append(model(**inputs).logits[0, -1])
    assert torch.equal(cut[0], cut[1])


def decoded_query(processor, inputs, row=0) -> str:
    ids = inputs.input_ids[row][inputs.query_mask[row]]
    return processor.tokenizer.decode(ids)


def test_query_mask_covers_question_and_choice_lines(processor):
    prompt = processor.spiral_prompt(QUESTION, CHOICES)
    inputs = processor(text=[prompt], audio=[wave(40)], sampling_rate=SR, return_tensors="pt")
    assert inputs.query_mask.dtype == torch.bool and inputs.query_mask.shape == inputs.input_ids.shape
    lines = [QUESTION] + [f"{letter}. {choice}" for letter, choice in zip("ABCD", CHOICES)]
    assert decoded_query(processor, inputs) == "".join(lines)
    question_only = processor(text=[prompt], audio=[wave(40)], sampling_rate=SR, return_tensors="pt", query="question")
    assert decoded_query(processor, question_only) == QUESTION


@pytest.mark.parametrize("count", [2, 3, 10])
def test_k_choices_prompt_and_query_mask(processor, count):
    """SPEC section 9: one line per choice, lettered A..; the query mask covers the question and those lines."""
    choices = [f"choice {i} text" for i in range(count)]
    prompt = processor.spiral_prompt(QUESTION, choices)
    lines = [QUESTION] + [f"{letter}. {choice}" for letter, choice in zip("ABCDEFGHIJ", choices)]
    assert prompt.endswith("\n".join(lines) + "\nAnswer with the letter of the correct option.<|im_end|>\n"
                           "<|im_start|>assistant\n")  # fmt: skip
    inputs = processor(text=[prompt], audio=[wave(3)], sampling_rate=SR, return_tensors="pt")
    assert decoded_query(processor, inputs) == "".join(lines)
    question_only = processor(text=[prompt], audio=[wave(3)], sampling_rate=SR, return_tensors="pt", query="question")
    assert decoded_query(processor, question_only) == QUESTION


def test_query_mask_of_a_custom_prompt_follows_the_fallback_rule(processor):
    prompt = (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n<|audio_bos|><|AUDIO|><|audio_eos|>\n"
        "Describe the meeting.<|im_end|>\n<|im_start|>assistant\n"
    )
    inputs = processor(text=[prompt], audio=[wave(5)], sampling_rate=SR, return_tensors="pt")
    assert decoded_query(processor, inputs) == "\nDescribe the meeting."
    tok = processor.tokenizer
    rule = fallback_query_mask(
        inputs.input_ids,
        inputs.attention_mask,
        tok.convert_tokens_to_ids("<|audio_eos|>"),
        tok.convert_tokens_to_ids("<|im_end|>"),
        tok.all_special_ids,
    )
    assert torch.equal(rule, inputs.query_mask)


def test_batch_is_left_padded_and_rows_match_single_processing(processor):
    prompts = [processor.spiral_prompt(QUESTION, CHOICES), processor.spiral_prompt("Who?", ["A", "B", "C", "D"])]
    audios = [wave(70, seed=3), wave(8, seed=4)]
    batch = processor(text=prompts, audio=audios, sampling_rate=SR, return_tensors="pt", padding=True)
    assert batch.input_features.shape[0] == 3 + 1
    assert int(batch.attention_mask[1, 0]) == 0 and bool(batch.attention_mask[:, -1].all())
    for row, (prompt, audio) in enumerate(zip(prompts, audios)):
        single = processor(text=[prompt], audio=[audio], sampling_rate=SR, return_tensors="pt")
        length = single.input_ids.shape[1]
        for key in ("input_ids", "query_mask"):
            assert torch.equal(batch[key][row, -length:], single[key][0])
        assert not batch.query_mask[row, :-length].any()


def test_two_recordings_in_one_prompt(processor):
    prompt = (
        "<|im_start|>user\nAudio 1: <|audio_bos|><|AUDIO|><|audio_eos|>\nAudio 2: <|audio_bos|><|AUDIO|>"
        "<|audio_eos|>\nCompare them.<|im_end|>\n<|im_start|>assistant\n"
    )
    a, b = wave(35, seed=5), wave(3, seed=6)
    inputs = processor(text=[prompt], audio=[a, b], sampling_rate=SR, return_tensors="pt")
    audio_id = processor.tokenizer.convert_tokens_to_ids("<|AUDIO|>")
    is_audio = (inputs.input_ids[0] == audio_id).int()
    runs = torch.unique_consecutive(is_audio, return_counts=True)
    spans = runs[1][runs[0] == 1].tolist()
    assert spans == [expected_tokens(len(a)), expected_tokens(len(b))]
    assert inputs.input_features.shape[0] == 3


@pytest.mark.parametrize("rate", [24000, 8000, None])
def test_other_sampling_rates_are_refused(processor, rate):
    prompt = processor.spiral_prompt(QUESTION, CHOICES)
    with pytest.raises(ValueError, match="resample"):
        processor(text=[prompt], audio=[wave(5)], sampling_rate=rate)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_audio_is_refused(processor, bad):
    audio = wave(5)
    audio[100] = bad
    prompt = processor.spiral_prompt(QUESTION, CHOICES)
    with pytest.raises(ValueError, match=r"audio\[1\] contains NaN or inf"):
        processor(text=[prompt, prompt], audio=[wave(3), audio], sampling_rate=SR)


def test_bad_audio_shapes_and_counts_are_refused(processor):
    prompt = processor.spiral_prompt(QUESTION, CHOICES)
    with pytest.raises(ValueError, match="mono"):
        processor(text=[prompt], audio=[np.zeros((2, SR), dtype=np.float32)], sampling_rate=SR)
    with pytest.raises(ValueError, match="too short"):
        processor(text=[prompt], audio=[np.zeros(2, dtype=np.float32)], sampling_rate=SR)
    with pytest.raises(ValueError, match="audio"):
        processor(text=[prompt], audio=[wave(3), wave(3)], sampling_rate=SR)
    with pytest.raises(ValueError, match="no audio"):
        processor(text=[prompt])
    with pytest.raises(ValueError, match="query"):
        processor(text=[prompt], audio=[wave(3)], sampling_rate=SR, query="choices")


def test_query_default_is_saved_with_the_processor(processor, tmp_path):
    with_question = SpeechPruneProcessor(
        feature_extractor=processor.feature_extractor, tokenizer=processor.tokenizer, query="question"
    )
    with_question.save_pretrained(tmp_path)
    loaded = SpeechPruneProcessor.from_pretrained(tmp_path)
    assert loaded.query == "question"
    prompt = loaded.spiral_prompt(QUESTION, CHOICES)
    inputs = loaded(text=[prompt], audio=[wave(3)], sampling_rate=SR, return_tensors="pt")
    assert decoded_query(loaded, inputs) == QUESTION
    both = loaded(text=[prompt], audio=[wave(3)], sampling_rate=SR, return_tensors="pt", query="user_text")
    assert decoded_query(loaded, both).startswith(QUESTION + "A. ")
    with pytest.raises(ValueError, match="query"):
        SpeechPruneProcessor(feature_extractor=processor.feature_extractor, tokenizer=processor.tokenizer, query="x")
