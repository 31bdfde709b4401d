"""ITM / MLM of the full CCRK model: the sampling rules against independent loops, statistics
of the hard-positive draws, masking rules."""


import pytest
import torch
import torch.nn.functional as F

from ccr_demo.training.losses import (
    hard_positive_weights,
    itm_loss,
    mlm_loss,
    negative_weights,
    positive_language_weights,
    sample_matching,
)
from ccr_demo.training.masking import mask_tokens


def _official_weights_loop(sim, K, rule="hard"):
    """PAPER.md / xvlm.py neg_sample_type 1 and 2, one image at a time, in float64."""
    sim = sim.double()
    B = sim.shape[0]
    w = torch.softmax(sim, dim=1) + 1e-5
    out = torch.empty(B, K, dtype=torch.float64)
    for b in range(B):
        if rule == "hard":
            u = [w.max().item() + 1e-5 - w[b, b * K + k].item() for k in range(K)]
        else:
            u = [sim.max().item() + 1e-5 - sim[b, b * K + k].item() for k in range(K)]
        total = sum(u)
        out[b] = torch.tensor([x / total for x in u])
    return out


@pytest.mark.parametrize("rule", ["hard", "similarity"])
def test_positive_weights_equal_the_official_formula(rule):
    g = torch.Generator().manual_seed(0)
    for B, K in [(2, 1), (4, 3), (7, 6)]:
        sim = torch.randn(B, B * K, generator=g, dtype=torch.float64) * 5
        got = positive_language_weights(sim, K, rule).double()
        torch.testing.assert_close(got, _official_weights_loop(sim, K, rule), rtol=1e-5, atol=1e-7)
        assert torch.allclose(got.sum(1), torch.ones(B, dtype=torch.float64))
    torch.testing.assert_close(hard_positive_weights(sim, K), positive_language_weights(sim, K, "hard"))
    assert torch.equal(positive_language_weights(sim, K, "uniform"), torch.full((B, K), 1 / K))


def test_max_is_over_the_whole_matrix_not_the_row():
    """With the row max, an image's best caption would get weight ~1e-5; with the matrix max it
    keeps a share, which is what the official code computes."""
    sim = torch.tensor([[9.0, 0.0, -5.0, -5.0], [0.0, 0.0, 3.0, 2.9]])  # B=2, K=2
    w = torch.softmax(sim, 1) + 1e-5
    p = hard_positive_weights(sim, 2)
    u0 = w.max() + 1e-5 - w[1, 2:4]
    torch.testing.assert_close(p[1], u0 / u0.sum())
    row_max = w[1].max() + 1e-5 - w[1, 2:4]
    assert not torch.allclose(p[1], row_max / row_max.sum(), atol=1e-3)


def test_the_worst_matched_language_is_most_likely():
    sim = torch.zeros(3, 9)
    sim[0, :3] = torch.tensor([5.0, 1.0, 3.0])
    p = hard_positive_weights(sim, 3)
    assert p[0].argmax() == 1 and p[0].argmin() == 0


def test_drawn_positive_languages_follow_the_weights():
    """20,000 draws from the sampler against the formula: a chi-square test per image at
    p = 0.001 (K-1 degrees of freedom); the frequencies also within 0.015 absolute."""
    B, K, n = 4, 5, 20000
    sim = torch.randn(B, B * K, generator=torch.Generator().manual_seed(1)) * 3
    expected = hard_positive_weights(sim, K).double()
    g = torch.Generator().manual_seed(2)
    counts = torch.zeros(B, K, dtype=torch.float64)
    for _ in range(n):
        k = sample_matching(sim, K, "hard", generator=g).positive - torch.arange(B) * K
        counts[torch.arange(B), k] += 1
    freq = counts / n
    assert (freq - expected).abs().max() < 0.015
    chi2 = ((counts - n * expected) ** 2 / (n * expected)).sum(1)
    critical = 18.47  # chi-square, 4 degrees of freedom, p = 0.001
    assert (chi2 < critical).all(), chi2


