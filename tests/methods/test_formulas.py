"""Each loss and update of IGEBM and ICD against a hand-computed case."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from ebmctl.losses.contrastive_divergence import cd_loss, nn_entropy
from ebmctl.methods.chains import ChainSource, init_chains
from ebmctl.methods.energies import energy_scores, summed_energy
from ebmctl.methods.energy_model import EnergyModel
from ebmctl.methods.icd import Icd
from ebmctl.methods.igebm import Igebm
from ebmctl.samplers.buffers import FifoBuffer
from ebmctl.samplers.langevin import LangevinParams


class Quadratic(nn.Module):
    """E_s(x) = 1/2 w_s ||x||^2 for S scales: dE/dx = (sum_s w_s) x."""

    def __init__(self, w: list[float]) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(w))

    def forward(self, x, y=None):
        return 0.5 * self.w[None, :] * x.flatten(1).pow(2).sum(1, keepdim=True)


def test_cd_loss_hand_computed():
    e_pos = torch.tensor([[1.0], [3.0]])
    e_neg = torch.tensor([[2.0], [-2.0]])
    # mean E+ = 2, mean E- = 0, mean E+^2 = 5, mean E-^2 = 4
    assert cd_loss(e_pos, e_neg, l2=0.5).item() == pytest.approx(2 - 0 + 0.5 * 9)


def test_cd_loss_averages_over_samples_and_scales():
    e_pos = torch.tensor([[1.0, 2.0, 3.0]])
    e_neg = torch.zeros(1, 3)
    assert cd_loss(e_pos, e_neg, l2=0.0).item() == pytest.approx(2.0)  # as the released code's (B, 3) mean


def test_nearest_neighbour_entropy_hand_computed():
    x = torch.tensor([[0.0, 0.0], [0.0, 10.0]])
    refs = torch.tensor([[3.0, 4.0], [0.0, 12.0], [100.0, 0.0]])
    # nearest distances: 5 and 2
    assert nn_entropy(x, refs).item() == pytest.approx((math.log(5) + math.log(2)) / 2)


def test_ema_update_formula():
    net = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        net.weight.fill_(2.0)
    model = EnergyModel(net, lr=1e-3, betas=(0.0, 0.9), ema=0.75)
    with torch.no_grad():
        model.ema_net.weight.fill_(0.0)
    model.update_ema()
    assert model.ema_net.weight.item() == pytest.approx(0.25 * 2.0)


def _icd(w: list[float], **kw) -> Icd:
    net = Quadratic(w)
    model = EnergyModel(net, lr=1e-3, betas=(0.0, 0.9))
    chains = ChainSource(shape=(2,), buffer=None, reinit=0.0, init_range=(-1.0, 1.0))
    sampler = LangevinParams(steps=1, step_size=0.1, noise=0.0, pixel_clamp=None)
    return Icd(model, sampler=sampler, chains=chains, l2=0.5, **kw)


def _captured_loss(method, x_pos, x0):
    method.chains.draw = lambda n, device: x0.clone()
    seen = []
    method.model.step = lambda loss: seen.append(loss) or 0.0
    method.train_step(x_pos)
    return seen[0]


def test_icd_loss_and_its_gradient_hand_computed():
    """One Langevin step (the differentiable tail), no noise: x- = x0 (1 - lam w).
    L = mean E(x+) - mean E(x-) + l2 (mean E+^2 + mean E-^2) + mean E_sg(w)(x-(w)).
    dL/dw = CD terms with x- held fixed + mean over chains of w x- (-lam x0) summed over coordinates."""
    w, lam, l2 = 2.0, 0.1, 0.5
    method = _icd([w], kl=True, entropy=False)
    x_pos = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    x0 = torch.tensor([[0.5, 0.5], [1.0, -1.0]])
    loss = _captured_loss(method, x_pos, x0)
    x_neg = x0 * (1 - lam * w)
    r_pos, r_neg = 0.5 * x_pos.pow(2).sum(1), 0.5 * x_neg.pow(2).sum(1)  # E / w
    e_pos, e_neg = w * r_pos, w * r_neg
    expected = e_pos.mean() - e_neg.mean() + l2 * (e_pos.pow(2).mean() + e_neg.pow(2).mean()) + e_neg.mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    (grad,) = torch.autograd.grad(loss, method.net.w)
    d_cd = r_pos.mean() - r_neg.mean() + l2 * (2 * w * r_pos.pow(2).mean() + 2 * w * r_neg.pow(2).mean())
    d_kl = (w * x_neg * (-lam * x0)).sum(1).mean()
    assert grad.item() == pytest.approx((d_cd + d_kl).item(), rel=1e-5)


def test_icd_without_kl_is_plain_cd():
    w, lam, l2 = 2.0, 0.1, 0.5
    method = _icd([w], kl=False, entropy=False)
    x_pos = torch.tensor([[1.0, 0.0]])
    x0 = torch.tensor([[0.5, 0.5]])
    loss = _captured_loss(method, x_pos, x0)
    e_pos = w * 0.5
    e_neg = w * 0.5 * (0.5**2 * 2) * (1 - lam * w) ** 2
    assert loss.item() == pytest.approx(e_pos - e_neg + l2 * (e_pos**2 + e_neg**2), rel=1e-6)


def test_icd_entropy_term_uses_augmented_past_buffer_samples():
    w, l2, coeff = 2.0, 0.5, 0.3
    method = _icd([w], kl=False, entropy=True, entropy_coeff=coeff, entropy_refs=1, entropy_min_buffer=0)
    buffer = FifoBuffer(5, quantize=False)
    buffer.add(torch.tensor([[3.0, 4.0]]))
    method.chains.buffer = buffer
    shifted = []
    method.chains.transition = lambda x: shifted.append(x.clone()) or x + 1.0
    x0 = torch.tensor([[0.0, 0.0]])
    loss = _captured_loss(method, torch.tensor([[1.0, 1.0]]), x0)
    # x- = 0. The reference is the past sample (3, 4), augmented to (4, 5): log ||x_kl - ref|| = log sqrt(41).
    # The current negative (0, 0), added to the buffer after the references are drawn, is never its own reference.
    assert len(shifted) == 1 and torch.equal(shifted[0], torch.tensor([[3.0, 4.0]]))
    e_pos = w * 0.5 * 2.0
    expected = e_pos - 0.0 + l2 * e_pos**2 - coeff * math.log(math.sqrt(41.0))
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert len(buffer) == 2


def test_igebm_loss_with_clamped_sampler():
    net = Quadratic([4.0])
    model = EnergyModel(net, lr=1e-3, betas=(0.0, 0.999))
    chains = ChainSource(shape=(1,), buffer=FifoBuffer(10, quantize=False), reinit=0.05, init_range=(0.0, 1.0))
    sampler = LangevinParams(steps=1, step_size=10.0, noise=0.0, grad_clamp=0.01, pixel_clamp=(0.0, 1.0))
    method = Igebm(model, sampler=sampler, chains=chains, l2=1.0)
    x0 = torch.tensor([[0.5]])
    loss = _captured_loss(method, torch.tensor([[1.0]]), x0)
    # dE/dx = 4 * 0.5 = 2, clamped to 0.01; x- = 0.5 - 10 * 0.01 = 0.4
    e_pos, e_neg = 0.5 * 4.0 * 1.0, 0.5 * 4.0 * 0.16
    assert loss.item() == pytest.approx(e_pos - e_neg + (e_pos**2 + e_neg**2), rel=1e-6)
    assert len(chains.buffer) == 1 and chains.buffer.storage[0].item() == pytest.approx(0.4)


def test_chain_initialisation():
    torch.manual_seed(0)
    buffer = FifoBuffer(1000, quantize=False)
    buffer.add(torch.full((1000, 2), 7.0))
    x = init_chains(1000, (2,), buffer=buffer, reinit=0.2, init_range=(0.0, 1.0), transition=None,
                    device=torch.device("cpu"))
    restarted = (x < 1).all(1).float().mean().item()
    assert abs(restarted - 0.2) < 0.04 and ((x == 7.0).all(1) | (x < 1).all(1)).all()
    empty = init_chains(5, (2,), buffer=FifoBuffer(10), reinit=0.0, init_range=(-2.0, -1.0), transition=None,
                        device=torch.device("cpu"))
    assert ((empty >= -2) & (empty <= -1)).all()
    augmented = init_chains(10, (2,), buffer=buffer, reinit=0.0, init_range=(0.0, 1.0), transition=lambda t: t + 1,
                            device=torch.device("cpu"))
    assert (augmented == 8.0).all()


def test_ood_scores_sign_convention():
    net = Quadratic([1.0])
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    scores = energy_scores(summed_energy(net), net, x, ["energy", "grad_norm"])
    assert scores["energy"].tolist() == [0.0, -12.5]  # -E: the typical point scores higher
    assert scores["grad_norm"].tolist() == pytest.approx([0.0, -5.0])  # -||x||


def test_entropy_of_an_exact_tie_is_floored_not_infinite():
    x = torch.tensor([[4.5, 4.5]])
    value = nn_entropy(x, x.clone())
    assert torch.isfinite(value) and value.item() == pytest.approx(math.log(1e-12))


def test_gradient_norm_clipping_and_the_reported_norm():
    net = nn.Linear(4, 1, bias=False)
    model = EnergyModel(net, lr=1e-3, betas=(0.0, 0.9), grad_clip=0.5)
    x = torch.full((2, 4), 10.0)
    loss = net(x).sum()  # d loss / d w = (20, 20, 20, 20): norm 40
    reported = model.step(loss)
    assert reported == pytest.approx(40.0)
    assert net.weight.grad.norm().item() == pytest.approx(0.5, rel=1e-5)
    unclipped = EnergyModel(nn.Linear(4, 1, bias=False), lr=1e-3, betas=(0.0, 0.9))
    lin = unclipped.net
    assert unclipped.step(lin(x).sum()) == pytest.approx(40.0)
    assert lin.weight.grad.norm().item() == pytest.approx(40.0)


def test_step_equals_zero_grad_backward_update():
    torch.manual_seed(0)
    base = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    kw = {"lr": 1e-2, "grad_clip": 0.3, "ema": 0.9, "warmup": 2, "ema_start": 1}
    a = EnergyModel(copy.deepcopy(base), **kw)
    b = EnergyModel(copy.deepcopy(base), **kw)
    x = torch.randn(5, 4)
    for _ in range(4):
        norm_a = a.step(a.net(x).pow(2).mean())
        b.zero_grad()
        assert all(p.grad is None for p in b.net.parameters())
        b.net(x).pow(2).mean().backward()
        norm_b = b.update()
        assert norm_a == norm_b > 0
    assert a.updates == b.updates == 4
    for pa, pb in zip(a.net.parameters(), b.net.parameters(), strict=True):
        assert torch.equal(pa, pb)
    for pa, pb in zip(a.ema_net.parameters(), b.ema_net.parameters(), strict=True):
        assert torch.equal(pa, pb)
    assert not torch.equal(a.net[0].weight, base[0].weight)


def test_two_models_share_one_backward_pass():
    torch.manual_seed(0)
    first, second = nn.Linear(3, 3), nn.Linear(3, 1)
    a = EnergyModel(first, lr=1e-2)
    b = EnergyModel(second, lr=1e-2)
    x = torch.randn(4, 3)
    a.zero_grad()
    b.zero_grad()
    second(first(x)).sum().backward()
    assert first.weight.grad is not None and second.weight.grad is not None
    before = [p.detach().clone() for p in (*first.parameters(), *second.parameters())]
    a.update()
    b.update()
    after = [p.detach() for p in (*first.parameters(), *second.parameters())]
    assert all(not torch.equal(p, q) for p, q in zip(before, after, strict=True))
    assert a.updates == b.updates == 1
