"""The kept audio tokens of a record, as a short hex string (``kept_mask``).

Every record of a run says which audio tokens its method kept, so that the run explorer can draw
any sample's timeline and key recall can be recomputed later. A list of indices would take up to
five characters per token (about 10 kB for a 90 s recording); the mask takes one hex digit per four
tokens (563 characters for 2,250 tokens), whatever the method.

Layout: token ``j`` of the recording (its spans concatenated in prompt order) is bit ``3 - j % 4``
of hex digit ``j // 4``, so the digits read left to right in time order and the last digit is
padded with zero bits. The page's script (``explorer.html``) decodes the same layout.

Example:
    >>> encode_mask([0, 1, 5], 6)
    'c4'
    >>> decode_mask('c4', 6)
    [0, 1, 5]
"""

from __future__ import annotations

from collections.abc import Iterable


def encode_mask(kept: Iterable[int], num_tokens: int) -> str:
    """Hex mask of ``kept`` (indices in ``[0, num_tokens)``) over ``num_tokens`` tokens.

    Raises:
        ValueError: an index outside ``[0, num_tokens)``.
    """
    width = -(-num_tokens // 4) * 4  # whole hex digits
    value = 0
    for index in kept:
        index = int(index)
        if not 0 <= index < num_tokens:
            raise ValueError(f"kept index {index} outside [0, {num_tokens})")
        value |= 1 << (width - 1 - index)
    return f"{value:0{width // 4}x}" if width else ""


def decode_mask(mask: str, num_tokens: int) -> list[int]:
    """The kept indices (increasing) of a mask written by :func:`encode_mask`.

    Raises:
        ValueError: a mask whose length does not fit ``num_tokens`` or that marks a padding bit.
    """
    width = -(-num_tokens // 4) * 4
    if len(mask) != width // 4:
        raise ValueError(f"kept_mask has {len(mask)} hex digits; {num_tokens} tokens need {width // 4}")
    value = int(mask, 16) if mask else 0
    kept = [j for j in range(width) if value >> (width - 1 - j) & 1]
    if kept and kept[-1] >= num_tokens:
        raise ValueError(f"kept_mask marks token {kept[-1]}, past the {num_tokens} tokens")
    return kept


__all__ = ["encode_mask", "decode_mask"]
