"""SpeechPrune token selection (SPEC sections 3 and 8): tensors in, kept row indices out.

Read it beside SPEC: counts and seeds, phase 1, phase 2, the two-phase method, the random
baselines (section 3), then the baselines of section 8 (uniform, DART, the ranking step of
llm_attention, the oracle) and key recall. The exact integer kernels of phase 2 live in
``pruning_kernels.py``; every setting is checked by ``pruning_settings.py``, the one validator
(the model wrapper calls ``pruning_settings.resolve_settings`` for its per-call settings). These
three files import only torch and the standard library; they are copied into Hub model repos.

Every selection function returns a 1-D int64 tensor of row indices, strictly increasing (time
order is kept), with exactly the requested count (all indices when there are no more rows than
that). Ties in every top-k go to the lower index. Indices are on the input tensor's device;
the functions that take only a count (random, crop, uniform, oracle) return CPU tensors.

Shapes: ``audio`` is ``(N, D)`` (the projected audio tokens of one recording), ``text`` is
``(L, D)`` (input-embedding rows of the query tokens), ``q_weight`` / ``k_weight`` are the first
decoder layer's projection weights in ``nn.Linear`` layout ``(out, D)``. Any float dtype works;
scores are computed in float32 (float64 inputs are rounded to float32 first).

Nothing is cached between calls: the weights are binarized on every call (tens of milliseconds
at 7B sizes on CPU), so a cast, a move or a change through ``.data`` is always seen.

Example:
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> audio, text = torch.randn(2250, 64, generator=g), torch.randn(12, 64, generator=g)
    >>> w_q, w_k = torch.randn(64, 64, generator=g), torch.randn(64, 64, generator=g)
    >>> kept = speechprune_select(audio, text, w_q, w_k, rate=0.4)
    >>> kept.shape, bool((kept.diff() > 0).all())
    (torch.Size([450]), True)
"""

from __future__ import annotations

import hashlib
import math
import numbers
from fractions import Fraction

import torch

from .pruning_kernels import (
    BinarizedWeights,
    all_finite,
    binarize_weights,
    check_matrix,
    exact_device,
    integer_logits,
    log_importance,
)
from .pruning_settings import METHOD_ALIASES, METHODS, check_count, check_rate, check_temperature, resolve_method

_NORM_EPS = 1e-8

# ---------------------------------------------------------------------------------------------
# Counts and seeds


def final_count(num_tokens: int, rate: float, phase1_tokens: int = 750) -> int:
    """k2 = max(1, round((1 - rate) * min(num_tokens, phase1_tokens))), Python ``round``.

    Every method keeps this many audio tokens for a given rate (SPEC "Baselines").

    Example:
        >>> final_count(2250, 0.2), final_count(2250, 0.8), final_count(10, 0.0), final_count(1, 0.9)
        (600, 150, 10, 1)
    """
    num_tokens = check_count("num_tokens", num_tokens)
    phase1_tokens = check_count("phase1_tokens", phase1_tokens)
    rate = check_rate(rate)
    return max(1, round((1.0 - rate) * min(num_tokens, phase1_tokens)))


