"""The 1-to-K loss against an independent slow loop of PAPER.md's formula, and its baselines."""

import math

import pytest
import torch
import torch.nn.functional as F

from ccr_demo.training.losses import gather_with_grad, info_nce, one_to_k_loss, one_to_one_loss, pivot_loss


def _emb(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, generator=g, dtype=torch.float64), dim=-1)


def slow_one_to_k(v, t, tau, mode="official", exclude=None):
    """PAPER.md written out with Python loops and math.exp; no shared code with losses.py.
    ``exclude[b][c]``: pairs (image b, captions of c) left out of both sums."""
    B, K, _ = t.shape
    exclude = exclude or [[False] * B for _ in range(B)]
    s = lambda b, c, k: float(v[b] @ t[c, k]) / tau  # noqa: E731
    l_i2t = 0.0
    for b in range(B):
        denom = sum(math.exp(s(b, c, l)) for c in range(B) for l in range(K) if not exclude[b][c])
        for k in range(K):
            l_i2t -= math.log(math.exp(s(b, b, k)) / denom)
    l_i2t /= B
    l_t2i = 0.0
    for b in range(B):
        for k in range(K):
            denom = sum(math.exp(s(c, b, k)) for c in range(B) if not exclude[c][b])
            l_t2i -= math.log(math.exp(s(b, b, k)) / denom)
    l_t2i /= B * K
    if mode == "official":
        return (l_i2t + l_t2i) / 2 / K
    return (l_i2t / K + l_t2i) / 2


@pytest.mark.parametrize("B,K", [(1, 1), (3, 1), (4, 3), (5, 8)])
@pytest.mark.parametrize("mode", ["official", "balanced"])
def test_one_to_k_matches_slow_formula(B, K, mode):
    v, t, tau = _emb(B, 16, seed=B), _emb(B, K, 16, seed=K + 7), 0.07
    got = one_to_k_loss(v, t, tau, mode=mode).item()
    assert got == pytest.approx(slow_one_to_k(v, t, tau, mode), rel=1e-6, abs=1e-6)


def test_official_weighs_t2i_by_one_over_k():
    v, t = _emb(4, 8), _emb(4, 3, 8, seed=1)
    off, bal = one_to_k_loss(v, t, 0.1), one_to_k_loss(v, t, 0.1, mode="balanced")
    assert off.item() != pytest.approx(bal.item())


@pytest.mark.parametrize("mode", ["official", "balanced"])
def test_language_order_does_not_change_loss(mode):
    v, t = _emb(6, 8), _emb(6, 5, 8, seed=3)
    base = one_to_k_loss(v, t, 0.05, mode=mode)
    for seed in range(3):
        perm = torch.randperm(5, generator=torch.Generator().manual_seed(seed))
        assert one_to_k_loss(v, t[:, perm], 0.05, mode=mode).item() == pytest.approx(base.item(), rel=1e-12)


def test_k1_reduces_to_infonce():
    v, t = _emb(7, 8), _emb(7, 8, seed=2)
    expected = info_nce(v, t, 0.07)
    for mode in ("official", "balanced"):
        assert one_to_k_loss(v, t[:, None], 0.07, mode=mode).item() == pytest.approx(expected.item(), rel=1e-12)
    assert one_to_one_loss(v, t, 0.07).item() == pytest.approx(expected.item(), rel=1e-12)


def test_infonce_by_hand():
    # Two orthogonal pairs: logits diag 1/tau, off-diag 0.
    v = torch.eye(2, dtype=torch.float64)
    tau = 0.5
    expected = -math.log(math.exp(2) / (math.exp(2) + 1))
    assert one_to_one_loss(v, v.clone(), tau).item() == pytest.approx(expected)


def test_gradients_reach_both_towers_and_temperature():
    image_tower, text_tower = torch.nn.Linear(5, 4), torch.nn.Linear(6, 4)
    log_tau = torch.nn.Parameter(torch.tensor(math.log(0.07)))
    v = F.normalize(image_tower(torch.randn(3, 5)), dim=-1)
    t = F.normalize(text_tower(torch.randn(3, 2, 6)), dim=-1)
    one_to_k_loss(v, t, log_tau.exp()).backward()
    for p in [*image_tower.parameters(), *text_tower.parameters(), log_tau]:
        assert p.grad is not None and p.grad.abs().sum() > 0


def test_pivot_loss_is_itc_plus_text_text():
    v, t = _emb(5, 8), _emb(5, 3, 8, seed=4)
    expected = info_nce(v, t[:, 0], 0.1) + (info_nce(t[:, 0], t[:, 1], 0.1) + info_nce(t[:, 0], t[:, 2], 0.1)) / 2
    assert pivot_loss(v, t, 0.1, pivot_index=0).item() == pytest.approx(expected.item())
    other = torch.tensor([1, 2, 1, 1, 2])
    picked = t[torch.arange(5), other]
    expected = info_nce(v, t[:, 0], 0.1) + info_nce(t[:, 0], picked, 0.1)
    assert pivot_loss(v, t, 0.1, 0, other_index=other).item() == pytest.approx(expected.item())
    # The pivot moves with a permutation of languages: the loss does not change.
    perm = torch.tensor([2, 0, 1])
    assert pivot_loss(v, t[:, perm], 0.1, pivot_index=1).item() == pytest.approx(pivot_loss(v, t, 0.1, 0).item())


