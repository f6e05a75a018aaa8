"""SN-GAN: the hinge losses by hand, the n_dis schedule, sampling in [0, 1], exact state round trips."""

from __future__ import annotations

import math

import pytest
import torch

from ebmctl.data import DataInfo
from ebmctl.errors import SpecError
from ebmctl.losses.generators import hinge_discriminator_loss, hinge_generator_loss
from ebmctl.methods.sngan import Sngan
from ebmctl.recipes import build_method, resolve_spec

SHAPES = DataInfo(name="shapes32", kind="image", split="train", shape=(3, 32, 32), num_classes=4)
TINY = ["net.ngf=16", "net.ndf=16", "net.nz=8", "train.batch_size=4", "method.n_dis=2"]


def build(sets: list[str] = (), info: DataInfo = SHAPES, seed: int = 0) -> Sngan:
    torch.manual_seed(seed)
    method = build_method(resolve_spec("sngan-shapes", [*TINY, *sets]), info, torch.device("cpu"))
    assert isinstance(method, Sngan)
    return method


def test_hinge_losses_by_hand() -> None:
    d_real = torch.tensor([2.0, 0.5, -1.0])  # relu(1 - d): 0, 0.5, 2 -> mean 5/6
    d_fake = torch.tensor([-3.0, 0.0])  # relu(1 + d): 0, 1 -> mean 1/2
    assert hinge_discriminator_loss(d_real, d_fake).item() == pytest.approx(5 / 6 + 1 / 2)
    assert hinge_generator_loss(d_fake).item() == pytest.approx(1.5)


def test_generator_updates_every_n_dis_steps_and_discriminator_every_step() -> None:
    method = build()
    x = torch.rand(4, 3, 32, 32)
    gen_before = [p.detach().clone() for p in method.generator.net.parameters()]
    first = method.train_step(x)
    assert "g_loss" not in first and method.discriminator.updates == 1 and method.generator.updates == 0
    assert all(torch.equal(a, b) for a, b in zip(gen_before, method.generator.net.parameters(), strict=True))
    second = method.train_step(x)
    assert "g_loss" in second and math.isfinite(second["g_loss"])
    assert method.discriminator.updates == 2 and method.generator.updates == 1
    assert method.last_negatives is not None and method.last_negatives.min() >= 0


def test_the_generator_step_leaves_the_discriminator_alone() -> None:
    method = build(["method.n_dis=1"])
    x = torch.rand(4, 3, 32, 32)
    method.train_step(x)
    disc = {k: v.detach().clone() for k, v in method.discriminator.net.named_parameters()}
    optimizer_steps = method.discriminator.updates
    method.train_step(x)  # n_dis = 1: a discriminator step, then a generator step
    assert method.discriminator.updates == optimizer_steps + 1 and method.generator.updates == 2
    after_d = {k: v.detach().clone() for k, v in method.discriminator.net.named_parameters()}
    assert any(not torch.equal(after_d[k], disc[k]) for k in disc)
    method.generator.step(hinge_generator_loss(method.discriminator.net(method._fake(4))))
    # the weights stay; only spectral norm's power-iteration vectors move, as in every SN-GAN
    for k, v in method.discriminator.net.named_parameters():
        assert torch.equal(v, after_d[k]), k
    assert all(p.requires_grad for p in method.discriminator.net.parameters())


def test_samples_are_images_and_ignore_langevin_settings() -> None:
    method = build()
    seen = []
    x = method.sample(5, steps=100, step_size=1.0, callback=lambda k, s: seen.append(k))
    assert x.shape == (5, 3, 32, 32) and x.min() >= 0 and x.max() <= 1
    assert seen == [0]


def test_state_round_trip_continues_identically() -> None:
    method = build()
    x = torch.rand(4, 3, 32, 32)
    for _ in range(3):
        method.train_step(x)
    other = build(seed=7)
    other.load_state(method.state_tensors(), method.state_meta())
    torch.manual_seed(3)
    a = method.train_step(x)
    torch.manual_seed(3)
    b = other.train_step(x)
    assert a == b
    weights = method.weight_tensors()
    assert any(k.startswith("generator.") for k in weights) and any(k.startswith("discriminator.") for k in weights)


def test_sizes_other_than_32_64_128_are_refused() -> None:
    info = DataInfo(name="digits", kind="image", split="train", shape=(1, 16, 16), num_classes=10)
    with pytest.raises(SpecError, match=r"data\.image_size"):
        build(info=info)
    with pytest.raises(SpecError):
        build_method(resolve_spec("quickstart", ["net.name=sngan"]), SHAPES, torch.device("cpu"))
