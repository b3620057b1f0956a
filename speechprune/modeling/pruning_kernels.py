"""Exact integer kernels behind phase 2 of SpeechPrune (SPEC section 3, "Numerics").

``pruning.py`` states the algorithm; this file makes two of its steps exact and fast:

- :func:`integer_logits`: Z * sqrt(d) = b(X) b(W_q)^T (b(X) b(W_k)^T)^T as exact integers. On CPU
  every product is an int8 matrix product with int32 accumulation (``torch._int_mm``); Q and K
  entries reach thousands, so they are split into balanced base-128 int8 digits first. Elsewhere
  float products are used where they are provably exact.
- :func:`log_importance`: SPEC's float64 log-importance, whose two log-sum-exps add their terms
  as fixed-point integers, so that the result depends only on the multiset of values: columns
  that tie in exact arithmetic tie here bit for bit, whatever their positions.

Apple's MPS has no float64: :func:`exact_device` sends that work to the CPU, so the indices
are the same on every device. The tensor argument checks that every selection function shares
(:func:`check_matrix`) live here too.

This file imports only torch; it is copied into Hub model repos beside ``pruning.py``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from .pruning_settings import check_count

# Largest integer magnitude a float32 (resp. float64) holds exactly, with every smaller integer.
_EXACT_F32 = 2**24
_EXACT_F64 = 2**53


def exact_device(device: torch.device) -> torch.device:
    """Where float64 work for tensors on ``device`` runs: ``device`` itself, or the CPU for MPS (no float64).

    Example:
        >>> exact_device(torch.device("mps")), exact_device(torch.device("cpu"))
        (device(type='cpu'), device(type='cpu'))
    """
    return torch.device("cpu") if torch.device(device).type == "mps" else torch.device(device)


def check_matrix(name: str, x, finite: bool = True) -> None:
    """``x`` must be a non-empty 2-D floating-point tensor, with finite values unless ``finite=False``."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 2:
        raise ValueError(f"{name} must be 2-D, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got {x.dtype}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} must have at least one row and one column, got shape {tuple(x.shape)}")
    if finite and not all_finite(x):
        raise ValueError(f"{name} contains NaN or infinite values")


def all_finite(x: torch.Tensor) -> bool:
    """No NaN or infinity in ``x``: min and max propagate NaN and show +-inf, in one pass without a mask."""
    low, high = torch.aminmax(x)
    return bool(torch.isfinite(low) & torch.isfinite(high))


