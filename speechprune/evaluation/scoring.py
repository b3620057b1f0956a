"""How one multiple-choice question is asked and how the model's answer is read (SPEC sections 5 and 9).

A question has K = 2 to 10 choices, lettered with the first K of A-J (SPIRAL: four, A-D). Three small
pieces the runner combines:

- :func:`rotate_choices`: circular evaluation asks each question under the K rotations of
  its choices; the gold letter moves with its option.
- :func:`letter_token_ids` and :func:`loglik_answers`: ``loglik`` scoring compares the
  next-token log-probabilities of the K letter tokens after the prompt (ties to the
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
    >>> rotate_choices(["yes", "no"], "A", 1)
    (['no', 'yes'], 'B')
"""

from __future__ import annotations

import hashlib

import torch

# The metric module owns the letters and the one answer parser (docs/CONTRACTS.md).
from speechprune.evaluate_metric.spiral_accuracy.spiral_accuracy import LETTERS, choice_letters, parse_answer


def rotate_choices(choices: list[str], answer: str, rotation: int) -> tuple[list[str], str]:
    """Rotate the options left by ``rotation`` places; the gold letter follows its option.

    Rotation ``r`` puts the option that was at position ``(i + r) % K`` at position ``i``, so
    rotation 0 is the question as stored and the K rotations put the gold option once
    under each letter.

    Args:
        choices: the K option texts (2 to 10), without letters.
        answer: the gold letter of the unrotated question (one of the first K letters).
        rotation: 0 to K - 1.

    Returns:
        ``(rotated_choices, rotated_answer)``.
    """
    letters = choice_letters(len(choices))
    if answer not in letters:
        raise ValueError(f"answer: expected one of {letters}, got {answer!r}")
    n = len(letters)
    if rotation not in range(n):
        raise ValueError(f"rotation: expected 0..{n - 1}, got {rotation}")
    rotated = [choices[(i + rotation) % n] for i in range(n)]
    gold = letters[(letters.index(answer) - rotation) % n]
    return rotated, gold


def prompt_hash(prompt: str) -> str:
    """sha256 (hex) of the rendered prompt text, as stored in per-sample records."""
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()


def letter_token_ids(tokenizer, num_choices: int = len(LETTERS)) -> list[int]:
    """Token ids of the first ``num_choices`` letters (``"A"``..``"D"`` by default) as the first token of the
    assistant turn (no leading space).

    Raises:
        ValueError: a letter is not a single token for this tokenizer, so ``loglik`` scoring
            would compare pieces of different words.
    """
    ids = []
    for letter in choice_letters(num_choices):
        pieces = tokenizer.encode(letter, add_special_tokens=False)
        if len(pieces) != 1:
            raise ValueError(
                f"tokenizer: the letter {letter!r} is not a single token ({pieces}); use --scoring generate"
            )
        ids.append(int(pieces[0]))
    return ids


def loglik_answers(
    last_logits: torch.Tensor, letter_ids: list[int], num_choices: list[int] | None = None
) -> list[dict]:
    """Pick, per row, the letter with the highest next-token log-probability among its K letters.

    Ties go to the earlier letter; the answer is never invalid.

    Args:
        last_logits: ``(batch, vocab)`` logits at the last prompt position.
        letter_ids: token ids of A, B, ... (:func:`letter_token_ids`), at least as many as any row's K.
        num_choices: K per row (default: ``len(letter_ids)`` for every row).

    Returns:
        One dict per row: ``letter`` and ``logprobs`` (``{"A": float, ...}`` over the row's K letters,
        log-softmax over the whole vocabulary, in float32).
    """
    logprobs = torch.log_softmax(last_logits.float(), dim=-1)[:, letter_ids].cpu()
    counts = [len(letter_ids)] * len(logprobs) if num_choices is None else num_choices
    answers = []
    for row, count in zip(logprobs.tolist(), counts, strict=True):
        letters, row = choice_letters(count), row[:count]
        # A strict ">" while scanning in letter order keeps the earlier letter on ties.
        best = 0
        for i in range(1, len(row)):
            if row[i] > row[best]:
                best = i
        answers.append({"letter": letters[best], "logprobs": dict(zip(letters, row))})
    return answers


def generated_answers(new_token_ids: torch.Tensor, tokenizer, choices: list[list[str]]) -> list[dict]:
    """Decode greedy continuations and parse each with the metric's :func:`parse_answer`.

    Args:
        new_token_ids: ``(batch, new_tokens)``, the tokens after the prompt.
        tokenizer: decodes them (special tokens skipped).
        choices: the K option texts shown for each row (they give K, and rule 5 of the parser matches them).

    Returns:
        One dict per row: ``text`` (the raw decoded output) and ``letter`` (``None`` = invalid).
    """
    texts = tokenizer.batch_decode(new_token_ids, skip_special_tokens=True)
    return [{"text": text, "letter": parse_answer(text, options)} for text, options in zip(texts, choices)]


__all__ = ["LETTERS", "rotate_choices", "prompt_hash", "letter_token_ids", "loglik_answers", "generated_answers"]
