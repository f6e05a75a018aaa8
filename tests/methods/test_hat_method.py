"""Hat EBM's losses, the synthesis bank's overwrite rule, and what each mode trains."""

from __future__ import annotations

import pytest
import torch

from ebmctl.data.base import DataInfo
from ebmctl.losses.contrastive_divergence import hat_loss
from ebmctl.losses.generators import generator_loss
from ebmctl.methods.energy_model import EnergyModel, clip_grad_norm_per_tensor
from ebmctl.methods.hat import GeneratorBank, Hat
from ebmctl.nets.sngan import SnganDiscriminator, SnganGenerator
from ebmctl.recipes import build_method, resolve_spec, spec_from_json, spec_to_json
from ebmctl.samplers.hat import HatLangevinParams


def _hat(mode: str = "refine", bank_size: int = 16) -> Hat:
    torch.manual_seed(0)
    gen = SnganGenerator(32, nz=8, ngf=16, out_scale=2.0 if mode == "synthesis" else 1.0)
    net = SnganDiscriminator(32, ndf=16, spectral_norm=False)
    sampler = HatLangevinParams(steps=2, epsilon=1e-2, epsilon_latent=0.0 if mode == "synthesis" else 1e-2,
                                temperature=1e-3)
    gen_model = EnergyModel(gen, lr=1e-3) if mode == "synthesis" else None
    return Hat(EnergyModel(net, lr=1e-3), gen, mode=mode, sampler=sampler, generator_model=gen_model,
               bank_size=bank_size)


def test_hat_loss_and_generator_loss_by_hand():
    # ((1 + 3) / 2 - (0 + 2) / 2) / 0.5 = 2
    assert hat_loss(torch.tensor([1.0, 3.0]), torch.tensor([0.0, 2.0]), 0.5).item() == pytest.approx(2.0)
    # 1000 * mean((1 - 0)^2, (2 - 4)^2) = 1000 * 2.5
    fake, target = torch.tensor([1.0, 2.0]), torch.tensor([0.0, 4.0])
    assert generator_loss(fake, target, 1000.0).item() == pytest.approx(2500.0)


def test_the_bank_reads_distinct_slots_and_overwrites_exactly_them():
    bank = GeneratorBank(torch.arange(10.0).view(10, 1), torch.arange(10.0).view(10, 1, 1, 1))
    idx = bank.pick(4)
    assert len(set(idx.tolist())) == 4
    z, x = bank.read(idx)
    assert torch.equal(z.flatten(), idx.float()) and torch.equal(x.flatten(), idx.float())
    bank.write(idx, -torch.ones(4, 1), -torch.ones(4, 1, 1, 1))
    hit = torch.zeros(10, dtype=torch.bool)
    hit[idx] = True
    assert (bank.z[hit] == -1).all() and torch.equal(bank.z[~hit].flatten(), torch.arange(10.0)[~hit])
    with pytest.raises(ValueError, match="distinct"):
        bank.pick(11)


def test_the_generator_regresses_onto_old_pairs_then_their_slots_take_the_new_ones(monkeypatch):
    hat = _hat("synthesis")
    hat._init_bank()
    assert hat.bank is not None
    before_z, before_x = hat.bank.z.clone(), hat.bank.images.clone()
    with torch.no_grad():  # the bank starts as (z, G(z)) of the initial generator
        assert torch.allclose(hat.gen(before_z), before_x, atol=1e-6)
    idx = torch.tensor([3, 7, 0, 12])
    monkeypatch.setattr(hat.bank, "pick", lambda n: idx)
    hat.bank.images[idx] += 0.5  # old samples that differ from G(z): a loss of 1000 * 0.25
    with torch.no_grad():
        expected = generator_loss(hat.gen(before_z[idx]), hat.bank.images[idx], 1000.0).item()
    z_new, x_new = torch.randn(4, 8), torch.randn(4, 3, 32, 32)
    loss = hat._generator_step(z_new, x_new)
    assert loss == pytest.approx(expected, rel=1e-5) and loss == pytest.approx(250.0, rel=1e-3)
    assert torch.equal(hat.bank.z[idx], z_new) and torch.equal(hat.bank.images[idx], x_new)
    rest = torch.ones(16, dtype=torch.bool)
    rest[idx] = False
    assert torch.equal(hat.bank.z[rest], before_z[rest]) and torch.equal(hat.bank.images[rest], before_x[rest])


