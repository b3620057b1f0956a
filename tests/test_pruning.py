"""pruning.py against a naive, loop-by-loop reading of SPEC section 3.

The reference below is written from the SPEC text alone: Python floats and ints, math.fsum, one
token and one frame at a time, the largest-remainder budget handed out one token per step, and
its own sort keys for every ranking. pruning.py must pick the same indices on every input.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest
import torch

from speechprune.modeling import pruning, pruning_kernels, pruning_settings

# ---------------------------------------------------------------------------------------------
# The naive reference


def _matrix(t: torch.Tensor) -> list[list[float]]:
    return t.double().tolist()  # exact for float16 / bfloat16 / float32 inputs


def naive_token_scores(audio: torch.Tensor, text: torch.Tensor) -> list[float]:
    def norm(v):
        return max(math.sqrt(math.fsum(x * x for x in v)), 1e-8)

    query = _matrix(text)
    query_norms = [norm(t) for t in query]
    scores = []
    for row in _matrix(audio):
        row_norm = norm(row)
        cosines = [math.fsum(a * b for a, b in zip(row, t)) / (row_norm * tn) for t, tn in zip(query, query_norms)]
        scores.append(math.fsum(cosines) / len(cosines))
    return scores


def naive_phase1(scores: list[float], k: int, f: int = 25, tau: float = 1.0, stats: dict | None = None) -> list[int]:
    n = len(scores)
    if n <= k:
        return list(range(n))
    frames = [list(range(start, min(start + f, n))) for start in range(0, n, f)]
    frame_scores = [math.fsum(scores[j] for j in frame) / len(frame) for frame in frames]
    top = max(s / tau for s in frame_scores)
    weights = [math.exp(s / tau - top) for s in frame_scores]
    total = math.fsum(weights)
    p = [w / total for w in weights]
    budget = [min(math.floor(k * pi), len(frame)) for pi, frame in zip(p, frames)]
    fraction = [k * pi - math.floor(k * pi) for pi in p]
    remainder = k - sum(budget)
    served: set[int] = set()  # frames that got a remainder token in the current round
    rounds = 1
    while remainder > 0:
        eligible = [i for i in range(len(frames)) if budget[i] < len(frames[i]) and i not in served]
        if not eligible:
            served, rounds = set(), rounds + 1
            continue
        best = eligible[0]
        for i in eligible[1:]:
            if fraction[i] > fraction[best]:  # strictly larger: ties stay with the lower frame index
                best = i
        budget[best] += 1
        served.add(best)
        remainder -= 1
    if stats is not None:
        stats["capped"] = sum(math.floor(k * pi) > len(frame) for pi, frame in zip(p, frames))
        stats["rounds"] = rounds
    kept = []
    for frame, b in zip(frames, budget):
        kept += sorted(frame, key=lambda j: (-scores[j], j))[:b]
    return sorted(kept)


def naive_integer_logits(audio, q_weight, k_weight, head_dim=None) -> list[list[int]]:
    def sign(v):
        return 1 if v >= 0 else -1

    x = [[sign(v) for v in row] for row in _matrix(audio)]
    wq = [[sign(v) for v in row] for row in _matrix(q_weight)]
    wk = [[sign(v) for v in row] for row in _matrix(k_weight)]
    q = [[sum(a * b for a, b in zip(xi, w)) for w in wq] for xi in x]
    k = [[sum(a * b for a, b in zip(xi, w)) for w in wk] for xi in x]
    if len(wk) < len(wq):  # repeat_kv: query head h reads key head h // (heads per key head)
        heads, kv_heads = len(wq) // head_dim, len(wk) // head_dim
        per = heads // kv_heads
        k = [[row[(h // per) * head_dim + c] for h in range(heads) for c in range(head_dim)] for row in k]
    return [[sum(a * b for a, b in zip(qi, kj)) for kj in k] for qi in q]


def naive_log_importance(z: list[list[float]]) -> list[float]:
    def logsumexp(values):
        top = max(values)
        return top + math.log(math.fsum(math.exp(v - top) for v in values))

    n = len(z)
    row_lse = [logsumexp(row) for row in z]
    return [logsumexp([z[i][j] - row_lse[i] for i in range(n)]) - math.log(n) for j in range(n)]


def naive_phase2(audio, q_weight, k_weight, k, head_dim=None, tie_break=None) -> list[int]:
    n = audio.shape[0]
    if n <= k:
        return list(range(n))
    scale = math.sqrt(q_weight.shape[0])
    z = [[v / scale for v in row] for row in naive_integer_logits(audio, q_weight, k_weight, head_dim)]
    importance = naive_log_importance(z)
    secondary = [0.0] * n if tie_break is None else list(tie_break)
    order = sorted(range(n), key=lambda j: (-importance[j], -secondary[j], j))
    return sorted(order[:k])


def naive_speechprune(audio, text, q_weight, k_weight, rate, phase1_tokens=750, f=25, tau=1.0, head_dim=None):
    scores = naive_token_scores(audio, text)
    k1 = min(audio.shape[0], phase1_tokens)
    kept1 = naive_phase1(scores, k1, f, tau)
    k2 = max(1, round((1 - rate) * k1))
    kept2 = naive_phase2(audio[kept1], q_weight, k_weight, k2, head_dim, [scores[j] for j in kept1])
    return [kept1[j] for j in kept2]


# ---------------------------------------------------------------------------------------------
# Inputs


def make_tokens(n, d, num_query=3, f=25, seed=0, dtype=torch.float32, spread=1.0, duplicates=0):
    """Audio whose frames lean towards or away from the query by a random amount, so budgets differ."""
    g = torch.Generator().manual_seed(seed)
    text = torch.randn(num_query, d, generator=g)
    lean = (torch.rand(-(-n // f), 1, generator=g) * 2 - 1) * spread
    audio = torch.randn(n, d, generator=g) + lean.repeat_interleave(f, dim=0)[:n] * text.mean(0)
    for _ in range(duplicates):  # exact copies of other rows: exact ties everywhere
        src, dst = torch.randint(0, n, (2,), generator=g).tolist()
        audio[dst] = audio[src]
    return audio.to(dtype), text.to(dtype)


def make_weights(width_q, width_k, d, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(1000 + seed)
    return torch.randn(width_q, d, generator=g).to(dtype), torch.randn(width_k, d, generator=g).to(dtype)


def assert_selection(kept: torch.Tensor, expected: list[int]) -> None:
    assert kept.dtype == torch.int64 and kept.dim() == 1
    assert kept.tolist() == expected
    assert bool((kept.diff() > 0).all())


# ---------------------------------------------------------------------------------------------
# Phase 1

PHASE1_CASES = [
    # n, d, k, f, tau, spread, duplicates, dtype
    (137, 16, 40, 25, 1.0, 1.0, 0, torch.float32),  # short last frame (12 tokens)
    (250, 16, 60, 25, 1.0, 3.0, 0, torch.float32),  # n a multiple of f
    (203, 12, 100, 10, 0.01, 2.0, 0, torch.float32),  # low temperature: frames saturate, rounds
    (203, 12, 150, 10, 0.001, 2.0, 0, torch.float32),  # almost one-hot softmax
    (96, 8, 17, 7, 0.05, 1.0, 0, torch.float32),
    (60, 8, 59, 25, 0.01, 3.0, 0, torch.float32),  # k = n - 1
    (150, 10, 30, 25, 1.0, 1.0, 40, torch.float32),  # duplicate rows
    (77, 6, 20, 1, 0.5, 1.0, 0, torch.float32),  # one token per frame
    (90, 8, 31, 500, 1.0, 1.0, 0, torch.float32),  # one frame longer than the audio
    (120, 16, 1, 25, 1.0, 1.0, 0, torch.float32),  # k = 1
    (131, 16, 45, 25, 0.1, 2.0, 10, torch.float16),
    (131, 16, 45, 25, 0.1, 2.0, 10, torch.bfloat16),
]


@pytest.mark.parametrize("n, d, k, f, tau, spread, duplicates, dtype", PHASE1_CASES)
def test_phase1_matches_naive(n, d, k, f, tau, spread, duplicates, dtype):
    audio, text = make_tokens(n, d, f=f, seed=n + k, dtype=dtype, spread=spread, duplicates=duplicates)
    expected = naive_phase1(naive_token_scores(audio, text), k, f, tau)
    assert_selection(pruning.phase1_select(audio, text, k, tokens_per_frame=f, temperature=tau), expected)


def test_phase1_budget_moves_on_from_full_frames():
    """The low-temperature cases really exercise capped frames and several remainder rounds."""
    audio, text = make_tokens(203, 12, f=10, seed=303, spread=2.0)
    stats: dict = {}
    expected = naive_phase1(naive_token_scores(audio, text), 100, 10, 0.01, stats)
    assert stats["capped"] >= 1 and stats["rounds"] >= 2
    assert_selection(pruning.phase1_select(audio, text, 100, tokens_per_frame=10, temperature=0.01), expected)


def test_phase1_equal_frames_tie_to_the_lower_frame_index():
    """Identical frames get identical shares; the remainder goes to the earliest frames."""
    frame, text = make_tokens(10, 8, seed=9)
    audio = frame.repeat(7, 1)
    for k in (23, 26, 41):
        expected = naive_phase1(naive_token_scores(audio, text), k, 10)
        assert_selection(pruning.phase1_select(audio, text, k, tokens_per_frame=10), expected)
    kept = pruning.phase1_select(audio, text, 23, tokens_per_frame=10)
    assert [int(((kept >= 10 * i) & (kept < 10 * i + 10)).sum()) for i in range(7)] == [4, 4, 3, 3, 3, 3, 3]


def test_phase1_many_random_shapes():
    g = torch.Generator().manual_seed(7)
    for seed in range(40):
        n, d, f, num_query = (
            int(torch.randint(lo, hi, (1,), generator=g)) for lo, hi in ((1, 160), (2, 12), (1, 30), (1, 6))
        )
        k = int(torch.randint(1, n + 5, (1,), generator=g))
        tau = [1.0, 0.3, 0.05, 0.01, 2.0][seed % 5]
        audio, text = make_tokens(n, d, num_query=num_query, f=f, seed=seed, spread=2.0, duplicates=seed % 3)
        expected = naive_phase1(naive_token_scores(audio, text), k, f, tau)
        kept = pruning.phase1_select(audio, text, k, tokens_per_frame=f, temperature=tau)
        assert_selection(kept, expected)
        assert kept.numel() == min(n, k)


def test_phase1_keeps_everything_when_short():
    audio, text = make_tokens(30, 8)
    assert pruning.phase1_select(audio, text, 30).tolist() == list(range(30))
    assert pruning.phase1_select(audio, text, 750).tolist() == list(range(30))


def test_token_scores_match_naive_in_float32():
    audio, text = make_tokens(64, 16, dtype=torch.bfloat16, duplicates=5)
    audio[3] = 0  # a zero row: its norm is clamped, its score is 0
    scores = pruning.token_scores(audio, text)
    assert scores.dtype == torch.float32 and scores.shape == (64,)
    expected = torch.tensor(naive_token_scores(audio, text), dtype=torch.float64)
    torch.testing.assert_close(scores.double(), expected, rtol=1e-5, atol=1e-6)
    assert scores[3] == 0


# ---------------------------------------------------------------------------------------------
# Phase 2

PHASE2_CASES = [
    # n, d, width_q, width_k, head_dim, k, duplicates, dtype
    (80, 16, 16, 16, None, 20, 0, torch.float32),
    (80, 10, 20, 20, None, 33, 0, torch.float32),  # width differs from D
    (70, 12, 32, 8, 4, 25, 0, torch.float32),  # GQA: 8 query heads, 2 key heads
    (70, 12, 24, 12, 6, 25, 0, torch.float32),  # GQA: 4 query heads, 2 key heads
    (60, 12, 24, 24, 6, 10, 0, torch.float32),  # head_dim given for plain MHA
    (90, 8, 8, 8, None, 45, 15, torch.float32),  # duplicate rows: exact ties
    (100, 128, 128, 128, None, 40, 5, torch.float32),  # |Q|, |K| > 63: several int8 digits
    (90, 96, 192, 48, 24, 30, 0, torch.float32),  # GQA with multi-digit entries
    (60, 16, 16, 16, None, 59, 0, torch.float16),
    (60, 16, 32, 16, 8, 12, 5, torch.bfloat16),
]


@pytest.mark.parametrize("with_tie_break", [False, True])
@pytest.mark.parametrize("n, d, width_q, width_k, head_dim, k, duplicates, dtype", PHASE2_CASES)
def test_phase2_matches_naive(n, d, width_q, width_k, head_dim, k, duplicates, dtype, with_tie_break):
    audio, text = make_tokens(n, d, seed=n + d, dtype=dtype, duplicates=duplicates)
    w_q, w_k = make_weights(width_q, width_k, d, seed=d, dtype=dtype)
    tie_break = pruning.token_scores(audio, text) if with_tie_break else None
    expected = naive_phase2(audio, w_q, w_k, k, head_dim, None if tie_break is None else tie_break.tolist())
    assert_selection(pruning.phase2_select(audio, w_q, w_k, k, head_dim=head_dim, tie_break=tie_break), expected)


@pytest.mark.parametrize("case", [PHASE2_CASES[2], PHASE2_CASES[5], PHASE2_CASES[7]])
def test_phase2_float_path_matches_naive(case, monkeypatch):
    """Without int8 products (other devices, older torch) the exact float products give the same picks."""
    n, d, width_q, width_k, head_dim, k, duplicates, dtype = case
    monkeypatch.delattr(torch, "_int_mm")
    audio, text = make_tokens(n, d, seed=n + d, dtype=dtype, duplicates=duplicates)
    w_q, w_k = make_weights(width_q, width_k, d, seed=d, dtype=dtype)
    tie_break = pruning.token_scores(audio, text)
    expected = naive_phase2(audio, w_q, w_k, k, head_dim, tie_break.tolist())
    assert_selection(pruning.phase2_select(audio, w_q, w_k, k, head_dim=head_dim, tie_break=tie_break), expected)


def test_phase2_ties_are_real_and_broken_by_tie_break_then_index():
    """Few sign patterns: many columns tie exactly, so the order of the secondary keys decides."""
    audio, text = make_tokens(60, 3, seed=5)
    w_q, w_k = make_weights(3, 3, 3, seed=5)
    scale = math.sqrt(3)
    importance = naive_log_importance([[v / scale for v in r] for r in naive_integer_logits(audio, w_q, w_k)])
    assert len(set(importance)) < 20  # at most 8 sign patterns of a 3-wide row
    for tie_break in (None, pruning.token_scores(audio, text), -pruning.token_scores(audio, text)):
        for k in (1, 7, 30):
            secondary = None if tie_break is None else tie_break.tolist()
            kept = pruning.phase2_select(audio, w_q, w_k, k, tie_break=tie_break)
            assert_selection(kept, naive_phase2(audio, w_q, w_k, k, None, secondary))


def test_integer_logits_exact_at_scale(monkeypatch):
    """int8 digit products and float products both give the exact integers, even at extreme magnitudes."""
    g = torch.Generator().manual_seed(0)
    n, d = 200, 512
    audio = torch.randn(n, d, generator=g)
    audio[:20] = audio[:20].abs()  # rows of all +1: |Q| reaches D
    w_q, w_k = torch.randn(d, d, generator=g), torch.randn(d // 4, d, generator=g)
    w_q[:256], w_k[:64] = 1.0, 1.0  # a whole head group of +1: entries at the bound
    weights = pruning.binarize_weights(w_q, w_k, head_dim=64)
    got = pruning_kernels.integer_logits(audio, weights)
    monkeypatch.delattr(torch, "_int_mm")  # the float path of other devices
    got_float = pruning_kernels.integer_logits(audio, weights)
    signs = torch.where(audio >= 0, 1.0, -1.0).double()
    q = signs @ torch.where(w_q >= 0, 1.0, -1.0).double().T
    k = signs @ torch.where(w_k >= 0, 1.0, -1.0).double().T
    k = k.view(n, -1, 64).repeat_interleave(4, dim=1).reshape(n, d)
    expected = q @ k.T
    assert expected.abs().max() > 2**24  # beyond float32's exact integers
    assert torch.equal(got, expected) and torch.equal(got_float, expected)


def test_log_importance_is_the_log_of_mean_attention():
    g = torch.Generator().manual_seed(3)
    z = torch.randn(40, 40, generator=g, dtype=torch.float64) * 3
    torch.testing.assert_close(pruning.log_importance(z), torch.softmax(z, dim=1).mean(dim=0).log())
    expected = naive_log_importance(z.tolist())
    torch.testing.assert_close(pruning.log_importance(z), torch.tensor(expected, dtype=torch.float64))


def _two_linears(d: int, seed: int) -> tuple[torch.nn.Linear, torch.nn.Linear]:
    w_q, w_k = make_weights(d, d, d, seed=seed)
    w_q[:, : d // 2] = -1e-9  # below float16's range: a cast to half turns them into -0.0, whose sign is +1
    q, k = torch.nn.Linear(d, d, bias=False), torch.nn.Linear(d, d, bias=False)
    with torch.no_grad():
        q.weight.copy_(w_q)
        k.weight.copy_(w_k)
    return q, k


def test_weights_are_read_on_every_call_after_casts_data_changes_and_loads():
    """Regression: a cache keyed by id() and the version counter returned the old signs after `.half()`
    (and missed `.data` changes). Every call must select from the weights as they are now."""
    audio, text = make_tokens(160, 16, seed=11)
    q, k = _two_linears(16, seed=11)
    seen = []

    def check(what, changed=True):
        audio_now = audio.to(q.weight.dtype)
        kept = pruning.speechprune_select(audio_now, text, q.weight, k.weight, rate=0.5, phase1_tokens=80)
        assert_selection(kept, naive_speechprune(audio_now, text, q.weight, k.weight, 0.5, 80))
        if changed:  # each sign change really changes the selection, so a stale answer would fail
            assert kept.tolist() not in seen, what
        seen.append(kept.tolist())

    check("first call")
    q.half(), k.half()  # -1e-9 becomes -0.0: half of W_q's signs flip
    check("half")
    q.weight.data.neg_()  # in place through .data: no version bump on the parameter
    check("data.neg_")
    k.weight.data = torch.randn(16, 16, generator=torch.Generator().manual_seed(5)).half()
    check("data =")
    q.double(), k.double()  # float64 works, and casting keeps every sign
    check("double", changed=False)
    assert seen[-1] == seen[-2]
    q.load_state_dict({"weight": -q.weight.detach()})
    check("load_state_dict")


def test_selection_modules_keep_no_mutable_state():
    """No caches or registries at module level: only upper-case constants may be containers."""
    for module in (pruning, pruning_kernels, pruning_settings):
        for name, value in vars(module).items():
            if isinstance(value, (dict, list, set)) and not name.startswith("__"):
                assert name.isupper(), (module.__name__, name)


# ---------------------------------------------------------------------------------------------
# The two-phase method

SPEECHPRUNE_CASES = [
    # n, d, width_q, width_k, head_dim, rate, phase1_tokens, f, tau, duplicates, dtype
    (260, 16, 16, 16, None, 0.4, 100, 25, 1.0, 0, torch.float32),
    (260, 16, 16, 16, None, 0.0, 100, 25, 1.0, 0, torch.float32),  # rate 0: all of phase 1
    (90, 16, 16, 16, None, 0.0, 750, 25, 1.0, 0, torch.float32),  # n <= k1 and rate 0: everything
    (90, 16, 16, 16, None, 0.75, 750, 25, 1.0, 0, torch.float32),  # n <= k1: phase 2 only
    (333, 12, 24, 8, 4, 0.2, 120, 25, 0.01, 20, torch.float32),  # GQA, low temperature, ties
    (180, 8, 8, 8, None, 0.6, 80, 10, 0.5, 30, torch.bfloat16),
    (150, 64, 64, 32, 16, 0.8, 70, 25, 1.0, 0, torch.float16),
    (40, 8, 8, 8, None, 0.99, 750, 25, 1.0, 0, torch.float32),  # k2 rounds to 0: at least 1
    (300, 4, 4, 4, None, 0.5, 100, 25, 1.0, 0, torch.float32),  # 16 sign patterns: phase 2 ties everywhere
    (200, 6, 12, 6, 3, 0.3, 90, 20, 0.2, 10, torch.float32),
]


@pytest.mark.parametrize(
    "n, d, width_q, width_k, head_dim, rate, phase1_tokens, f, tau, duplicates, dtype", SPEECHPRUNE_CASES
)
def test_speechprune_matches_naive(n, d, width_q, width_k, head_dim, rate, phase1_tokens, f, tau, duplicates, dtype):
    audio, text = make_tokens(n, d, f=f, seed=n, dtype=dtype, spread=2.0, duplicates=duplicates)
    w_q, w_k = make_weights(width_q, width_k, d, seed=n, dtype=dtype)
    expected = naive_speechprune(audio, text, w_q, w_k, rate, phase1_tokens, f, tau, head_dim)
    kept = pruning.speechprune_select(
        audio,
        text,
        w_q,
        w_k,
        rate,
        phase1_tokens=phase1_tokens,
        tokens_per_frame=f,
        temperature=tau,
        head_dim=head_dim,
    )
    assert_selection(kept, expected)
    assert (
        kept.numel()
        == pruning.final_count(n, rate, phase1_tokens)
        == max(1, round((1 - rate) * min(n, phase1_tokens)))
    )


def test_final_count_uses_python_round():
    for n, rate, k1 in [
        (2250, 0.2, 750),
        (2250, 0.5, 750),
        (5, 0.5, 750),
        (3, 0.5, 750),
        (1, 0.9, 750),
        (900, 0.3, 10),
    ]:
        assert pruning.final_count(n, rate, k1) == max(1, round((1 - rate) * min(n, k1)))
    assert pruning.final_count(5, 0.5) == 2  # round(2.5) is 2 in Python
    assert pruning.final_count(2250, 0.6) == 300


# ---------------------------------------------------------------------------------------------
# Random baselines and seeds


@pytest.mark.parametrize("n, k, seed", [(2250, 600, 0), (2250, 150, 12345), (751, 750, 2**63 - 1), (10, 1, 7)])
def test_random_and_crop_follow_the_spec_generator_calls(n, k, seed):
    g = torch.Generator(device="cpu")
    g.manual_seed(seed)
    expected_random = sorted(torch.randperm(n, generator=g)[:k].tolist())
    g.manual_seed(seed)
    start = int(torch.randint(0, n - k + 1, (1,), generator=g))
    for _ in range(2):  # same seed, same result
        assert_selection(pruning.random_select(n, k, seed), expected_random)
        assert_selection(pruning.crop_select(n, k, seed), list(range(start, start + k)))


def test_random_and_crop_keep_everything_when_short():
    for select in (pruning.random_select, pruning.crop_select):
        assert select(5, 5, 0).tolist() == [0, 1, 2, 3, 4]
        assert select(5, 9, 0).tolist() == [0, 1, 2, 3, 4]


def test_different_seeds_give_different_selections():
    assert pruning.random_select(2250, 600, 1).tolist() != pruning.random_select(2250, 600, 2).tolist()


def test_sample_seed_is_sha256_big_endian_mod_2_63():
    for pruning_seed, sample_id in [(0, "lecture_3"), (42, "conversation_189"), ("x", 7), (0, "ünïcode")]:
        digest = hashlib.sha256(f"{pruning_seed}:{sample_id}".encode()).digest()
        expected = int.from_bytes(digest[:8], "big") % 2**63
        assert pruning.sample_seed(pruning_seed, sample_id) == expected
    assert pruning.sample_seed(0, "a") != pruning.sample_seed(0, "b")


def test_methods():
    assert pruning.METHODS == (
        "full", "original", "speechprune", "phase1", "phase2", "random", "crop",
        "uniform", "llm_attention", "dart", "oracle",
    )  # fmt: skip
    assert pruning.METHOD_ALIASES == {"none": "full", "rap": "random", "rac": "crop"}
    assert [pruning.resolve_method(name) for name in ("none", "rap", "rac", "dart")] == [
        "full",
        "random",
        "crop",
        "dart",
    ]
    with pytest.raises(ValueError, match="method"):
        pruning.resolve_method("fastv")  # FastV's ranking is llm_attention, not FastV's schedule


# ---------------------------------------------------------------------------------------------
# Bad input


def _bad_inputs():
    audio, text = make_tokens(40, 8)
    w_q, w_k = make_weights(8, 8, 8)
    w_q16, w_k4 = make_weights(16, 4, 8)
    nan_audio = audio.clone()
    nan_audio[3, 2] = float("nan")
    inf_weight = w_q.clone()
    inf_weight[0, 0] = float("inf")
    sp = pruning.speechprune_select
    return [
        ("rate", lambda: sp(audio, text, w_q, w_k, rate=1.0)),
        ("rate", lambda: sp(audio, text, w_q, w_k, rate=-0.1)),
        ("rate", lambda: pruning.final_count(100, 1.5)),
        ("k", lambda: pruning.phase1_select(audio, text, 0)),
        ("k", lambda: pruning.phase2_select(audio, w_q, w_k, -1)),
        ("k", lambda: pruning.random_select(10, 0, 0)),
        ("k", lambda: pruning.crop_select(10, 0, 0)),
        ("k", lambda: pruning.phase1_select(audio, text, 2.5)),
        ("num_tokens", lambda: pruning.random_select(0, 3, 0)),
        ("seed", lambda: pruning.random_select(10, 3, -1)),
        ("phase1_tokens", lambda: sp(audio, text, w_q, w_k, rate=0.5, phase1_tokens=0)),
        ("tokens_per_frame", lambda: pruning.phase1_select(audio, text, 5, tokens_per_frame=0)),
        ("temperature", lambda: pruning.phase1_select(audio, text, 5, temperature=0.0)),
        ("temperature", lambda: pruning.phase1_select(audio, text, 5, temperature=float("nan"))),
        ("audio", lambda: pruning.phase1_select(audio[0], text, 5)),
        ("text", lambda: pruning.phase1_select(audio, text[None], 5)),
        ("q_weight", lambda: pruning.phase2_select(audio, w_q[0], w_k, 5)),
        ("text", lambda: pruning.phase1_select(audio, torch.randn(2, 9), 5)),
        ("q_weight", lambda: pruning.phase2_select(audio, torch.randn(8, 9), torch.randn(8, 9), 5)),
        ("k_weight", lambda: pruning.phase2_select(audio, w_q, torch.randn(8, 9), 5)),
        ("text", lambda: pruning.phase1_select(audio, text[:0], 5)),
        ("text", lambda: pruning.token_scores(audio, text[:0])),
        ("audio", lambda: pruning.phase1_select(nan_audio, text, 5)),
        ("audio", lambda: pruning.phase2_select(nan_audio, w_q, w_k, 5)),
        ("q_weight", lambda: pruning.phase2_select(audio, inf_weight, w_k, 5)),
        ("head_dim", lambda: pruning.phase2_select(audio, w_q16, w_k4, 5)),
        ("head_dim", lambda: pruning.phase2_select(audio, w_q16, w_k4, 5, head_dim=3)),
        ("head_dim", lambda: pruning.phase2_select(audio, w_q, w_k, 5, head_dim=3)),
        ("head_dim", lambda: sp(audio, text, w_q16, w_k4, rate=0.5, head_dim=5)),
        ("k_weight", lambda: pruning.phase2_select(audio, w_k4, w_q16, 5, head_dim=4)),
        ("tie_break", lambda: pruning.phase2_select(audio, w_q, w_k, 5, tie_break=torch.zeros(39))),
        ("tie_break", lambda: pruning.phase2_select(audio, w_q, w_k, 5, tie_break=torch.full((40,), float("nan")))),
    ]


@pytest.mark.parametrize("index", range(len(_bad_inputs())))
def test_bad_input_raises_value_error_naming_the_argument(index):
    name, call = _bad_inputs()[index]
    with pytest.raises(ValueError, match=name):
        call()


def test_inputs_that_require_grad_are_accepted():
    """Selection is index-valued: tensors from a training graph must select like detached ones."""
    g = torch.Generator().manual_seed(7)
    audio = torch.randn(120, 16, generator=g)
    text = torch.randn(5, 16, generator=g)
    wq, wk = torch.randn(16, 16, generator=g), torch.randn(16, 16, generator=g)
    expected = pruning.speechprune_select(audio, text, wq, wk, rate=0.5, phase1_tokens=60)
    got = pruning.speechprune_select(
        audio.requires_grad_(),
        text.requires_grad_(),
        wq.requires_grad_(),
        wk.requires_grad_(),
        rate=0.5,
        phase1_tokens=60,
    )
    assert torch.equal(got, expected)
    assert torch.equal(pruning.token_scores(audio, text), pruning.token_scores(audio.detach(), text.detach()))


# ---------------------------------------------------------------------------------------------
# Every float dtype, and where float64 work runs

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def make_float_tokens(n, d, dtype, seed=0, duplicates=0):
    audio, text = make_tokens(n, d, seed=seed, spread=2.0, duplicates=duplicates)
    if dtype == torch.float64:  # values that float32 does not hold
        g = torch.Generator().manual_seed(seed)
        audio, text = audio.double() + 1e-9 * torch.randn(n, d, generator=g, dtype=torch.float64), text.double()
    return audio.to(dtype), text.to(dtype)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_every_float_dtype_selects_like_the_naive_reference(dtype):
    """Regression: float64 inputs failed inside torch (linalg.vector_norm with a float32 dtype)."""
    audio, text = make_float_tokens(230, 16, dtype, seed=3, duplicates=8)
    w_q, w_k = (w.to(dtype) for w in make_weights(32, 16, 16, seed=3))
    scores = pruning.token_scores(audio, text)
    assert scores.dtype == torch.float32
    naive_scores = naive_token_scores(audio, text)
    torch.testing.assert_close(scores.double(), torch.tensor(naive_scores, dtype=torch.float64), rtol=1e-5, atol=1e-6)
    assert_selection(pruning.phase1_select(audio, text, 70, tokens_per_frame=20), naive_phase1(naive_scores, 70, 20))
    assert_selection(
        pruning.phase2_select(audio, w_q, w_k, 40, head_dim=8, tie_break=scores),
        naive_phase2(audio, w_q, w_k, 40, 8, scores.tolist()),
    )
    kept = pruning.speechprune_select(audio, text, w_q, w_k, 0.4, phase1_tokens=100, head_dim=8)
    assert_selection(kept, naive_speechprune(audio, text, w_q, w_k, 0.4, 100, 25, 1.0, 8))
    assert_selection(pruning.dart_select(audio, 50, pivots=4), naive_dart(audio, 50, 4))
    attention = torch.softmax(torch.randn(2, 3, 230, generator=torch.Generator().manual_seed(3)), dim=-1).to(dtype)
    assert_selection(pruning.llm_attention_select(attention, 60), naive_llm_attention(attention, 60))


def test_float64_work_runs_where_float64_exists(monkeypatch):
    """MPS has no float64: that work goes to the CPU. Every float64 step asks exact_device first."""
    assert pruning_kernels.exact_device(torch.device("mps")) == torch.device("cpu")
    assert pruning_kernels.exact_device(torch.device("mps:0")) == torch.device("cpu")
    assert pruning_kernels.exact_device(torch.device("cuda:1")) == torch.device("cuda:1")
    asked = []

    def recording(device):
        asked.append(torch.device(device).type)
        return torch.device("cpu")

    monkeypatch.setattr(pruning, "exact_device", recording)
    audio, text = make_tokens(120, 8, seed=4)
    w_q, w_k = make_weights(8, 8, 8, seed=4)
    pruning.phase1_select(audio, text, 40)
    pruning.phase2_select(audio, w_q, w_k, 40)
    pruning.llm_attention_select(torch.rand(2, 120), 40)
    assert asked == ["cpu"] * 3


# ---------------------------------------------------------------------------------------------
# SPEC section 8, against naive readings written here


def naive_uniform(n, k):
    if n <= k:
        return list(range(n))
    return [math.floor(Fraction(2 * i + 1, 2) * n / k) for i in range(k)]


def naive_dart(audio, k, pivots):
    rows = _matrix(audio)
    n = len(rows)
    if n <= k:
        return list(range(n))
    norms = [math.sqrt(math.fsum(x * x for x in row)) for row in rows]
    chosen = sorted(range(n), key=lambda j: (-norms[j], j))[: min(pivots, k)]

    def cosine(a, b):
        dot = math.fsum(x * y for x, y in zip(rows[a], rows[b]))
        return dot / (max(norms[a], 1e-8) * max(norms[b], 1e-8))

    others = [j for j in range(n) if j not in chosen]
    score = {j: max(cosine(j, p) for p in chosen) for j in others}
    return sorted(chosen + sorted(others, key=lambda j: (score[j], j))[: k - len(chosen)])


def naive_llm_attention(attention, k):
    n = attention.shape[-1]
    if n <= k:
        return list(range(n))
    rows = attention.double().reshape(-1, n).tolist()
    mean = [math.fsum(row[j] for row in rows) / len(rows) for j in range(n)]
    return sorted(sorted(range(n), key=lambda j: (-mean[j], j))[:k])


def exact(seconds):
    return Fraction(seconds).limit_denominator(10**6)


def naive_key_set(n, start, end, t=0.04):
    t, start, end = exact(t), exact(start), exact(end)
    return [j for j in range(n) if j * t < end and (j + 1) * t > start]


def naive_oracle(n, k, start, end, t=0.04):
    key = naive_key_set(n, start, end, t)
    if n <= k:
        return list(range(n))
    if len(key) >= k:
        runs = [key[i : i + k] for i in range(len(key) - k + 1)]
        centre = Fraction(key[0] + key[-1], 2)
        return min(runs, key=lambda run: abs(Fraction(run[0] + run[-1], 2) - centre))  # min: the earliest
    inside = set(key)
    others = [j for j in range(n) if j not in inside]
    return sorted(key + [others[i] for i in naive_uniform(len(others), k - len(key))])


def test_uniform_matches_naive():
    for n, k in [(2250, 600), (2250, 150), (751, 750), (10, 3), (7, 1), (100, 99), (5, 5), (5, 9), (1, 1)]:
        assert_selection(pruning.uniform_select(n, k), naive_uniform(n, k))
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        n = int(torch.randint(1, 3000, (1,), generator=g))
        k = int(torch.randint(1, n + 3, (1,), generator=g))
        kept = pruning.uniform_select(n, k)
        assert_selection(kept, naive_uniform(n, k))
        assert kept.numel() == min(n, k)


DART_CASES = [
    # n, d, k, pivots, duplicates
    (200, 16, 60, 8, 0),
    (200, 16, 5, 8, 0),  # fewer kept than pivots: only the largest-norm rows
    (150, 8, 40, 1, 30),  # duplicates: exact ties in norm and in similarity
    (90, 32, 89, 8, 0),
    (60, 4, 20, 3, 10),
]


@pytest.mark.parametrize("n, d, k, pivots, duplicates", DART_CASES)
def test_dart_matches_naive(n, d, k, pivots, duplicates):
    audio, _ = make_tokens(n, d, seed=n + k, duplicates=duplicates)
    audio[7] = 0  # a zero row: its norm is clamped, its similarity is 0
    kept = pruning.dart_select(audio, k, pivots=pivots)
    assert_selection(kept, naive_dart(audio, k, pivots))
    assert kept.numel() == min(n, k)


def test_dart_keeps_the_largest_norms_and_drops_copies_of_pivots():
    audio, _ = make_tokens(50, 8, seed=2)
    audio[10] = audio[3] * 10  # the largest norm: a pivot
    audio[11] = audio[3] * 9  # points the same way: the most duplicated row
    kept = pruning.dart_select(audio, 49, pivots=1).tolist()
    assert 10 in kept and 11 not in kept


def test_llm_attention_ranking_matches_naive_for_every_layout():
    g = torch.Generator().manual_seed(1)
    probabilities = torch.softmax(torch.randn(4, 6, 300, generator=g) * 3, dim=-1)
    probabilities[:, :, 40] = probabilities[:, :, 20]  # an exact tie: the lower index wins
    for attention in (probabilities, probabilities.mean(dim=0), probabilities.mean(dim=(0, 1))):
        for k in (1, 20, 150, 299, 300, 400):
            kept = pruning.llm_attention_select(attention, k)
            assert_selection(kept, naive_llm_attention(attention, k))
    tied = torch.ones(10)
    assert pruning.llm_attention_select(tied, 3).tolist() == [0, 1, 2]


KEY_CASES = [
    # n, k, key_start, key_end, seconds per token
    (2250, 600, 30.0, 34.5, 0.04),  # the key fits: every key token and uniform picks elsewhere
    (2250, 100, 30.0, 34.5, 0.04),  # 113 key tokens > 100: a centred run
    (2250, 112, 30.0, 34.5, 0.04),  # odd difference: two runs equally centred, the earlier one
    (2250, 600, 1.2, 1.3, 0.04),  # boundaries on token edges: [1.16, 1.2) does not overlap
    (2250, 600, 0.0, 0.01, 0.04),  # one token at the very start
    (2250, 600, 89.97, 95.0, 0.04),  # past the end of the audio: cut at N
    (1125, 300, 12.345, 20.001, 0.08),  # 80 ms tokens
    (1170, 300, 10.0, 11.0, 1 / 13),  # 13 tokens per second
    (50, 60, 0.5, 0.9, 0.04),  # N <= k: everything
    (100, 30, 0.0, 4.0, 0.04),  # the key spans the whole recording
]


@pytest.mark.parametrize("n, k, start, end, t", KEY_CASES)
def test_oracle_and_key_recall_match_naive(n, k, start, end, t):
    key = naive_key_set(n, start, end, t)
    assert pruning.key_token_set(n, start, end, t).tolist() == key
    kept = pruning.oracle_select(n, k, start, end, t)
    assert_selection(kept, naive_oracle(n, k, start, end, t))
    assert kept.numel() == min(n, k)
    recall = pruning.key_recall(kept, n, start, end, t)
    assert recall == len(set(kept.tolist()) & set(key)) / len(key)
    if len(key) <= k:  # the key fits: the oracle keeps all of it
        assert set(key) <= set(kept.tolist()) and recall == 1.0


def test_oracle_keeps_every_key_token_whenever_they_fit():
    g = torch.Generator().manual_seed(9)
    for _ in range(60):
        n = int(torch.randint(20, 2500, (1,), generator=g))
        start = float(torch.rand(1, generator=g)) * n * 0.04
        end = start + 0.01 + float(torch.rand(1, generator=g)) * 10
        key = naive_key_set(n, start, end)
        if not key:
            continue
        k = int(torch.randint(1, n + 1, (1,), generator=g))
        kept = pruning.oracle_select(n, k, start, end)
        assert_selection(kept, naive_oracle(n, k, start, end))
        if len(key) <= k:
            assert set(key) <= set(kept.tolist())


def test_key_token_set_edges():
    assert pruning.key_token_set(100, 1.2, 1.3).tolist() == [30, 31, 32]  # token 29 ends at 1.2: out
    assert pruning.key_token_set(100, 1.2, 1.32).tolist() == [30, 31, 32]  # token 33 starts at 1.32: out
    assert pruning.key_token_set(100, 1.19, 1.3).tolist() == [29, 30, 31, 32]
    assert pruning.key_token_set(100, 5.0, 9.0).tolist() == []  # past the audio's 4 s


def test_key_times_errors_and_missing_recall():
    assert pruning.key_recall([1, 2], 100, None, None) is None
    assert pruning.key_recall([1, 2], 100, float("nan"), 3.0) is None
    assert pruning.key_recall(torch.arange(100), 100, 0.5, 0.6) == 1.0
    with pytest.raises(ValueError, match="key_start"):
        pruning.oracle_select(100, 10, None, 2.0)
    with pytest.raises(ValueError, match="key_end"):
        pruning.oracle_select(100, 10, 1.0, None)
    with pytest.raises(ValueError, match="key_end must be after key_start"):
        pruning.oracle_select(100, 10, 2.0, 1.0)
    with pytest.raises(ValueError, match="covers none"):
        pruning.oracle_select(100, 10, 5.0, 9.0)
    with pytest.raises(ValueError, match="covers none"):
        pruning.key_recall([1], 100, 5.0, 9.0)


@pytest.mark.parametrize(
    "name, call",
    [
        ("k", lambda: pruning.uniform_select(10, 0)),
        ("num_tokens", lambda: pruning.uniform_select(0, 3)),
        ("pivots", lambda: pruning.dart_select(torch.randn(10, 4), 3, pivots=0)),
        ("audio", lambda: pruning.dart_select(torch.randn(10), 3)),
        ("attention", lambda: pruning.llm_attention_select(torch.ones(2, 2, 2, 2), 1)),
        ("attention", lambda: pruning.llm_attention_select(torch.tensor([1.0, float("nan")]), 1)),
        ("attention", lambda: pruning.llm_attention_select(torch.arange(4), 1)),
        ("seconds_per_token", lambda: pruning.key_token_set(10, 0.0, 1.0, seconds_per_token=0.0)),
    ],
)
def test_section8_bad_input_names_the_argument(name, call):
    with pytest.raises(ValueError, match=name):
        call()


# ---------------------------------------------------------------------------------------------
# The copied files run alone


def test_a_copy_of_the_selection_files_runs_without_transformers(tmp_path):
    """pruning.py, its kernels and the settings validator need only torch: a fresh process where
    transformers, huggingface_hub and numpy cannot be imported selects exactly as the package does."""
    package = tmp_path / "copied"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name in ("pruning.py", "pruning_kernels.py", "pruning_settings.py"):
        shutil.copy(Path(pruning.__file__).with_name(name), package / name)
    script = """