class BinarizedWeights(NamedTuple):
    """The first layer's W_q / W_k, binarized and packed for phase 2.

    ``rows`` is int8 ``(2 * Dk, D)``: ``[query | key]``, so that one product with ``rows.T`` gives Q
    and K. ``key`` is b(W_k). ``query`` is b(W_q) with the query heads that share a key head summed:
    with ``repeat_kv`` semantics, the sum over heads h of Q_h K_{h // n_rep}^T equals (sum of the
    n_rep query heads of group g) K_g^T, so the logits never need the repeated keys. ``width`` is
    the width of Q (the d in 1/sqrt(d)); ``query_bound`` is the largest |entry| of ``query`` (n_rep).
    """

    rows: torch.Tensor
    width: int
    query_bound: int

    @property
    def query(self) -> torch.Tensor:
        return self.rows[: self.rows.shape[0] // 2]

    @property
    def key(self) -> torch.Tensor:
        return self.rows[self.rows.shape[0] // 2 :]

    def to(self, device) -> BinarizedWeights:
        return self._replace(rows=self.rows.to(device))


@torch.no_grad()
def binarize_weights(q_weight: torch.Tensor, k_weight: torch.Tensor, head_dim: int | None = None) -> BinarizedWeights:
    """b(W_q), b(W_k) packed for phase 2, from the weights as they are now.

    Nothing is cached: the weights are read on every call, so a cast (``model.half()``), a move
    or a change through ``.data`` is always seen. At Qwen2-7B sizes (two 4096 x 4096 weights)
    this costs tens of milliseconds on CPU (``benchmarks/bench_selection.py``). Binarization
    depends only on signs, so do not convert bfloat16 weights first.

    Example:
        >>> w = torch.tensor([[0.5, -1.0], [-0.0, 2.0]])
        >>> binarize_weights(w, w).key.tolist()  # b(-0.0) = +1
        [[1, -1], [1, 1]]
    """
    check_matrix("q_weight", q_weight)
    check_matrix("k_weight", k_weight)
    width_q, width_k, d = q_weight.shape[0], k_weight.shape[0], q_weight.shape[1]
    if k_weight.shape[1] != d:
        raise ValueError(f"q_weight has D={d} input features but k_weight has {k_weight.shape[1]}")
    if k_weight.device != q_weight.device:
        raise ValueError(f"k_weight is on {k_weight.device} but q_weight is on {q_weight.device}")
    n_rep = _query_heads_per_key_head(width_q, width_k, head_dim)
    rows = torch.empty(2 * width_k, d, dtype=torch.int8, device=q_weight.device)
    binarize(k_weight, out=rows[width_k:])
    if n_rep == 1:
        binarize(q_weight, out=rows[:width_k])
    else:  # query heads g*n_rep .. g*n_rep + n_rep - 1 read key head g (repeat_kv order)
        groups = binarize(q_weight).view(width_k // head_dim, n_rep, head_dim, d)
        torch.sum(groups, dim=1, dtype=torch.int8, out=rows[:width_k].view(width_k // head_dim, head_dim, d))
    return BinarizedWeights(rows=rows, width=width_q, query_bound=n_rep)


def _query_heads_per_key_head(width_q: int, width_k: int, head_dim: int | None) -> int:
    if head_dim is not None:
        head_dim = check_count("head_dim", head_dim)
        if width_q % head_dim or width_k % head_dim:
            raise ValueError(
                f"head_dim={head_dim} must divide the widths of q_weight ({width_q}) and k_weight ({width_k})"
            )
    if width_k > width_q:
        raise ValueError(f"k_weight ({width_k} rows) must not be wider than q_weight ({width_q} rows)")
    if width_k < width_q:
        if head_dim is None:
            raise ValueError(
                f"head_dim is needed when k_weight ({width_k} rows) is narrower than q_weight ({width_q} rows)"
            )
        if (width_q // head_dim) % (width_k // head_dim):
            raise ValueError(
                f"head_dim={head_dim} gives {width_q // head_dim} query heads, not a multiple of "
                f"{width_k // head_dim} key heads"
            )
    n_rep = width_q // width_k
    if n_rep > 127:
        raise ValueError(f"head_dim: at most 127 query heads per key head are supported, got {n_rep}")
    return n_rep


def binarize(x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """b(x) = +1 where x >= 0 else -1 (so b(-0.0) = +1), as int8, in one pass over ``x``.

    Example:
        >>> binarize(torch.tensor([-2.0, -0.0, 0.0, 3.0])).tolist()
        [-1, 1, 1, 1]
    """
    if out is None:
        out = torch.empty(x.shape, dtype=torch.int8, device=x.device)
    torch.ge(x, 0, out=out.view(torch.bool))  # 0 / 1 bytes, then 2 b - 1 in place
    return out.mul_(2).sub_(1)


def integer_logits(audio: torch.Tensor, weights: BinarizedWeights) -> torch.Tensor:
    """Z * sqrt(d) = b(X) b(W_q)^T (b(X) b(W_k)^T)^T, keys repeated per head, as exact integers in float64.

    ``audio`` ``(n, D)`` and ``weights`` must be on one device that has float64 (see
    :func:`exact_device`). On CPU every product is an int8 matrix product with int32 accumulation,
    exact and several times faster than float32. Elsewhere float32 gives Q and K exactly (sums of
    small integers below 2**24, exact even with TF32 inputs) and float64 gives Q K^T.
    """
    n, d_in = audio.shape
    width_k = weights.rows.shape[0] // 2
    q_bound, k_bound = weights.query_bound * d_in, d_in
    if width_k * q_bound * k_bound >= _EXACT_F64 or q_bound >= _EXACT_F32:
        raise ValueError("q_weight: phase 2 logits would exceed float64's exact integers; the weights are too wide")
    signs = binarize(audio)
    if not (audio.device.type == "cpu" and hasattr(torch, "_int_mm")) or width_k * 64 * 64 >= 2**31:
        qk = signs.to(torch.float32) @ weights.rows.T.to(torch.float32)
        q, k = qk[:, :width_k].to(torch.float64), qk[:, width_k:].to(torch.float64)
        return q @ k.T
    qk = torch._int_mm(signs, weights.rows.T)  # (n, 2 Dk) int32, exact
    # Multiply every query digit block by every key digit block in one int8 product (each sum of
    # Dk products of digits stays below 2**31), then add the blocks up with their powers of 128.
    q_digits, k_digits = _int8_digits(qk[:, :width_k]), _int8_digits(qk[:, width_k:])
    blocks = torch._int_mm(torch.cat(q_digits), torch.cat(k_digits).T)
    z = torch.zeros(n, n, dtype=torch.float64, device=audio.device)
    for i in range(len(q_digits)):
        for j in range(len(k_digits)):
            z += blocks[i * n : (i + 1) * n, j * n : (j + 1) * n].to(torch.float64) * float(128 ** (i + j))
    return z


def _int8_digits(v: torch.Tensor) -> list[torch.Tensor]:
    """Balanced base-128 digits of an int32 tensor: v = sum_i 128**i * digits[i], digits in [-64, 63]."""
    digits = []
    while True:
        digit = v + 64
        digit &= 127  # two's complement: the remainder mod 128
        digit -= 64
        digits.append(digit.to(torch.int8))
        v = torch.sub(v, digit, out=digit)
        v >>= 7  # exact: v - digit is a multiple of 128
        if not bool(v.any()):
            return digits


def _logsumexp(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Float64 logsumexp whose value depends only on the multiset of values along ``dim``.

    Each term exp(x - max) in (0, 1] is rounded to a fixed-point integer at float64's resolution
    near 1 (at least 2**-52 / n) and the integers are summed exactly: integer addition does not
    depend on order, so values that tie in exact arithmetic tie here bit for bit, whatever their
    positions (a float sum in a different order could split them by one ulp).
    """
    top = x.amax(dim=dim, keepdim=True)
    shift = 62 - max(1, (x.shape[dim] - 1).bit_length())  # n terms of at most 2**shift fit int64
    terms = x - top
    fixed = terms.exp_().mul_(2.0**shift).round_().to(torch.int64)
    total = fixed.sum(dim=dim).to(torch.float64) * 2.0**-shift  # in [1, n]: the max term is 1
    return top.squeeze(dim) + torch.log(total)


def log_importance(logits: torch.Tensor) -> torch.Tensor:
    """SPEC's float64 log-importance of each column of the ``(n, n)`` logits Z.

    log_imp_j = logsumexp_i(Z[i, j] - logsumexp_j'(Z[i, j'])) - log(n): the log of the mean
    attention a token receives, without the underflow of computing the attention itself.

    Example:
        >>> z = torch.tensor([[0.0, 1.0], [2.0, 0.5]], dtype=torch.float64)
        >>> torch.allclose(log_importance(z).exp(), torch.softmax(z, dim=1).mean(dim=0))
        True
    """
    logits = logits.to(torch.float64)
    log_attention = logits - _logsumexp(logits, dim=1)[:, None]
    return _logsumexp(log_attention, dim=0) - math.log(logits.shape[0])


__all__ = [
    "BinarizedWeights",
    "all_finite",
    "binarize",
    "binarize_weights",
    "check_matrix",
    "exact_device",
    "integer_logits",
    "log_importance",
]
