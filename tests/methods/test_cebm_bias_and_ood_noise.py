"""CEBMM learns its mixture (hand-computed gradients of the bias, an optimiser step moves it, the switch keeps it
fixed) and CEBM's OOD scores on noisy inputs (method.ood_noise)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from ebmctl.data import DataInfo
from ebmctl.methods.energy_model import EnergyModel
from ebmctl.nets.cebm import CebmNet
from ebmctl.recipes import build_method, resolve_spec

DIGITS = DataInfo(name="digits", kind="image", split="train", shape=(1, 16, 16), num_classes=10)
TINY_CEBM = ["net.channels=[8,8,8,8]", "net.hidden=16", "net.latent_dim=6", "sampler.steps=3", "train.batch_size=8"]


def _constant_statistics_net(learn_bias: bool) -> CebmNet:
    """A 1-d mixture of two components, means (0, 1), stds 1, whose statistics are t1 = 1, t2 = -1/2 for any
    input (zero head weights, head biases 1 and sqrt(1/2))."""
    net = CebmNet(in_channels=1, image_size=4, channels=(1,), kernels=(3,), strides=(1,), paddings=(1,), hidden=0,
                  latent_dim=1, bias="mixture", components=2, learn_bias=learn_bias)
    with torch.no_grad():
        for head, b in ((net.head1, 1.0), (net.head2, math.sqrt(0.5))):
            head.weight.zero_()
            head.bias.fill_(b)
        net.bias_mean.copy_(torch.tensor([[0.0], [1.0]]))
        net.bias_log_std.zero_()
    return net


# By hand: lam_k = (mu_k, -1/2), lam_k + t = (mu_k + 1, -1), A(e1, e2) = -e1^2 / (4 e2) - log(-2 e2) / 2.
# s_k = A(lam_k + t) - A(lam_k): s_0 = 1/4 - log(2)/2, s_1 = 1 - log(2)/2 - 1/2; r = softmax(s), r_0 = 1/(1 + e^(1/4)).
# dE/dmu_k = -r_k (m_k - mu_k) / sigma_k^2 with the posterior mean m_k = (mu_k + 1) / 2: (-r_0 / 2, 0).
# dE/dlog sigma_k = -r_k d s_k / d log sigma_k, d s_0 = 3/4 - 1 = -1/4, d s_1 = (-2 + 3/2) - (-2 + 2) = -1/2.
R0 = 1 / (1 + math.exp(0.25))
ENERGY = math.log(2) - math.log(math.exp(0.25 - math.log(2) / 2) + math.exp(0.5 - math.log(2) / 2))
GRAD_MEAN = [-R0 / 2, 0.0]
GRAD_LOG_STD = [R0 / 4, (1 - R0) / 2]


def test_bias_gradients_match_the_hand_computed_case():
    net = _constant_statistics_net(learn_bias=True)
    energy = net(torch.zeros(1, 1, 4, 4)).sum()
    assert energy.item() == pytest.approx(ENERGY, abs=1e-6)
    energy.backward()
    assert net.bias_mean.grad.flatten().tolist() == pytest.approx(GRAD_MEAN, abs=1e-6)
    assert net.bias_log_std.grad.flatten().tolist() == pytest.approx(GRAD_LOG_STD, abs=1e-6)


def test_an_optimiser_step_moves_the_learnt_bias():
    net = _constant_statistics_net(learn_bias=True)
    model = EnergyModel(net, lr=0.1, betas=(0.9, 0.999))
    model.step(net(torch.zeros(1, 1, 4, 4)).sum())
    # Adam's first step is lr * sign(grad) where the gradient is not zero
    assert net.bias_mean.detach().flatten().tolist() == pytest.approx([0.1, 1.0], abs=1e-6)
    assert net.bias_log_std.detach().flatten().tolist() == pytest.approx([-0.1, -0.1], abs=1e-6)


def test_fixed_bias_gets_no_gradient_and_stays():
    net = _constant_statistics_net(learn_bias=False)
    assert "bias_mean" not in dict(net.named_parameters())
    model = EnergyModel(net, lr=0.1, betas=(0.9, 0.999))
    model.step(net(torch.zeros(1, 1, 4, 4)).sum())
    assert net.bias_mean.grad is None
    assert net.bias_mean.flatten().tolist() == [0.0, 1.0] and net.bias_log_std.flatten().tolist() == [0.0, 0.0]


@pytest.mark.parametrize("learn", [True, False])
def test_the_spec_switch_reaches_the_optimiser(learn):
    torch.manual_seed(0)
    method = build_method(resolve_spec("cebmm-digits", [*TINY_CEBM, f"net.learn_bias={str(learn).lower()}"]),
                          DIGITS, torch.device("cpu"))
    optimised = {id(p) for g in method.model.optimizer.param_groups for p in g["params"]}
    assert (id(method.net.bias_mean) in optimised) is learn
    before = method.net.bias_mean.detach().clone()
    method.train_step(torch.rand(8, 1, 16, 16))
    assert torch.equal(before, method.net.bias_mean.detach()) is not learn
    assert {"model.bias_mean", "model.bias_log_std"} <= set(method.weight_tensors())


# ------------------------------------------------------------------------------------------ OOD noise


def _cebm(noise: float):
    torch.manual_seed(0)
    return build_method(resolve_spec("cebm-digits", [*TINY_CEBM, f"method.ood_noise={noise}"]), DIGITS,
                        torch.device("cpu"))


def _scores(method, x, batch: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    parts = [method.ood_scores(chunk, ["energy", "grad_norm"], generator=gen) for chunk in x.split(batch)]
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def test_zero_noise_is_the_clean_path():
    x = torch.rand(6, 1, 16, 16)
    method = _cebm(0.0)
    net = method.model.eval_net()
    clean = -net(method.to_model(x)).sum(1).detach()
    got = _scores(method, x, 6)
    assert torch.equal(got["energy"], clean)


def test_noisy_scores_differ_reproduce_and_do_not_depend_on_the_batch_size():
    x = torch.rand(6, 1, 16, 16)
    clean, noisy = _cebm(0.0), _cebm(0.03)
    assert all(torch.equal(a, b) for a, b in zip(clean.net.parameters(), noisy.net.parameters(), strict=True))
    base = _scores(clean, x, 6)
    first, again, chunked = _scores(noisy, x, 6), _scores(noisy, x, 6), _scores(noisy, x, 4)
    other_seed = _scores(noisy, x, 6, seed=1)
    for k in ("energy", "grad_norm"):
        assert not torch.allclose(first[k], base[k])
        assert torch.equal(first[k], again[k])
        assert torch.allclose(first[k], chunked[k], rtol=1e-5, atol=1e-6)
        assert not torch.allclose(first[k], other_seed[k])


def test_noise_is_added_in_the_model_range_with_the_given_std():
    method = _cebm(0.5)
    seen = []

    class Spy(nn.Module):
        def forward(self, x, y=None):
            seen.append(x.detach().clone())
            return x.flatten(1).sum(1, keepdim=True)

    method.model.net = Spy()
    x = torch.full((2, 1, 16, 16), 0.5)  # 0 in [-1, 1]
    method.ood_scores(x, ["energy"], generator=torch.Generator().manual_seed(3))
    gen = torch.Generator().manual_seed(3)
    expected = 0.5 * torch.stack([torch.randn(1, 16, 16, generator=gen) for _ in range(2)])
    assert torch.allclose(seen[0], expected)