def test_refine_trains_the_hat_network_only():
    hat = _hat("refine")
    gen_before = {k: v.clone() for k, v in hat.gen.state_dict().items()}
    net_before = [p.clone() for p in hat.model.net.parameters()]
    metrics = hat.train_step(torch.rand(4, 3, 32, 32))
    assert {"loss", "e_pos", "e_neg", "gap", "res_norm", "z_norm"} <= metrics.keys() and "g_loss" not in metrics
    assert all(torch.equal(v, hat.gen.state_dict()[k]) for k, v in gen_before.items())
    assert any(not torch.equal(a, b) for a, b in zip(net_before, hat.model.net.parameters(), strict=True))
    assert not any(p.requires_grad for p in hat.gen.parameters())


def test_synthesis_trains_both_and_keeps_generator_batchnorm_at_zero_mean_unit_variance():
    hat = _hat("synthesis")
    gen_before = [p.clone() for p in hat.gen.parameters()]
    for _ in range(2):
        metrics = hat.train_step(torch.rand(4, 3, 32, 32))
    assert "g_loss" in metrics and hat.bank is not None and len(hat.bank) == 16
    assert any(not torch.equal(a, b) for a, b in zip(gen_before, hat.gen.parameters(), strict=True))
    for module in hat.gen.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            assert torch.equal(module.running_mean, torch.zeros_like(module.running_mean))
            assert torch.equal(module.running_var, torch.ones_like(module.running_var))


def test_synthesis_keeps_z_fixed_while_sampling():
    hat = _hat("synthesis")
    z0 = hat.latents(3)
    z, y, _ = hat.run_chains(z0)
    assert torch.equal(z, z0) and y.abs().sum() > 0


def test_the_checkpoint_carries_the_generator_and_the_state_the_bank():
    hat = _hat("synthesis")
    hat.train_step(torch.rand(4, 3, 32, 32))
    weights, state = hat.weight_tensors(), hat.state_tensors()
    assert any(k.startswith("generator.model.") for k in weights)
    assert {"bank.z", "bank.images"} <= state.keys() and any(k.startswith("generator.optim.") for k in state)
    other = _hat("synthesis")
    other.load_state(state, hat.state_meta())
    torch.manual_seed(5)
    a = hat.train_step(torch.rand(4, 3, 32, 32))
    torch.manual_seed(5)
    b = other.train_step(torch.rand(4, 3, 32, 32))
    assert a == b


def test_modes_and_generator_ownership_are_checked():
    gen, net = SnganGenerator(32, nz=8, ngf=16), SnganDiscriminator(32, ndf=16, spectral_norm=False)
    sampler = HatLangevinParams(steps=1, epsilon=1e-2)
    with pytest.raises(ValueError, match="unknown hat mode"):
        Hat(EnergyModel(net, lr=1e-3), gen, mode="nope", sampler=sampler)
    with pytest.raises(ValueError, match="synthesis"):
        Hat(EnergyModel(net, lr=1e-3), gen, mode="synthesis", sampler=sampler)


def test_samples_are_images_and_scores_follow_the_energy():
    hat = _hat("refine")
    x = hat.sample(3, steps=2)
    assert x.shape == (3, 3, 32, 32) and x.min() >= 0 and x.max() <= 1
    data = torch.rand(5, 3, 32, 32)
    scores = hat.ood_scores(data, ["energy", "grad_norm"])
    assert torch.allclose(scores["energy"], -hat.energy(data))
    assert scores["grad_norm"].shape == (5,) and (scores["grad_norm"] <= 0).all()
    assert hat.representation(data).shape == (5, 16)