import json, sys
for blocked in ("transformers", "huggingface_hub", "numpy", "speechprune"):
    sys.modules[blocked] = None  # any import of these fails
import torch
from copied import pruning
g = torch.Generator().manual_seed(0)
audio, text = torch.randn(900, 32, generator=g), torch.randn(5, 32, generator=g)
w_q, w_k = torch.randn(32, 32, generator=g), torch.randn(16, 32, generator=g)
print(json.dumps({
    "speechprune": pruning.speechprune_select(audio, text, w_q, w_k, 0.4, head_dim=8).tolist(),
    "dart": pruning.dart_select(audio, 300).tolist(),
    "oracle": pruning.oracle_select(900, 300, 3.0, 9.5).tolist(),
    "settings": pruning.__dict__["resolve_method"]("rap"),
}))
"""
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    child = json.loads(done.stdout)
    g = torch.Generator().manual_seed(0)
    audio, text = torch.randn(900, 32, generator=g), torch.randn(5, 32, generator=g)
    w_q, w_k = torch.randn(32, 32, generator=g), torch.randn(16, 32, generator=g)
    assert child["speechprune"] == pruning.speechprune_select(audio, text, w_q, w_k, 0.4, head_dim=8).tolist()
    assert child["dart"] == pruning.dart_select(audio, 300).tolist()
    assert child["oracle"] == pruning.oracle_select(900, 300, 3.0, 9.5).tolist()
    assert child["settings"] == "random"