def test_no_positive_or_excluded_pair_is_ever_drawn_as_a_negative():
    B, K = 6, 3
    g = torch.Generator().manual_seed(3)
    exclude = torch.zeros(B, B, dtype=torch.bool)
    exclude[0, 1] = exclude[1, 0] = True  # image 1's captions are also true of image 0
    for _ in range(300):
        sim = torch.randn(B, B * K, generator=g) * 4
        d = sample_matching(sim, K, "hard", generator=g, exclude=exclude)
        owner_neg_text = d.negative_text // K
        assert (owner_neg_text != torch.arange(B)).all()
        assert (d.positive // K == torch.arange(B)).all()
        assert (d.negative_image != torch.arange(B)).all()
        assert owner_neg_text[0] != 1 and owner_neg_text[1] != 0
        assert d.negative_image[0] != 1 and d.negative_image[1] != 0


def test_a_row_with_everything_excluded_falls_back_to_any_non_positive():
    B, K = 3, 2
    exclude = torch.ones(B, B, dtype=torch.bool) & ~torch.eye(B, dtype=torch.bool)
    w_i2t, w_t2i = negative_weights(torch.zeros(B, B * K), K, exclude)
    for b in range(B):
        assert w_i2t[b, b * K:(b + 1) * K].sum() == 0 and w_i2t[b].sum() > 0
        assert w_t2i[b * K:(b + 1) * K, b].sum() == 0


def test_k_equal_1_is_x_vlm_matching():
    """K = 1: the positive is the image's own caption, negatives as X-VLM's get_matching_loss
    (softmax + 1e-5, diagonal zeroed, both directions)."""
    B = 5
    sim = torch.randn(B, B, generator=torch.Generator().manual_seed(4)) * 2
    d = sample_matching(sim, 1, "hard", generator=torch.Generator().manual_seed(5))
    assert torch.equal(d.positive, torch.arange(B))
    w_i2t, w_t2i = negative_weights(sim, 1)
    ref_i2t = (torch.softmax(sim, 1) + 1e-5).fill_diagonal_(0)
    ref_t2i = (torch.softmax(sim.t(), 1) + 1e-5).fill_diagonal_(0)
    torch.testing.assert_close(w_i2t, ref_i2t)
    torch.testing.assert_close(w_t2i, ref_t2i)


def test_itm_and_mlm_losses_are_cross_entropies():
    pos, neg = torch.randn(3, 2), torch.randn(6, 2)
    want = -(F.log_softmax(pos, 1)[:, 1].sum() + F.log_softmax(neg, 1)[:, 0].sum()) / 9
    torch.testing.assert_close(itm_loss(pos, neg), want)
    logits, labels = torch.randn(4, 10), torch.tensor([1, 2, 3, 9])
    torch.testing.assert_close(mlm_loss(logits, labels), F.cross_entropy(logits, labels))
    with pytest.raises(ValueError, match="no masked token"):
        mlm_loss(torch.empty(0, 10), torch.empty(0, dtype=torch.long))
    with pytest.raises(ValueError, match="at least 2 images"):
        sample_matching(torch.zeros(1, 3), 3)


def test_masking_follows_the_official_count_and_never_masks_special_tokens():
    specials = {0, 1, 2}  # pad, cls, sep
    ids = torch.tensor([[1, 10, 11, 12, 13, 14, 15, 16, 2, 0, 0],
                        [1, 20, 2, 0, 0, 0, 0, 0, 0, 0, 0]])
    attn = (ids != 0).long()
    long = torch.cat([torch.tensor([[1]]), torch.arange(100, 140).unsqueeze(0), torch.tensor([[2]])], 1)
    for seed in range(50):
        g = torch.Generator().manual_seed(seed)
        m = mask_tokens(ids, attn, mask_token_id=3, special_ids=specials, vocab_size=200, generator=g)
        assert m.masked.sum(1).tolist() == [round(9 * 0.4), 1]  # min(12, max(1, round(len * 0.4)))
        assert not m.masked[ids <= 2].any()
        assert torch.equal(m.labels, ids[m.masked])
        assert torch.equal(m.input_ids[~m.masked], ids[~m.masked])
        m = mask_tokens(long, torch.ones_like(long), mask_token_id=3, special_ids=specials, vocab_size=200,
                        generator=g)
        assert m.masked.sum() == 12  # the cap
    # 80 % mask token, 10 % random, 10 % kept, over many positions
    big = torch.cat([torch.ones(4000, 1, dtype=torch.long), torch.randint(10, 200, (4000, 30))], 1)
    m = mask_tokens(big, torch.ones_like(big), mask_token_id=3, special_ids=specials, vocab_size=200,
                    generator=torch.Generator().manual_seed(0))
    became = m.input_ids[m.masked]
    share_mask = (became == 3).double().mean().item()
    share_kept = (became == m.labels).double().mean().item()
    assert abs(share_mask - 0.8) < 0.01 and 0.09 < share_kept < 0.115  # random ids can equal the label


def test_easy_negatives_are_uniform_over_the_allowed_items():
    """itm_hard_fraction (not in the paper): 1 is the official draw exactly; 0 draws every
    negative uniformly among the non-positive, non-excluded items, whatever the similarities."""
    B, K = 4, 2
    sim = torch.zeros(B, B * K)
    sim[:, 0] = 50.0  # image 0's first caption dominates every row's softmax
    exclude = torch.zeros(B, B, dtype=torch.bool)
    exclude[1, 2] = exclude[2, 1] = True
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    a = sample_matching(sim, K, generator=g1)
    b = sample_matching(sim, K, generator=g2, hard_fraction=1.0)
    assert torch.equal(a.negative_text, b.negative_text) and torch.equal(a.negative_image, b.negative_image)
    g = torch.Generator().manual_seed(8)
    counts = torch.zeros(B * K)
    for _ in range(3000):
        d = sample_matching(sim, K, generator=g, exclude=exclude, hard_fraction=0.0)
        assert d.negative_text[1] // K not in (1, 2) and d.negative_image[1] not in (1, 2)
        counts[d.negative_text[3]] += 1
    allowed = counts[:6]  # image 3's row: texts of images 0, 1, 2 (6 texts), each 1/6
    assert counts[6:].sum() == 0 and (allowed / 3000 - 1 / 6).abs().max() < 0.03
    with pytest.raises(ValueError, match="hard_fraction"):
        sample_matching(sim, K, hard_fraction=1.5)