class _TwoTensors(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Parameter(torch.zeros(2))
        self.b = torch.nn.Parameter(torch.zeros(2))


def _clipped_step(mode: str) -> tuple[_TwoTensors, float]:
    """One SGD step (lr 1) on gradients a: (3, 4) (norm 5) and b: (1, 0) (norm 1), clipped at 2."""
    net = _TwoTensors()
    model = EnergyModel(net, lr=1.0, optimizer="sgd", momentum=0.0, grad_clip=2.0, grad_clip_mode=mode)
    model.zero_grad()
    net.a.grad, net.b.grad = torch.tensor([3.0, 4.0]), torch.tensor([1.0, 0.0])
    return net, model.update()


def test_per_tensor_clipping_bounds_each_tensor_on_its_own_by_hand():
    net, norm = _clipped_step("per_tensor")
    assert norm == pytest.approx(26**0.5)  # the norm of all gradients together, before clipping
    assert torch.allclose(net.a, -torch.tensor([3.0, 4.0]) * 2 / 5)  # norm 5 > 2: scaled to norm 2
    assert torch.allclose(net.b, -torch.tensor([1.0, 0.0]))  # norm 1 <= 2: left alone
    total, norm = _clipped_step("total")  # one norm over both: sqrt(26) > 2 scales both by 2 / sqrt(26)
    assert norm == pytest.approx(26**0.5)
    assert torch.allclose(total.a, -torch.tensor([3.0, 4.0]) * 2 / 26**0.5, atol=1e-5)
    assert torch.allclose(total.b, -torch.tensor([1.0, 0.0]) * 2 / 26**0.5, atol=1e-5)


def test_per_tensor_clipping_is_tensorflows_clip_by_norm():
    params = [torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(2, 2))]
    grads = [torch.tensor([0.0, 30.0, 40.0]), torch.tensor([[0.5, 0.5], [0.5, 0.5]])]
    for p, g in zip(params, grads, strict=True):
        p.grad = g.clone()
    clip_grad_norm_per_tensor(params, 50.0)
    assert torch.equal(params[0].grad, grads[0])  # norm exactly 50: unchanged
    params[0].grad = grads[0] * 2  # norm 100: halved
    clip_grad_norm_per_tensor(params, 50.0)
    assert torch.allclose(params[0].grad, grads[0]) and torch.equal(params[1].grad, grads[1])
    with pytest.raises(ValueError, match="grad_clip_mode"):
        EnergyModel(_TwoTensors(), lr=1.0, grad_clip_mode="layer")


def test_the_imagenet_preset_clips_each_tensor_at_50():
    spec = resolve_spec("hat-synth-imagenet128")
    assert (spec.train.grad_clip, spec.train.grad_clip_mode) == (50.0, "per_tensor")


CIFAR = DataInfo("cifar10", "image", "train", (3, 32, 32), 10)


def test_an_old_hat_spec_json_rebuilds_the_old_layout_and_loads_its_weights():
    new = resolve_spec("hat-refine-cifar10", ["net.ndf=128"])
    assert (new.net.pooling, new.net.bias, new.net.block_hidden) == ("mean", False, "out")  # the released layout
    doc = spec_to_json(new)  # as a run saved before the layout keys existed wrote it: without them
    for key in ("pooling", "bias", "block_hidden"):
        del doc["net"][key]
    del doc["train"]["grad_clip_mode"]
    old = spec_from_json(doc)
    assert (old.net.pooling, old.net.bias, old.net.block_hidden) == ("sum", True, "in")
    assert old.train.grad_clip_mode == "total"

    torch.manual_seed(0)
    trained = SnganDiscriminator(32, ndf=128, spectral_norm=False).eval()  # the layout such runs trained
    tensors = {f"model.{k}": v for k, v in trained.state_dict().items()}
    method = build_method(old, CIFAR, torch.device("cpu"))
    method.model.load_weights(tensors)  # strict: every key and shape matches
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(method.model.eval_net()(x), trained(x))
    with pytest.raises(RuntimeError, match=r"linear\.bias"):  # the released layout has no output bias
        build_method(new, CIFAR, torch.device("cpu")).model.load_weights(tensors)
