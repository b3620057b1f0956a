"""SpeechPrune token selection (SPEC section 3): tensors in, kept row indices out.

This file is the algorithm and nothing else. It imports only torch and the standard library, so
it is copied verbatim into Hub model repos. Every selection function returns a 1-D int64 tensor
of row indices into the audio tokens, strictly increasing (time order is kept), on the audio's
device, with exactly the requested count (all indices when there are no more rows than that).
Ties in every top-k go to the lower index.

Shapes: ``audio`` is ``(N, D)`` (the projected audio tokens of one recording), ``text`` is
``(L, D)`` (input-embedding rows of the query tokens), ``q_weight`` / ``k_weight`` are the first
decoder layer's projection weights in ``nn.Linear`` layout ``(out, D)``.

Example:
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> audio, text = torch.randn(2250, 64, generator=g), torch.randn(12, 64, generator=g)
    >>> w_q, w_k = torch.randn(64, 64, generator=g), torch.randn(64, 64, generator=g)
    >>> kept = speechprune_select(audio, text, w_q, w_k, rate=0.4)
    >>> kept.shape, bool((kept.diff() > 0).all())
    (torch.Size([450]), True)

Numerics (SPEC "Numerics"): phase 1 token scores are float32 whatever the input dtype; the
frame softmax and the budget, which are tiny, run in float64 so that floors and fractional
parts are as close to exact arithmetic as possible. Phase 2 computes the binarized logits
exactly as integers (int8 matrix products with int32 accumulation on CPU, float products that
are provably exact elsewhere) and ranks by the float64 log-importance. The two log-sum-exps add
their terms as fixed-point integers, so the result depends only on the multiset of values:
columns that tie in exact arithmetic tie here bit for bit, and the tie-break rule decides them.
"""

from __future__ import annotations

import hashlib
import math
import numbers
import operator
import weakref
from collections import OrderedDict
from typing import NamedTuple

import torch

METHODS = ("full", "original", "speechprune", "phase1", "phase2", "random", "crop")
METHOD_ALIASES = {"none": "full"}

_NORM_EPS = 1e-8
# Largest integer magnitude a float32 (resp. float64) holds exactly, with every smaller integer.
_EXACT_F32 = 2**24
_EXACT_F64 = 2**53


def resolve_method(name: str, argument: str = "method") -> str:
    """The canonical method name for ``name`` (``"none"`` -> ``"full"``).

    ``argument`` is the name the error gives the bad value (the config says ``pruning_method``).

    Example:
        >>> resolve_method("none"), resolve_method("speechprune")
        ('full', 'speechprune')
    """
    if name not in METHODS + tuple(METHOD_ALIASES):
        raise ValueError(f"{argument} must be one of {METHODS + tuple(METHOD_ALIASES)}, got {name!r}")
    return METHOD_ALIASES.get(name, name)


# ---------------------------------------------------------------------------------------------
# Argument checks