def test_gather_with_grad_is_identity_without_distributed():
    x = torch.randn(3, 4, requires_grad=True)
    assert gather_with_grad(x) is x


@pytest.mark.parametrize(
    "v,t,msg",
    [
        (torch.zeros(0, 4), torch.zeros(0, 2, 4), "empty batch"),
        (torch.zeros(3, 4), torch.zeros(3, 0, 4), "K=0"),
        (torch.zeros(3, 4), torch.zeros(2, 2, 4), "batch sizes differ"),
        (torch.zeros(3, 4), torch.zeros(3, 4), r"\[B, K, D\]"),
        (torch.zeros(3, 4, 1), torch.zeros(3, 2, 4), r"\[B, D\]"),
        (torch.zeros(3, 4), torch.zeros(3, 2, 5), "embedding sizes differ"),
        (torch.full((3, 4), float("nan")), torch.zeros(3, 2, 4), "NaN or infinite"),
        (torch.zeros(3, 4), torch.full((3, 2, 4), float("inf")), "NaN or infinite"),
    ],
)
def test_bad_input_names_the_problem(v, t, msg):
    with pytest.raises(ValueError, match=msg):
        one_to_k_loss(v, t, 0.07)


def test_bad_mode_and_temperature():
    v, t = _emb(2, 4), _emb(2, 2, 4)
    with pytest.raises(ValueError, match="mode"):
        one_to_k_loss(v, t, 0.07, mode="nope")
    with pytest.raises(ValueError, match="temperature"):
        one_to_k_loss(v, t, 0.0)
    with pytest.raises(ValueError, match="pivot_index"):
        pivot_loss(v, t, 0.07, pivot_index=2)
    with pytest.raises(ValueError, match="batch sizes differ"):
        one_to_one_loss(_emb(2, 4), _emb(3, 4), 0.07)


@pytest.mark.parametrize("mode", ["official", "balanced"])
def test_excluded_false_negatives_leave_both_softmaxes(mode):
    B, K = 5, 3
    v, t = _emb(B, 8, seed=3), _emb(B, K, 8, seed=4)
    exclude = torch.zeros(B, B, dtype=torch.bool)
    exclude[0, 2] = exclude[3, 1] = exclude[4, 0] = True
    got = one_to_k_loss(v, t, 0.1, mode=mode, exclude=exclude)
    assert got.item() == pytest.approx(slow_one_to_k(v, t, 0.1, mode, exclude.tolist()), rel=1e-9)
    assert one_to_k_loss(v, t, 0.1, mode=mode, exclude=torch.zeros(B, B, dtype=torch.bool)).item() == \
        pytest.approx(one_to_k_loss(v, t, 0.1, mode=mode).item(), rel=1e-12)
    assert got.item() != pytest.approx(one_to_k_loss(v, t, 0.1, mode=mode).item(), rel=1e-6)


@pytest.mark.parametrize("mode", ["official", "balanced"])
def test_one_to_k_with_one_caption_is_the_one_to_one_loss(mode):
    """The K ablation's k=1 and the 1-to-1 baseline optimise the same objective: a gap between
    them comes from their different random language draws, not from the loss."""
    v, t = _emb(6, 8, seed=8), _emb(6, 8, seed=9)
    assert one_to_k_loss(v, t[:, None], 0.07, mode=mode).item() == \
        pytest.approx(one_to_one_loss(v, t, 0.07).item(), rel=1e-6)


def test_excluded_pairs_in_the_baselines():
    B = 4
    v, t = _emb(B, 8, seed=5), _emb(B, 8, seed=6)
    exclude = torch.zeros(B, B, dtype=torch.bool)
    exclude[1, 3] = True
    got = one_to_one_loss(v, t, 0.2, exclude=exclude)
    expected = slow_one_to_k(v, t[:, None], 0.2, "balanced", exclude.tolist())  # K=1: InfoNCE
    assert got.item() == pytest.approx(expected, rel=1e-9)
    tk = _emb(B, 3, 8, seed=7)
    assert pivot_loss(v, tk, 0.2, 0, exclude=exclude).item() != pytest.approx(pivot_loss(v, tk, 0.2, 0).item())


def test_exclude_must_be_a_bool_square_without_the_diagonal():
    v, t = _emb(3, 4), _emb(3, 2, 4)
    with pytest.raises(ValueError, match="diagonal"):
        one_to_k_loss(v, t, 0.1, exclude=torch.eye(3, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"bool \[B, B\]"):
        one_to_k_loss(v, t, 0.1, exclude=torch.zeros(3, 2, dtype=torch.bool))
