"""The sampler's speed options change how a step runs, never what it computes (beyond float rounding)."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from ebmctl.nets import ClelEnergyNet, IcdResNet
from ebmctl.nets.layers import WSConv2d, cached_standardization
from ebmctl.samplers.fastpath import cached_weights, chain_layout, energy_precision
from ebmctl.samplers.langevin import LangevinParams, sgld, sgld_params


def conv_net() -> nn.Module:
    """The CEBM-encoder-shaped net the speed comparison uses, at a smaller width."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, 1, 1), nn.LeakyReLU(0.2), nn.Conv2d(8, 16, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.Conv2d(16, 32, 4, 2, 1), nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(32 * 8 * 8, 1),
    )


def summed(net: nn.Module):
    return lambda x: net(x).flatten(1).sum(1)


def released_style(energy, x0: Tensor, steps: int, step: float, noise: float, noise_first: bool,
                   seed: int) -> Tensor:
    """The chain as the released ICD / CLEL code writes it: parameters left trainable, out-of-place updates,
    a fresh graph and noise tensor each step."""
    gen = torch.Generator().manual_seed(seed)
    x = x0.clone()
    for _ in range(steps):
        if noise_first:
            x = x + noise * torch.randn(x.shape, generator=gen)
        x.requires_grad_(True)
        (g,) = torch.autograd.grad(energy(x).sum(), [x])
        x = x - step * g
        if not noise_first:
            x = x + noise * torch.randn(x.shape, generator=gen)
        x = x.detach().clamp(0, 1)
    return x


NETS = {
    "conv": (conv_net, True, 10.0, 0.005, True),
    "icd": (lambda: IcdResNet(width=8), False, 100.0, 0.001, True),
    "clel": (lambda: ClelEnergyNet(channels=(8, 16), blocks=(1, 1), hidden=32, latent_dim=8), True, 100.0,
             0.001, False),
}


@pytest.mark.parametrize("name", sorted(NETS))
def test_fast_chains_equal_released_loops(name):
    make, channels_last, step, noise, noise_first = NETS[name]
    torch.manual_seed(0)
    net = make().eval()  # eval: spectral norm does no power iteration, so both loops see the same weights
    x0 = torch.rand(6, 3, 32, 32)
    ref = released_style(summed(net), x0, 4, step, noise, noise_first, seed=3)
    fast = sgld(summed(net), x0, steps=4, step_size=step, noise=noise, noise_first=noise_first,
                generator=torch.Generator().manual_seed(3), channels_last=channels_last)
    assert fast.is_contiguous() and fast.dtype == torch.float32
    assert (fast - ref).abs().max().item() < 1e-4
    assert (fast - x0).abs().max().item() > 1e-3, "the chains must have moved"
    assert all(p.requires_grad for p in net.parameters()), "parameters are trainable again afterwards"


def test_bf16_energy_keeps_fp32_chains():
    torch.manual_seed(0)
    net = conv_net()
    seen: list[torch.dtype] = []
    net[2].register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    x0 = torch.rand(6, 3, 32, 32)
    kw = {"steps": 3, "step_size": 10.0, "noise": 0.005, "generator": None}
    fp32 = sgld(summed(net), x0, **{**kw, "generator": torch.Generator().manual_seed(1)})
    assert seen and set(seen) == {torch.float32}
    seen.clear()
    bf16 = sgld(summed(net), x0, **{**kw, "generator": torch.Generator().manual_seed(1)}, precision="bf16")
    assert seen and set(seen) == {torch.bfloat16}, "the energy net ran in bf16"
    assert bf16.dtype == torch.float32
    gap = (bf16 - fp32).abs().max().item()
    assert 0 < gap < 0.05


def test_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="fp32, bf16"):
        energy_precision("fp16", torch.device("cpu"))


def test_standardised_weight_is_computed_once_inside_the_cache():
    conv = WSConv2d(4, 6, 3)
    outside = conv.standardized_weight()
    with cached_standardization():
        first = conv.standardized_weight()
        assert conv.standardized_weight() is first
        torch.testing.assert_close(first, outside)
    assert conv.standardized_weight() is not first


def test_cached_spectral_norm_runs_one_power_iteration_per_chain():
    import copy

    torch.manual_seed(0)
    net = ClelEnergyNet(channels=(8,), blocks=(1,), hidden=16, latent_dim=4).train()
    ref = copy.deepcopy(net)
    x = torch.rand(2, 3, 32, 32)
    with cached_weights():
        for _ in range(3):
            net(x)
    ref(x)  # one uncached forward: one power iteration
    state, once = net.state_dict(), ref.state_dict()
    vectors = [k for k in state if k.endswith(("_u", "_v"))]
    assert vectors
    for k in vectors:
        torch.testing.assert_close(state[k], once[k])
    ref(x)
    assert any(not torch.equal(state[k], ref.state_dict()[k]) for k in vectors), "a second iteration moves u"


def test_chain_layout_only_changes_image_batches():
    x = torch.rand(2, 3, 8, 8)
    assert chain_layout(x, True).is_contiguous(memory_format=torch.channels_last)
    assert chain_layout(x, False) is x
    points = torch.rand(5, 2)
    assert chain_layout(points, True) is points


def test_params_carry_speed_options_to_sgld():
    torch.manual_seed(0)
    net = conv_net()
    x0 = torch.rand(4, 3, 32, 32)
    base = LangevinParams(steps=2, step_size=10.0, noise=0.0)
    fast = LangevinParams(steps=2, step_size=10.0, noise=0.0, channels_last=True, precision="bf16")
    assert fast.sgld_kwargs()["precision"] == "bf16" and "precision" not in fast.step_kwargs()
    a, b = sgld_params(summed(net), x0, base), sgld_params(summed(net), x0, fast)
    assert 0 < (a - b).abs().max().item() < 0.05


def test_layout_auto_follows_the_net():
    from ebmctl.nets import build_net
    from ebmctl.recipes import resolve_spec
    from ebmctl.recipes.blocks import sampler_params

    cebm = resolve_spec(preset="cebm-digits")
    net = build_net(cebm.net.name, **{**cebm.net.model_dump(exclude={"name"}), "in_channels": 1, "image_size": 28})
    assert sampler_params(cebm, net).channels_last
    icd = resolve_spec(preset="icd-shapes")
    assert not sampler_params(icd, IcdResNet(width=8)).channels_last
    forced = resolve_spec(preset="icd-shapes", overrides=["sampler.layout=channels_last"])
    assert sampler_params(forced, IcdResNet(width=8)).channels_last