def _check_count(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an integer, got {value!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _check_rate(rate) -> float:
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0.0 <= float(rate) < 1.0:
        raise ValueError(f"rate must be a number in [0, 1), got {rate!r}")
    return float(rate)


def _check_temperature(temperature) -> float:
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real):
        raise ValueError(f"temperature must be a positive number, got {temperature!r}")
    if not (math.isfinite(float(temperature)) and temperature > 0):
        raise ValueError(f"temperature must be a positive finite number, got {temperature!r}")
    return float(temperature)


def _check_matrix(name: str, x, finite: bool = True) -> None:
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 2:
        raise ValueError(f"{name} must be 2-D, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got {x.dtype}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} must have at least one row and one column, got shape {tuple(x.shape)}")
    if finite and not _all_finite(x):
        raise ValueError(f"{name} contains NaN or infinite values")


def _all_finite(x: torch.Tensor) -> bool:
    # min and max propagate NaN and show +-inf, in one pass without an (N, D) boolean temporary.
    low, high = torch.aminmax(x)
    return bool(torch.isfinite(low) & torch.isfinite(high))


def _check_same_width(name: str, x: torch.Tensor, audio: torch.Tensor) -> None:
    if x.shape[1] != audio.shape[1]:
        raise ValueError(f"{name} has {x.shape[1]} columns but audio has D={audio.shape[1]}")
    if x.device != audio.device:
        raise ValueError(f"{name} is on {x.device} but audio is on {audio.device}")


def _all_indices(n: int, device) -> torch.Tensor:
    return torch.arange(n, dtype=torch.long, device=device)


# ---------------------------------------------------------------------------------------------
# Seeds and counts


def sample_seed(pruning_seed, sample_id) -> int:
    """SPEC's per-sample seed: the first 8 bytes (big-endian) of sha256(f"{pruning_seed}:{sample_id}") mod 2**63.

    Each sample gets its own seed, so batching and sharding never change a random selection.

    Example:
        >>> sample_seed(0, "lecture_3") == sample_seed(0, "lecture_3") != sample_seed(1, "lecture_3")
        True
    """
    digest = hashlib.sha256(f"{pruning_seed}:{sample_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 2**63


def final_count(num_tokens: int, rate: float, phase1_tokens: int = 750) -> int:
    """k2 = max(1, round((1 - rate) * min(num_tokens, phase1_tokens))), Python ``round``.

    Every method keeps this many audio tokens for a given rate (SPEC "Baselines").

    Example:
        >>> final_count(2250, 0.2), final_count(2250, 0.8), final_count(10, 0.0), final_count(1, 0.9)
        (600, 150, 10, 1)
    """
    num_tokens = _check_count("num_tokens", num_tokens)
    phase1_tokens = _check_count("phase1_tokens", phase1_tokens)
    rate = _check_rate(rate)
    return max(1, round((1.0 - rate) * min(num_tokens, phase1_tokens)))


# ---------------------------------------------------------------------------------------------
# Phase 1: token-text similarity with a frame-adaptive budget


@torch.no_grad()  # selection yields indices; inputs that require grad must not break it
def token_scores(audio: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """Phase 1 step 2: s_j = mean over query rows l of cos(audio_j, text_l), float32, shape ``(N,)``.

    Norms are clamped below at 1e-8. The mean of the cosines equals the dot product of the audio
    row with the mean unit query row, over the audio row's norm, which is what is computed: an
    elementwise product and a row sum rather than a BLAS matrix-vector product, because the
    latter can give identical rows scores that differ in the last bit; here they are identical.

    Example:
        >>> a = torch.tensor([[1.0, 0.0], [0.0, 2.0], [-3.0, 0.0]])
        >>> token_scores(a, torch.tensor([[1.0, 1.0], [1.0, 0.0]]))
        tensor([ 0.8536,  0.3536, -0.8536])
    """
    _check_matrix("audio", audio)
    _check_matrix("text", text)
    _check_same_width("text", text, audio)
    return _token_scores(audio, text)


def _token_scores(audio: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    text = text.to(torch.float32)
    text_unit = text / torch.linalg.vector_norm(text, dim=1, keepdim=True).clamp_min(_NORM_EPS)
    query = text_unit.mean(dim=0)
    n, d = audio.shape
    dots = torch.empty(n, dtype=torch.float32, device=audio.device)
    # Blocks of rows through one small reused buffer: a full (N, D) temporary costs more in fresh
    # memory pages than in arithmetic. Float32 products whatever the input dtype.
    step = max(1, 2**20 // d)
    buffer = torch.empty(min(step, n), d, dtype=torch.float32, device=audio.device)
    for start in range(0, n, step):
        block = audio[start : start + step]
        product = torch.mul(block, query, out=buffer[: block.shape[0]])
        torch.sum(product, dim=1, out=dots[start : start + step])
    return dots / torch.linalg.vector_norm(audio, dim=1, dtype=torch.float32).clamp_min(_NORM_EPS)


def _frame_budget(frame_scores: torch.Tensor, sizes: torch.Tensor, k: int, temperature: float) -> torch.Tensor:
    """Phase 1 steps 4-5: tokens per frame, int64 ``(m,)``, summing to ``k`` (needs sum(sizes) > k)."""
    p = torch.softmax(frame_scores.to(torch.float64) / temperature, dim=0)
    share = k * p
    floor = torch.floor(share)
    budget = torch.minimum(floor.to(torch.long), sizes)
    # Largest remainder: the frame order by fractional part never changes, so each round hands
    # one token to every frame that still has room, in that order, until the remainder is gone.
    order = torch.sort(share - floor, descending=True, stable=True).indices
    remainder = k - int(budget.sum())
    while remainder > 0:
        open_frames = order[budget[order] < sizes[order]]
        lucky = open_frames[:remainder]
        budget[lucky] += 1
        remainder -= lucky.numel()
    return budget


def _phase1_from_scores(scores: torch.Tensor, k: int, tokens_per_frame: int, temperature: float) -> torch.Tensor:
    n = scores.numel()
    if n <= k:
        return _all_indices(n, scores.device)
    f = tokens_per_frame
    m = -(-n // f)
    sizes = torch.full((m,), f, dtype=torch.long, device=scores.device)
    sizes[-1] = n - (m - 1) * f
    padded = torch.zeros(m * f, dtype=torch.float64, device=scores.device)
    padded[:n] = scores
    frame_scores = padded.view(m, f).sum(dim=1) / sizes
    # An (m, f) grid of scores for ranking; the short last frame is padded with -inf, which sorts last.
    grid = torch.full((m * f,), -math.inf, dtype=scores.dtype, device=scores.device)
    grid[:n] = scores
    grid = grid.view(m, f)
    budget = _frame_budget(frame_scores, sizes, k, temperature)
    # Step 6: within each frame, the top budget[i] tokens by score, ties to the lower index.
    ranked = torch.sort(grid, dim=1, descending=True, stable=True).indices
    keep = torch.arange(f, device=scores.device)[None, :] < budget[:, None]
    kept = (ranked + torch.arange(m, device=scores.device)[:, None] * f)[keep]
    return torch.sort(kept).values


@torch.no_grad()  # selection yields indices; inputs that require grad must not break it
def phase1_select(
    audio: torch.Tensor, text: torch.Tensor, k: int, tokens_per_frame: int = 25, temperature: float = 1.0
) -> torch.Tensor:
    """Phase 1 of SpeechPrune: keep ``k`` of the ``N`` audio rows by similarity to the query.

    Frames of ``tokens_per_frame`` rows (the last may be shorter) get a share of ``k`` from a
    softmax of their mean token score over ``temperature`` (largest-remainder rounding, a frame
    never gets more than it holds); each frame keeps its best-scoring rows.

    Args:
        audio: ``(N, D)`` audio tokens, any float dtype.
        text: ``(L, D)`` query embeddings, ``L >= 1``.
        k: number of rows to keep (all ``N`` when ``N <= k``).
        tokens_per_frame: rows per frame (25 = 1 s of Qwen2-Audio tokens).
        temperature: softmax temperature over frame scores, > 0.

    Returns:
        ``(min(N, k),)`` int64 indices into ``audio``, increasing.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> kept = phase1_select(torch.randn(100, 8, generator=g), torch.randn(3, 8, generator=g), k=10)
        >>> kept.shape, kept.dtype, bool((kept.diff() > 0).all())
        (torch.Size([10]), torch.int64, True)
    """
    k = _check_count("k", k)
    tokens_per_frame = _check_count("tokens_per_frame", tokens_per_frame)
    temperature = _check_temperature(temperature)
    scores = token_scores(audio, text)
    return _phase1_from_scores(scores, k, tokens_per_frame, temperature)


# ---------------------------------------------------------------------------------------------
# Phase 2: binarized attention estimation


class BinarizedWeights(NamedTuple):
    """The first layer's W_q / W_k, binarized and packed for :func:`phase2_select`.

    ``packed`` is int8 ``(D, 2 * Dk)``: ``[query | key]``, transposed for a right-hand matrix
    product, so that one product gives Q and K. ``key`` is b(W_k)^T. ``query`` is b(W_q)^T with the
    query heads that share a key head summed: with ``repeat_kv`` semantics, the sum over heads h of
    Q_h K_{h // n_rep}^T equals (sum of the n_rep query heads of group g) K_g^T, so the logits never
    need the repeated keys. ``width`` is the width of Q (the d in 1/sqrt(d)); ``query_bound`` is
    the largest |entry| of ``query`` (n_rep).
    """

    packed: torch.Tensor
    width: int
    query_bound: int

    @property
    def query(self) -> torch.Tensor:
        return self.packed[:, : self.packed.shape[1] // 2]

    @property
    def key(self) -> torch.Tensor:
        return self.packed[:, self.packed.shape[1] // 2 :]


_WEIGHT_CACHE: OrderedDict = OrderedDict()
_WEIGHT_CACHE_SIZE = 4


def _version(t: torch.Tensor):
    try:
        return t._version
    except RuntimeError:  # inference-mode tensors keep no version counter: never cache them
        return None


def binarize_weights(q_weight: torch.Tensor, k_weight: torch.Tensor, head_dim: int | None = None) -> BinarizedWeights:
    """b(W_q), b(W_k) packed for phase 2, computed once per pair of weight tensors.

    :func:`phase2_select` calls this itself. Results are cached by tensor identity (a weak
    reference plus the tensor's in-place version counter), so passing the model's parameters
    themselves, e.g. ``layer.self_attn.q_proj.weight``, binarizes them once per model; passing a
    fresh tensor each call (``.float()``, ``.detach().clone()``) redoes the work every time.
    Binarization depends only on signs, so do not convert bfloat16 weights first.

    Example:
        >>> w = torch.randn(8, 4)
        >>> binarize_weights(w, w) is binarize_weights(w, w)
        True
    """
    key = (id(q_weight), id(k_weight), head_dim)
    entry = _WEIGHT_CACHE.get(key)
    if entry is not None:
        q_ref, k_ref, q_version, k_version, packed = entry
        same_tensors = q_ref() is q_weight and k_ref() is k_weight  # ids are reused once a tensor is freed
        if same_tensors and (q_version, k_version) == (_version(q_weight), _version(k_weight)):
            _WEIGHT_CACHE.move_to_end(key)
            return packed
        del _WEIGHT_CACHE[key]
    packed = _pack_weights(q_weight, k_weight, head_dim)
    versions = (_version(q_weight), _version(k_weight))
    if None not in versions:
        _WEIGHT_CACHE[key] = (weakref.ref(q_weight), weakref.ref(k_weight), *versions, packed)
        while len(_WEIGHT_CACHE) > _WEIGHT_CACHE_SIZE:
            _WEIGHT_CACHE.popitem(last=False)
    return packed


def clear_weight_cache() -> None:
    """Forget every cached :func:`binarize_weights` result."""
    _WEIGHT_CACHE.clear()


@torch.no_grad()
def _pack_weights(q_weight: torch.Tensor, k_weight: torch.Tensor, head_dim: int | None) -> BinarizedWeights:
    _check_matrix("q_weight", q_weight)
    _check_matrix("k_weight", k_weight)
    if k_weight.shape[1] != q_weight.shape[1]:
        raise ValueError(f"q_weight has D={q_weight.shape[1]} input features but k_weight has {k_weight.shape[1]}")
    if k_weight.device != q_weight.device:
        raise ValueError(f"k_weight is on {k_weight.device} but q_weight is on {q_weight.device}")
    width_q, width_k, d = q_weight.shape[0], k_weight.shape[0], q_weight.shape[1]
    if head_dim is not None:
        head_dim = _check_count("head_dim", head_dim)
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
        raise ValueError(f"at most 127 query heads per key head are supported, got {n_rep}")
    sign_q = _binarize(q_weight)
    if n_rep > 1:
        # Query heads g*n_rep .. g*n_rep + n_rep - 1 read key head g (repeat_kv order).
        sign_q = sign_q.view(width_k // head_dim, n_rep, head_dim, d).sum(dim=1, dtype=torch.int8)
        sign_q = sign_q.reshape(width_k, d)
    packed = torch.cat([sign_q, _binarize(k_weight)]).T.contiguous()
    return BinarizedWeights(packed=packed, width=width_q, query_bound=n_rep)


def _binarize(x: torch.Tensor) -> torch.Tensor:
    """b(x) = +1 where x >= 0 else -1 (so b(-0.0) = +1), as int8."""
    one = torch.ones((), dtype=torch.int8, device=x.device)
    return torch.where(x >= 0, one, -one)


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


def _integer_logits(audio: torch.Tensor, weights: BinarizedWeights) -> torch.Tensor:
    """Z * sqrt(d) = b(X) b(W_q)^T (b(X) b(W_k)^T)^T, keys repeated per head, as exact integers in float64.

    On CPU every product is an int8 matrix product with int32 accumulation (``torch._int_mm``),
    exact and several times faster than float32. Elsewhere float products are used where they
    are provably exact: float32 for Q and K (sums of small integers below 2**24, exact even with
    TF32 inputs), float64 for Q K^T.
    """
    n, d_in = audio.shape
    width_k = weights.packed.shape[1] // 2
    q_bound, k_bound = weights.query_bound * d_in, d_in
    if width_k * q_bound * k_bound >= _EXACT_F64 or q_bound >= _EXACT_F32:
        raise ValueError("phase 2 logits would exceed float64's exact integer range; the weights are too wide")
    signs = _binarize(audio)
    if not (audio.device.type == "cpu" and hasattr(torch, "_int_mm")) or width_k * 64 * 64 >= 2**31:
        qk = signs.to(torch.float32) @ weights.packed.to(torch.float32)
        q, k = qk[:, :width_k].to(torch.float64), qk[:, width_k:].to(torch.float64)
        return q @ k.T
    qk = torch._int_mm(signs, weights.packed)  # (n, 2 Dk) int32, exact
    # Q and K entries reach thousands, too wide for int8: split both into base-128 digits, multiply
    # every query digit block by every key digit block in one int8 product (each sum of Dk
    # products of digits stays below 2**31) and add the blocks up with their powers of 128.
    q_digits, k_digits = _int8_digits(qk[:, :width_k]), _int8_digits(qk[:, width_k:])
    blocks = torch._int_mm(torch.cat(q_digits), torch.cat(k_digits).T)
    z = torch.zeros(n, n, dtype=torch.float64, device=audio.device)
    for i in range(len(q_digits)):
        for j in range(len(k_digits)):
            z += blocks[i * n : (i + 1) * n, j * n : (j + 1) * n].to(torch.float64) * float(128 ** (i + j))
    return z


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


def _top_k_by(primary: torch.Tensor, secondary: torch.Tensor | None, k: int) -> torch.Tensor:
    """Indices of the top-k by (primary desc, secondary desc, index asc), returned increasing."""
    order = torch.arange(primary.numel(), device=primary.device)
    if secondary is not None:
        order = torch.sort(secondary, descending=True, stable=True).indices
    order = order[torch.sort(primary[order], descending=True, stable=True).indices]
    return torch.sort(order[:k]).values


@torch.no_grad()
def phase2_select(
    audio: torch.Tensor,
    q_weight: torch.Tensor,
    k_weight: torch.Tensor,
    k: int,
    head_dim: int | None = None,
    tie_break: torch.Tensor | None = None,
) -> torch.Tensor:
    """Phase 2 of SpeechPrune: keep the ``k`` rows that receive the most binarized attention.

    Rows, W_q and W_k are binarized (+1 where >= 0, else -1; no bias, RoPE or norm), Z = Q K^T /
    sqrt(width of Q) as one full-width head, and tokens are ranked by the log of the attention
    they receive averaged over all rows (:func:`log_importance`), then by ``tie_break`` (higher
    first), then by the lower index. Z is computed exactly, so ties are exact.

    Args:
        audio: ``(n, D)`` rows, any float dtype.
        q_weight: ``(Dq, D)`` query projection weight (``nn.Linear`` layout).
        k_weight: ``(Dk, D)`` key projection weight; ``Dk < Dq`` means grouped-query attention.
        k: number of rows to keep (all ``n`` when ``n <= k``).
        head_dim: width of one head; required only when ``Dk < Dq``.
        tie_break: optional ``(n,)`` secondary scores (e.g. phase 1 token scores), higher first.

    Returns:
        ``(min(n, k),)`` int64 indices into ``audio``, increasing.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> x, w_q, w_k = (torch.randn(s, 16, generator=g) for s in (40, 16, 16))
        >>> phase2_select(x, w_q, w_k, k=5).shape
        torch.Size([5])
        >>> phase2_select(x[:3], w_q, w_k, k=5).tolist()  # no more rows than k: all of them
        [0, 1, 2]
    """
    k = _check_count("k", k)
    _check_matrix("audio", audio)
    weights = binarize_weights(q_weight, k_weight, head_dim)
    _check_same_width("q_weight", q_weight, audio)
    return _phase2_from_weights(audio, weights, k, tie_break)


def _phase2_from_weights(
    audio: torch.Tensor, weights: BinarizedWeights, k: int, tie_break: torch.Tensor | None
) -> torch.Tensor:
    """:func:`phase2_select` on checked ``audio``, ``k`` and packed ``weights`` (``tie_break`` is checked here)."""
    n = audio.shape[0]
    if tie_break is not None:
        if not isinstance(tie_break, torch.Tensor) or tie_break.shape != (n,):
            raise ValueError(
                f"tie_break must be a tensor of shape ({n},), got {getattr(tie_break, 'shape', tie_break)}"
            )
        if not _all_finite(tie_break):
            raise ValueError("tie_break contains NaN or infinite values")
        tie_break = tie_break.to(device=audio.device, dtype=torch.float64)
    if n <= k:
        return _all_indices(n, audio.device)
    logits = _integer_logits(audio, weights) / math.sqrt(weights.width)
    return _top_k_by(log_importance(logits), tie_break, k)


# ---------------------------------------------------------------------------------------------
# The two-phase method and the random baselines


@torch.no_grad()
def speechprune_select(
    audio: torch.Tensor,
    text: torch.Tensor,
    q_weight: torch.Tensor,
    k_weight: torch.Tensor,
    rate: float,
    phase1_tokens: int = 750,
    tokens_per_frame: int = 25,
    temperature: float = 1.0,
    head_dim: int | None = None,
) -> torch.Tensor:
    """SpeechPrune: phase 1 to k1 = min(N, phase1_tokens), then phase 2 to :func:`final_count`.

    Phase 2 breaks ties by the phase 1 token scores of the rows it ranks.

    Returns:
        ``(final_count(N, rate, phase1_tokens),)`` int64 indices into the original ``audio``, increasing.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> audio, text, w = torch.randn(90, 8, generator=g), torch.randn(2, 8, generator=g), torch.randn(8, 8)
        >>> speechprune_select(audio, text, w, w, rate=0.5, phase1_tokens=20).numel()
        10
    """
    rate = _check_rate(rate)
    phase1_tokens = _check_count("phase1_tokens", phase1_tokens)
    tokens_per_frame = _check_count("tokens_per_frame", tokens_per_frame)
    temperature = _check_temperature(temperature)
    scores = token_scores(audio, text)
    weights = binarize_weights(q_weight, k_weight, head_dim)  # bad weights fail before any work
    _check_same_width("q_weight", q_weight, audio)
    n = audio.shape[0]
    kept1 = _phase1_from_scores(scores, min(n, phase1_tokens), tokens_per_frame, temperature)
    k2 = final_count(n, rate, phase1_tokens)
    # The packed weights are passed on, so they are binarized once per call even when they cannot
    # be cached (inference-mode tensors keep no version counter).
    kept2 = _phase2_from_weights(audio[kept1], weights, k2, tie_break=scores[kept1])
    return kept1[kept2]


def _seeded_generator(seed) -> torch.Generator:
    seed = _check_count("seed", seed, minimum=0)
    if seed >= 2**64:
        raise ValueError(f"seed must be < 2**64, got {seed}")
    return torch.Generator(device="cpu").manual_seed(seed)


def random_select(num_tokens: int, k: int, seed: int) -> torch.Tensor:
    """Random pruning (RAP): ``sorted(torch.randperm(N, generator=g)[:k])`` with ``g`` seeded by ``seed``.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> random_select(10, 3, seed=0).tolist() == sorted(torch.randperm(10, generator=g)[:3].tolist())
        True
    """
    num_tokens, k = _check_count("num_tokens", num_tokens), _check_count("k", k)
    g = _seeded_generator(seed)
    if num_tokens <= k:
        return _all_indices(num_tokens, "cpu")
    return torch.sort(torch.randperm(num_tokens, generator=g)[:k]).values


def crop_select(num_tokens: int, k: int, seed: int) -> torch.Tensor:
    """Random crop (RAC): ``k`` consecutive indices from ``torch.randint(0, N - k + 1, (1,), generator=g)``.

    Example:
        >>> kept = crop_select(100, 5, seed=1)
        >>> kept.tolist() == list(range(int(kept[0]), int(kept[0]) + 5))
        True
    """
    num_tokens, k = _check_count("num_tokens", num_tokens), _check_count("k", k)
    g = _seeded_generator(seed)
    if num_tokens <= k:
        return _all_indices(num_tokens, "cpu")
    start = int(torch.randint(0, num_tokens - k + 1, (1,), generator=g))
    return torch.arange(start, start + k, dtype=torch.long)


__all__ = [
    "METHODS",
    "METHOD_ALIASES",
    "BinarizedWeights",
    "binarize_weights",
    "clear_weight_cache",
    "crop_select",
    "final_count",
    "log_importance",
    "phase1_select",
    "phase2_select",
    "random_select",
    "resolve_method",
    "sample_seed",
    "speechprune_select",
    "token_scores",
]
