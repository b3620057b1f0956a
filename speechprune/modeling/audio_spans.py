"""Bookkeeping between placeholder spans, audio windows and the pruned sequence (pure torch).

The model class uses these helpers to (1) find each recording's ``<|AUDIO|>`` span, (2) check
that the encoded windows fill the spans exactly, (3) find the query tokens when the caller gave
no ``query_mask`` and (4) drop the unselected positions and left-pad the shorter rows again.

Example:
    >>> import torch
    >>> ids = torch.tensor([[5, 9, 9, 9, 6, 9, 9, 7]])
    >>> find_spans(ids, torch.ones_like(ids), audio_token_id=9)
    [[(1, 4), (5, 7)]]
    >>> assign_windows([[(1, 4), (5, 7)]], window_counts=[3, 2], full_window=3)
    [[(0, 1), (1, 2)]]
"""

from __future__ import annotations

import torch


def find_spans(input_ids: torch.Tensor, attention_mask: torch.Tensor, audio_token_id: int) -> list[list[tuple]]:
    """Runs of consecutive audio placeholders, per row: ``[[(start, end), ...], ...]`` (end exclusive).

    Raises ``ValueError`` when a placeholder sits under ``attention_mask == 0``: the stock model
    would still fill it with audio, so such input is ambiguous.
    """
    is_audio = input_ids == audio_token_id
    if bool((is_audio & (attention_mask == 0)).any()):
        raise ValueError("input_ids: audio placeholders must not be masked out by attention_mask (padding)")
    spans = []
    for row in is_audio.cpu():
        flags = torch.cat([torch.zeros(1, dtype=torch.int8), row.to(torch.int8), torch.zeros(1, dtype=torch.int8)])
        edges = flags.diff()
        starts = (edges == 1).nonzero().flatten().tolist()
        ends = (edges == -1).nonzero().flatten().tolist()
        spans.append(list(zip(starts, ends)))
    return spans


def assign_windows(spans: list[list[tuple]], window_counts: list[int], full_window: int) -> list[list[tuple]]:
    """Which encoded windows fill each span, as ``(first_window, end_window)`` per span.

    Windows are consumed in order (row by row, span by span), as the stock model scatters them.
    A span must be filled by whole windows, all full (``full_window`` tokens) except its last:
    anything else means the placeholders do not match the audio, and is refused with a message
    that says which span and how many tokens each side has.
    """
    total_slots = sum(end - start for row in spans for start, end in row)
    if total_slots != sum(window_counts):
        raise ValueError(
            f"input_ids hold {total_slots} audio placeholders but input_features give {sum(window_counts)} audio "
            f"tokens ({len(window_counts)} windows): build the inputs with SpeechPruneProcessor, one <|AUDIO|> "
            "per recording"
        )
    assigned, window = [], 0
    for b, row in enumerate(spans):
        row_windows = []
        for start, end in row:
            first, filled = window, 0
            while filled < end - start and window < len(window_counts):
                if filled and window_counts[window - 1] != full_window:
                    break  # a short window ends its recording
                filled += window_counts[window]
                window += 1
            if filled != end - start:
                raise ValueError(
                    f"the audio span at positions {start}:{end} of sample {b} has {end - start} placeholders, which "
                    f"do not match the audio windows' tokens ({window_counts[first:window]}): each recording's "
                    "placeholder count must equal its windows' token count"
                )
            row_windows.append((first, window))
        assigned.append(row_windows)
    return assigned


def fallback_query_mask(
    input_ids: torch.Tensor, attention_mask: torch.Tensor, audio_eos_id: int, im_end_id: int, special_ids
) -> torch.Tensor:
    """SPEC section 3's query rule: non-special tokens after the last ``<|audio_eos|>`` up to the next ``<|im_end|>``.

    Returns a ``(batch, seq)`` bool mask; a row without ``<|audio_eos|>`` gets no query token.
    """
    special = torch.tensor(sorted(set(special_ids)), dtype=input_ids.dtype, device=input_ids.device)
    mask = torch.zeros_like(input_ids, dtype=torch.bool)
    for b in range(input_ids.shape[0]):
        ids = input_ids[b]
        eos = (ids == audio_eos_id).nonzero().flatten()
        if eos.numel() == 0:
            continue
        start = int(eos[-1]) + 1
        ends = (ids[start:] == im_end_id).nonzero().flatten()
        end = start + int(ends[0]) if ends.numel() else ids.numel()
        mask[b, start:end] = ~torch.isin(ids[start:end], special)
    return mask & attention_mask.bool()


def compact_left(keep: torch.Tensor, tensors: dict, fill: dict) -> tuple[dict, torch.Tensor]:
    """Drop the positions where ``keep`` is False and left-pad the rows to the longest one.

    Args:
        keep: ``(batch, seq)`` bool, the positions that stay (padding positions are False).
        tensors: name -> ``(batch, seq, ...)`` tensor to compact (ids, embeddings, labels ...).
        fill: name -> what the new padding positions hold: a scalar, or for embeddings a
            ``(...,)`` row broadcast into each padding slot.

    Returns:
        The compacted tensors ``(batch, new_seq, ...)`` and the new attention mask
        ``(batch, new_seq)`` (int64, 0 on the left padding). Kept values are copied exactly.
    """
    counts = keep.sum(dim=1)
    length = int(counts.max()) if counts.numel() else 0
    # Destination column of each kept position: its rank in the row, shifted right by the row's padding.
    dest = keep.long().cumsum(dim=1) - 1 + (length - counts)[:, None]
    rows, cols = keep.nonzero(as_tuple=True)
    new_cols = dest[rows, cols]
    out = {}
    for name, x in tensors.items():
        shape = (x.shape[0], length) + tuple(x.shape[2:])
        pad = fill[name]
        if isinstance(pad, torch.Tensor):
            y = pad.to(device=x.device, dtype=x.dtype).expand(shape).clone()
        else:
            y = torch.full(shape, pad, dtype=x.dtype, device=x.device)
        y[rows.to(x.device), new_cols.to(x.device)] = x[rows.to(x.device), cols.to(x.device)]
        out[name] = y
    mask = torch.zeros(keep.shape[0], length, dtype=torch.long, device=keep.device)
    mask[rows, new_cols] = 1
    return out, mask


__all__ = ["find_spans", "assign_windows", "fallback_query_mask", "compact_left"]
