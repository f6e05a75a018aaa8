"""Weight standardisation, self-attention, bounded spectral norm, class FiLM and label checks."""

from __future__ import annotations

import math

import pytest
import torch

from ebmctl.nets.layers import (
    BoundedSpectralNorm,
    ClassFiLM,
    SelfAttention,
    WSConv2d,
    bounded_spectral_norm,
    check_labels,
)


def test_wsconv_matches_hand_computed_single_output_channel():
    conv = WSConv2d(1, 1, 3)
    with torch.no_grad():
        conv.weight.copy_(torch.arange(9.0).view(1, 1, 3, 3))
        conv.bias.fill_(0.5)
    x = torch.arange(9.0).view(1, 1, 3, 3)
    # weights 0..8: mean 4, unbiased variance 60 / 8; sum((w - 4) * x) with x = w is 60.
    expected = 60.0 / (math.sqrt(7.5) + 1e-5) + 0.5
    assert conv(x).item() == pytest.approx(expected, rel=1e-6)


def test_wsconv_standardises_each_output_channel_independently():
    torch.manual_seed(0)
    conv = WSConv2d(4, 3, 3, padding=1)
    w = conv.standardized_weight().detach()
    assert torch.allclose(w.mean(dim=(1, 2, 3)), torch.zeros(3), atol=1e-6)
    assert torch.allclose(w.flatten(1).std(dim=1), torch.ones(3), atol=1e-4)
    x = torch.randn(2, 4, 5, 5)
    before = conv(x)
    with torch.no_grad():  # an affine change of one channel's kernel leaves the output unchanged (up to eps)
        conv.weight[1].mul_(7.0).add_(3.0)
    assert torch.allclose(conv(x), before, rtol=1e-3, atol=1e-3)
    with torch.no_grad():
        conv.weight[1, 0].add_(1.0)
    assert not torch.allclose(conv(x)[:, 1], before[:, 1], rtol=1e-3, atol=1e-3)


def test_self_attention_is_identity_at_init_and_matches_formula_after():
    torch.manual_seed(0)
    attn = SelfAttention(16)
    assert attn.query.out_channels == 2 and attn.value.out_channels == 16
    x = torch.randn(2, 16, 4, 4)
    assert torch.equal(attn(x), x)
    with torch.no_grad():
        attn.gamma.fill_(0.7)
    q, k, v = (m(x).flatten(2) for m in (attn.query, attn.key, attn.value))
    weights = torch.softmax(torch.einsum("bcn,bcm->bnm", q, k), dim=-1)
    expected = x + 0.7 * torch.einsum("bcm,bnm->bcn", v, weights).view_as(x)
    out = attn(x)
    assert not torch.allclose(out, x)
    assert torch.allclose(out, expected, atol=1e-5)


def test_bounded_spectral_norm_caps_large_and_keeps_small_and_zero_weights():
    torch.manual_seed(0)
    big = bounded_spectral_norm(torch.nn.Linear(6, 5, bias=False))
    small = bounded_spectral_norm(torch.nn.Linear(6, 5, bias=False))
    zero = bounded_spectral_norm(torch.nn.Linear(6, 5, bias=False))
    with torch.no_grad():
        big.parametrizations.weight.original.mul_(50.0)
        small.parametrizations.weight.original.copy_(0.5 * torch.eye(5, 6))
        zero.parametrizations.weight.original.zero_()
    for _ in range(30):  # power iterations run in train mode, one per access
        for m in (big, small, zero):
            m.weight  # noqa: B018
    assert torch.linalg.matrix_norm(big.weight.detach(), 2).item() == pytest.approx(1.0, rel=1e-3)
    assert torch.allclose(small.weight, 0.5 * torch.eye(5, 6))
    assert torch.equal(zero.weight, torch.zeros(5, 6))
    assert isinstance(zero.parametrizations.weight[0], BoundedSpectralNorm)
    assert torch.isclose(zero.parametrizations.weight[0]._u.norm(), torch.tensor(1.0))


def test_class_film_starts_as_identity_and_selects_rows():
    film = ClassFiLM(3, 4)
    h = torch.randn(2, 4, 5, 5)
    y = torch.tensor([0, 2])
    assert torch.equal(film(h, y), h)
    with torch.no_grad():
        film.gain[2].fill_(2.0)
        film.bias[2].fill_(1.0)
    out = film(h, y)
    assert torch.equal(out[0], h[0])
    assert torch.allclose(out[1], 2.0 * h[1] + 1.0)


def test_check_labels():
    assert check_labels(None, 0, 3) is None
    assert check_labels(torch.tensor([0, 1, 1], dtype=torch.int32), 2, 3).dtype == torch.int64
    with pytest.raises(ValueError, match="unconditional"):
        check_labels(torch.tensor([0, 1, 1]), 0, 3)
    with pytest.raises(ValueError, match="conditional"):
        check_labels(None, 2, 3)
    with pytest.raises(ValueError, match="integer"):
        check_labels(torch.zeros(3), 2, 3)
    with pytest.raises(ValueError, match="shape"):
        check_labels(torch.zeros(3, 2, dtype=torch.long), 2, 3)
    with pytest.raises(ValueError, match="lie in"):
        check_labels(torch.tensor([0, 2, 1]), 2, 3)