def sample_seed(pruning_seed, sample_id) -> int:
    """SPEC's per-sample seed: the first 8 bytes (big-endian) of sha256(f"{pruning_seed}:{sample_id}") mod 2**63.

    Each sample gets its own seed, so batching and sharding never change a random selection.

    Example:
        >>> sample_seed(0, "lecture_3") == sample_seed(0, "lecture_3") != sample_seed(1, "lecture_3")
        True
    """
    digest = hashlib.sha256(f"{pruning_seed}:{sample_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 2**63


# ---------------------------------------------------------------------------------------------
# Phase 1: token-text similarity with a frame-adaptive budget


@torch.no_grad()  # selection yields indices; inputs that require grad must not break it
def token_scores(audio: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """Phase 1 step 2: s_j = mean over query rows l of cos(audio_j, text_l), float32, shape ``(N,)``.

    Norms are clamped below at 1e-8. The mean of the cosines equals the dot product of the audio
    row with the mean unit query row, over the audio row's norm, which is what is computed.

    Example:
        >>> a = torch.tensor([[1.0, 0.0], [0.0, 2.0], [-3.0, 0.0]])
        >>> token_scores(a, torch.tensor([[1.0, 1.0], [1.0, 0.0]]))
        tensor([ 0.8536,  0.3536, -0.8536])
    """
    check_matrix("audio", audio)
    check_matrix("text", text)
    _check_same_width("text", text, audio)
    text = text.to(torch.float32)
    query = (text / torch.linalg.vector_norm(text, dim=1, keepdim=True).clamp_min(_NORM_EPS)).mean(dim=0)
    return _cosines(audio, query)


def _cosines(audio: torch.Tensor, unit: torch.Tensor) -> torch.Tensor:
    """cos(audio_j, unit) for a unit float32 vector, float32 ``(N,)``: (audio_j . unit) / ||audio_j||.

    An elementwise product and a row sum rather than a BLAS matrix-vector product, because the
    latter can give identical rows results that differ in the last bit; here they are identical,
    so exact ties stay ties. Rows go through one small reused buffer: a full (N, D) temporary
    costs more in fresh memory pages than in arithmetic.
    """
    if audio.dtype == torch.float64:
        audio = audio.to(torch.float32)  # SPEC: float32 whatever the input dtype
    n, d = audio.shape
    dots = torch.empty(n, dtype=torch.float32, device=audio.device)
    step = max(1, 2**20 // d)
    buffer = torch.empty(min(step, n), d, dtype=torch.float32, device=audio.device)
    for start in range(0, n, step):
        block = audio[start : start + step]
        torch.sum(torch.mul(block, unit, out=buffer[: block.shape[0]]), dim=1, out=dots[start : start + step])
    return dots / torch.linalg.vector_norm(audio, dim=1, dtype=torch.float32).clamp_min(_NORM_EPS)


@torch.no_grad()
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
        temperature: softmax temperature over frame scores, finite and > 0.

    Returns:
        ``(min(N, k),)`` int64 indices into ``audio``, increasing.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> kept = phase1_select(torch.randn(100, 8, generator=g), torch.randn(3, 8, generator=g), k=10)
        >>> kept.shape, kept.dtype, bool((kept.diff() > 0).all())
        (torch.Size([10]), torch.int64, True)
    """
    k = check_count("k", k)
    tokens_per_frame = check_count("tokens_per_frame", tokens_per_frame)
    temperature = check_temperature(temperature)
    return _phase1_from_scores(token_scores(audio, text), k, tokens_per_frame, temperature)


def _phase1_from_scores(scores: torch.Tensor, k: int, f: int, temperature: float) -> torch.Tensor:
    """Steps 3-6 on the token scores ``(N,)``."""
    n, device = scores.numel(), scores.device
    if n <= k:
        return _all_indices(n, device)
    m = -(-n // f)
    # Step 3: frame scores, in float64 where float64 exists (the CPU for MPS); m numbers only.
    exact = exact_device(device)
    sizes = torch.full((m,), f, dtype=torch.long, device=exact)
    sizes[-1] = n - (m - 1) * f
    padded = torch.zeros(m * f, dtype=torch.float64, device=exact)
    padded[:n] = scores.to(exact)
    budget = _frame_budget(padded.view(m, f).sum(dim=1) / sizes, sizes, k, temperature).to(device)
    # Step 6: within each frame, the top budget[i] tokens by score, ties to the lower index. An
    # (m, f) grid of scores; the short last frame is padded with -inf, which sorts last.
    grid = torch.full((m * f,), -math.inf, dtype=scores.dtype, device=device)
    grid[:n] = scores
    ranked = torch.sort(grid.view(m, f), dim=1, descending=True, stable=True).indices
    keep = torch.arange(f, device=device)[None, :] < budget[:, None]
    kept = (ranked + torch.arange(m, device=device)[:, None] * f)[keep]
    return torch.sort(kept).values


def _frame_budget(frame_scores: torch.Tensor, sizes: torch.Tensor, k: int, temperature: float) -> torch.Tensor:
    """Steps 4-5: tokens per frame, int64 ``(m,)``, summing to ``k`` (needs sum(sizes) > k)."""
    share = k * torch.softmax(frame_scores.to(torch.float64) / temperature, dim=0)
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


# ---------------------------------------------------------------------------------------------
# Phase 2: binarized attention estimation


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
    they receive averaged over all rows (``log_importance``), then by ``tie_break`` (higher
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
    k = check_count("k", k)
    check_matrix("audio", audio)
    weights = binarize_weights(q_weight, k_weight, head_dim)
    _check_same_width("q_weight", q_weight, audio)
    return _phase2(audio, weights, k, tie_break)


def _phase2(audio: torch.Tensor, weights: BinarizedWeights, k: int, tie_break: torch.Tensor | None) -> torch.Tensor:
    """Steps 1-6 on checked rows and packed weights (``tie_break`` is checked here)."""
    n = audio.shape[0]
    if tie_break is not None:
        if not isinstance(tie_break, torch.Tensor) or tie_break.shape != (n,):
            raise ValueError(
                f"tie_break must be a tensor of shape ({n},), got {getattr(tie_break, 'shape', tie_break)}"
            )
        if not all_finite(tie_break):
            raise ValueError("tie_break contains NaN or infinite values")
    if n <= k:
        return _all_indices(n, audio.device)
    device = exact_device(audio.device)  # float64 logits: the CPU for MPS
    logits = integer_logits(audio.to(device), weights.to(device)) / math.sqrt(weights.width)
    secondary = None if tie_break is None else tie_break.to(device).to(torch.float64)
    return _top_k_by(log_importance(logits), secondary, k).to(audio.device)


def _top_k_by(primary: torch.Tensor, secondary: torch.Tensor | None, k: int) -> torch.Tensor:
    """Indices of the top-k by (primary desc, secondary desc, index asc), returned increasing."""
    order = torch.arange(primary.numel(), device=primary.device)
    if secondary is not None:
        order = torch.sort(secondary, descending=True, stable=True).indices
    order = order[torch.sort(primary[order], descending=True, stable=True).indices]
    return torch.sort(order[:k]).values


# ---------------------------------------------------------------------------------------------
# The two-phase method


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
    rate = check_rate(rate)
    phase1_tokens = check_count("phase1_tokens", phase1_tokens)
    tokens_per_frame = check_count("tokens_per_frame", tokens_per_frame)
    temperature = check_temperature(temperature)
    scores = token_scores(audio, text)
    weights = binarize_weights(q_weight, k_weight, head_dim)  # bad weights fail before any work
    _check_same_width("q_weight", q_weight, audio)
    n = audio.shape[0]
    kept1 = _phase1_from_scores(scores, min(n, phase1_tokens), tokens_per_frame, temperature)
    kept2 = _phase2(audio[kept1], weights, final_count(n, rate, phase1_tokens), tie_break=scores[kept1])
    return kept1[kept2]


# ---------------------------------------------------------------------------------------------
# Random baselines


def random_select(num_tokens: int, k: int, seed: int) -> torch.Tensor:
    """Random pruning (RAP): ``sorted(torch.randperm(N, generator=g)[:k])`` with ``g`` seeded by ``seed``.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> random_select(10, 3, seed=0).tolist() == sorted(torch.randperm(10, generator=g)[:3].tolist())
        True
    """
    num_tokens, k = check_count("num_tokens", num_tokens), check_count("k", k)
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
    num_tokens, k = check_count("num_tokens", num_tokens), check_count("k", k)
    g = _seeded_generator(seed)
    if num_tokens <= k:
        return _all_indices(num_tokens, "cpu")
    start = int(torch.randint(0, num_tokens - k + 1, (1,), generator=g))
    return torch.arange(start, start + k, dtype=torch.long)


def _seeded_generator(seed) -> torch.Generator:
    seed = check_count("seed", seed, minimum=0)
    if seed >= 2**64:
        raise ValueError(f"seed must be < 2**64, got {seed}")
    return torch.Generator(device="cpu").manual_seed(seed)


# ---------------------------------------------------------------------------------------------
# SPEC section 8: baselines beyond the paper


def uniform_select(num_tokens: int, k: int) -> torch.Tensor:
    """Uniform subsampling: index i of k is floor((i + 0.5) * N / k), computed in integers.

    Example:
        >>> uniform_select(10, 4).tolist()
        [1, 3, 6, 8]
    """
    n, k = check_count("num_tokens", num_tokens), check_count("k", k)
    if n <= k:
        return _all_indices(n, "cpu")
    i = torch.arange(k, dtype=torch.long)
    return ((2 * i + 1) * n) // (2 * k)  # steps of N / k > 1: strictly increasing


@torch.no_grad()
def dart_select(audio: torch.Tensor, k: int, pivots: int = 8) -> torch.Tensor:
    """DART-style duplication-aware selection on the rows themselves.

    The p = min(pivots, k) rows with the largest L2 norm are pivots (ties to the lower index);
    every other row scores its largest cosine similarity to a pivot (norms clamped below at
    1e-8, float32); the pivots are kept with the k - p least duplicated rows (lowest scores,
    ties to the lower index).

    Example:
        >>> audio = torch.tensor([[3.0, 0.0], [2.9, 0.1], [0.0, 1.0], [0.1, 1.0], [-1.0, 0.0]])
        >>> dart_select(audio, k=3, pivots=1).tolist()  # pivot 0 (largest norm); 4 and 2 are least like it
        [0, 2, 4]
    """
    k, pivots = check_count("k", k), check_count("pivots", pivots)
    check_matrix("audio", audio)
    n = audio.shape[0]
    if n <= k:
        return _all_indices(n, audio.device)
    rows = audio.to(torch.float32) if audio.dtype == torch.float64 else audio
    norms = torch.linalg.vector_norm(rows, dim=1, dtype=torch.float32)
    p = min(pivots, k)
    pivot_rows = torch.sort(norms, descending=True, stable=True).indices[:p]
    duplication = torch.full((n,), -math.inf, dtype=torch.float32, device=audio.device)
    for j in pivot_rows.tolist():
        unit = rows[j].to(torch.float32) / norms[j].clamp_min(_NORM_EPS)
        duplication = torch.maximum(duplication, _cosines(rows, unit))
    duplication[pivot_rows] = math.inf  # pivots are kept anyway; +inf sorts them last below
    others = torch.sort(duplication, stable=True).indices[: k - p]
    return torch.sort(torch.cat([pivot_rows, others])).values


@torch.no_grad()
def llm_attention_select(attention: torch.Tensor, k: int) -> torch.Tensor:
    """The ranking step of ``llm_attention``: the k audio tokens that receive the most attention.

    ``attention`` holds one decoder layer's attention probabilities onto the recording's N audio
    tokens: ``(heads, queries, N)`` (queries = the positions after the recording), ``(queries, N)``,
    or ``(N,)`` already averaged. They are averaged (float64) over every axis but the last, and
    the top k are kept, ties to the lower index. Computing the probabilities with the layer's
    own norm, RoPE and mask is the model's side.

    Example:
        >>> attention = torch.tensor([[[0.1, 0.5, 0.2, 0.2]], [[0.3, 0.1, 0.3, 0.3]]])  # 2 heads, 1 query
        >>> llm_attention_select(attention, k=2).tolist()  # means 0.2, 0.3, 0.25, 0.25
        [1, 2]
    """
    k = check_count("k", k)
    if not isinstance(attention, torch.Tensor) or not attention.is_floating_point():
        raise ValueError(f"attention must be a floating-point torch.Tensor, got {type(attention).__name__}")
    if attention.dim() not in (1, 2, 3) or attention.numel() == 0:
        raise ValueError(f"attention must be (heads, queries, N), (queries, N) or (N,), got {tuple(attention.shape)}")
    if not all_finite(attention):
        raise ValueError("attention contains NaN or infinite values")
    n = attention.shape[-1]
    if n <= k:
        return _all_indices(n, attention.device)
    device = exact_device(attention.device)
    mean = attention.to(device).to(torch.float64).reshape(-1, n).mean(dim=0)
    return _top_k_by(mean, None, k).to(attention.device)


def key_token_set(num_tokens: int, key_start, key_end, seconds_per_token: float = 0.04) -> torch.Tensor:
    """K: the tokens j whose interval [j t, (j + 1) t) overlaps [key_start, key_end), increasing (CPU).

    Times are compared exactly, each read as the nearest fraction with a denominator of at most
    10**6 (so 1.2 s is 6/5 s and t = 0.04 is 1/25: a token ending exactly where the key starts
    does not overlap it). A key span past the audio is cut at N tokens; K may be empty.

    Example:
        >>> key_token_set(100, 1.2, 1.3).tolist()  # tokens of 40 ms: [1.2, 1.24), [1.24, 1.28), [1.28, 1.32)
        [30, 31, 32]
    """
    n = check_count("num_tokens", num_tokens)
    start, end = _key_span(key_start, key_end)
    t = _exact_seconds("seconds_per_token", seconds_per_token)
    if t <= 0:
        raise ValueError(f"seconds_per_token must be > 0, got {seconds_per_token!r}")
    first = max(0, math.floor(start / t))  # (j + 1) t > start
    stop = min(n, math.ceil(end / t))  # j t < end
    return torch.arange(first, max(first, stop), dtype=torch.long)


def oracle_select(num_tokens: int, k: int, key_start, key_end, seconds_per_token: float = 0.04) -> torch.Tensor:
    """The oracle (an upper bound): keep the key sentence's tokens K (:func:`key_token_set`).

    If |K| >= k, the contiguous run of k tokens of K centred on K (the earlier one when two are
    equally centred); else K and :func:`uniform_select`'s choice of k - |K| among the other
    tokens. A sample without key times, or whose key span covers no token, is an error.

    Example:
        >>> oracle_select(100, 4, 1.2, 1.3).tolist()  # K = [30, 31, 32], then the 48th of the other 97
        [30, 31, 32, 51]
        >>> oracle_select(100, 2, 1.2, 1.3).tolist()  # a run of 2 in K, the earlier of two equally centred
        [30, 31]
    """
    n, k = check_count("num_tokens", num_tokens), check_count("k", k)
    key = key_token_set(n, key_start, key_end, seconds_per_token)
    if key.numel() == 0:
        raise ValueError(f"key_start/key_end: [{key_start}, {key_end}) s covers none of the {n} audio tokens")
    if n <= k:
        return _all_indices(n, "cpu")
    first, size = int(key[0]), key.numel()
    if size >= k:
        start = first + (size - k) // 2
        return torch.arange(start, start + k, dtype=torch.long)
    others = torch.cat([torch.arange(first), torch.arange(first + size, n)])
    return torch.sort(torch.cat([key, others[uniform_select(n - size, k - size)]])).values


def key_recall(kept, num_tokens: int, key_start, key_end, seconds_per_token: float = 0.04) -> float | None:
    """|kept ∩ K| / |K|: the share of the key sentence's tokens that a selection kept; None without key times.

    ``kept`` holds indices into the recording's ``num_tokens`` tokens (a tensor or a list); key
    times that are None or NaN mean "no key times". A key span covering no token is an error.

    Example:
        >>> key_recall(torch.tensor([0, 30, 31]), 100, 1.2, 1.3), key_recall([1, 2], 100, None, None)
        (0.6666666666666666, None)
    """
    if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in (key_start, key_end)):
        return None
    key = key_token_set(num_tokens, key_start, key_end, seconds_per_token)
    if key.numel() == 0:
        raise ValueError(f"key_start/key_end: [{key_start}, {key_end}) s covers none of the {num_tokens} audio tokens")
    kept = torch.as_tensor(kept, dtype=torch.long).reshape(-1).cpu()
    return int(torch.isin(key, kept).sum()) / key.numel()


def _key_span(key_start, key_end) -> tuple[Fraction, Fraction]:
    for name, value in (("key_start", key_start), ("key_end", key_end)):
        if value is None or isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value):
            raise ValueError(f"{name}: oracle and key recall need the key sentence's times, got {value!r}")
    start, end = _exact_seconds("key_start", key_start), _exact_seconds("key_end", key_end)
    if not end > start:
        raise ValueError(f"key_end must be after key_start, got [{key_start}, {key_end})")
    return start, end


def _exact_seconds(name: str, value) -> Fraction:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number of seconds, got {value!r}")
    return Fraction(value).limit_denominator(10**6)


# ---------------------------------------------------------------------------------------------
# Shared helpers


def _check_same_width(name: str, x: torch.Tensor, audio: torch.Tensor) -> None:
    if x.shape[1] != audio.shape[1]:
        raise ValueError(f"{name} has {x.shape[1]} columns but audio has D={audio.shape[1]}")
    if x.device != audio.device:
        raise ValueError(f"{name} is on {x.device} but audio is on {audio.device}")


def _all_indices(n: int, device) -> torch.Tensor:
    return torch.arange(n, dtype=torch.long, device=device)


__all__ = [
    "METHODS",
    "METHOD_ALIASES",
    "BinarizedWeights",
    "binarize_weights",
    "crop_select",
    "dart_select",
    "final_count",
    "key_recall",
    "key_token_set",
    "llm_attention_select",
    "log_importance",
    "oracle_select",
    "phase1_select",
    "phase2_select",
    "random_select",
    "resolve_method",
    "sample_seed",
    "speechprune_select",
    "token_scores",
    "uniform_select",
]
