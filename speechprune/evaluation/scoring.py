"""How one SPIRAL question is asked and how the model's answer is read (SPEC sections 4 and 5).

Three small pieces the runner combines:

- :func:`rotate_choices`: circular evaluation asks each question under the four rotations of
  its choices; the gold letter moves with its option.
- :func:`letter_token_ids` and :func:`loglik_answers`: ``loglik`` scoring compares the
  next-token log-probabilities of the tokens ``A``..``D`` after the prompt (ties to the
  earlier letter, never invalid).
- :func:`generated_answers`: ``generate`` scoring decodes the new tokens and parses them with
  the metric's one parser, :func:`parse_answer`.

Example:
    >>> rotate_choices(["red", "green", "blue", "grey"], "B", 1)
    (['green', 'blue', 'grey', 'red'], 'A')
    >>> import torch
    >>> logits = torch.tensor([[0.0, 2.0, 2.0, 1.0, 0.0]])
    >>> [a["letter"] for a in loglik_answers(logits, [1, 2, 3, 4])]  # A and B tie: the earlier letter wins
    ['A']
"""

from __future__ import annotations

import hashlib

import torch

# The metric module owns the letters and the one answer parser (docs/CONTRACTS.md).
from speechprune.evaluate_metric.spiral_accuracy.spiral_accuracy import LETTERS, parse_answer


def rotate_choices(choices: list[str], answer: str, rotation: int) -> tuple[list[str], str]:
    """Rotate the options left by ``rotation`` places; the gold letter follows its option.

    Rotation ``r`` puts the option that was at position ``(i + r) % 4`` at position ``i``, so
    rotation 0 is the question as stored and the four rotations put the gold option once
    under each letter.

    Args:
        choices: the four option texts, without letters.
        answer: the gold letter of the unrotated question.
        rotation: 0, 1, 2 or 3.

    Returns:
        ``(rotated_choices, rotated_answer)``.
    """
    if len(choices) != len(LETTERS):
        raise ValueError(f"choices: expected {len(LETTERS)} options, got {len(choices)}")
    if answer not in LETTERS:
        raise ValueError(f"answer: expected one of {LETTERS}, got {answer!r}")
    if rotation not in range(len(LETTERS)):
        raise ValueError(f"rotation: expected 0..{len(LETTERS) - 1}, got {rotation}")
    n = len(LETTERS)
    rotated = [choices[(i + rotation) % n] for i in range(n)]
    gold = LETTERS[(LETTERS.index(answer) - rotation) % n]
    return rotated, gold


def prompt_hash(prompt: str) -> str:
    """sha256 (hex) of the rendered prompt text, as stored in per-sample records."""
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()


def letter_token_ids(tokenizer) -> list[int]:
    """Token ids of ``"A"``..``"D"`` as the first token of the assistant turn (no leading space).

    Raises:
        ValueError: a letter is not a single token for this tokenizer, so ``loglik`` scoring
            would compare pieces of different words.
    """
    ids = []
    for letter in LETTERS:
        pieces = tokenizer.encode(letter, add_special_tokens=False)
        if len(pieces) != 1:
            raise ValueError(
                f"tokenizer: the letter {letter!r} is not a single token ({pieces}); use --scoring generate"
            )
        ids.append(int(pieces[0]))
    return ids


def loglik_answers(last_logits: torch.Tensor, letter_ids: list[int]) -> list[dict]:
    """Pick the letter with the highest next-token log-probability, ties to the earlier letter.

    Args:
        last_logits: ``(batch, vocab)`` logits at the last prompt position.
        letter_ids: token ids of A, B, C, D (:func:`letter_token_ids`).

    Returns:
        One dict per row: ``letter`` and ``logprobs`` (``{"A": float, ...}``, log-softmax over
        the whole vocabulary, in float32).
    """
    logprobs = torch.log_softmax(last_logits.float(), dim=-1)[:, letter_ids].cpu()
    answers = []
    for row in logprobs.tolist():
        # A strict ">" while scanning in letter order keeps the earlier letter on ties.
        best = 0
        for i in range(1, len(row)):
            if row[i] > row[best]:
                best = i
        answers.append({"letter": LETTERS[best], "logprobs": dict(zip(LETTERS, row))})
    return answers


def generated_answers(new_token_ids: torch.Tensor, tokenizer, choices: list[list[str]]) -> list[dict]:
    """Decode greedy continuations and parse each with the metric's :func:`parse_answer`.

    Args:
        new_token_ids: ``(batch, new_tokens)``, the tokens after the prompt.
        tokenizer: decodes them (special tokens skipped).
        choices: the option texts shown for each row (rule 5 of the parser matches them).

    Returns:
        One dict per row: ``text`` (the raw decoded output) and ``letter`` (``None`` = invalid).
    """
    texts = tokenizer.batch_decode(new_token_ids, skip_special_tokens=True)
    return [{"text": text, "letter": parse_answer(text, options)} for text, options in zip(texts, choices)]


__all__ = ["LETTERS", "rotate_choices", "prompt_hash", "letter_token_ids", "loglik_answers", "generated_answers"]
