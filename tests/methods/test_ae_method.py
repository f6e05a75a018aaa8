"""The retrofit autoencoder: its loss by hand, the joint update of both nets, learning, sampling, state."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ebmctl.methods.ae import Autoencoder
from ebmctl.methods.energy_model import EnergyModel
from ebmctl.nets.sngan import ImageLatentGenerator, SphereEncoder

SIZE = 16


def build(*, latent_noise: float = 0.0, lr: float = 1e-3, seed: int = 0, ema: float | None = None,
          loss_factor: float = 1000.0) -> Autoencoder:
    torch.manual_seed(seed)
    encoder = EnergyModel(SphereEncoder(SIZE, nef=8), lr=lr, ema=ema)
    generator = EnergyModel(ImageLatentGenerator((1, SIZE // 2, SIZE // 2), ngf=8), lr=lr, ema=ema)
    return Autoencoder(encoder, generator, loss_factor=loss_factor, latent_noise=latent_noise)


def images(n: int = 4, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def params(model: EnergyModel) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.net.parameters()]


def test_loss_by_hand_and_both_nets_update() -> None:
    method = build(loss_factor=250.0)
    x = images()
    enc_before, dec_before = params(method.encoder), params(method.generator)
    with torch.no_grad():
        target = 2 * x - 1
        enc, dec = method.encoder.net.train(), method.generator.net.train()
        z = enc(target)
        mse = (dec(z) - target).pow(2).mean().item()
    metrics = method.train_step(x)
    assert metrics["loss"] == pytest.approx(250.0 * mse, rel=1e-5)
    assert metrics["mse"] == pytest.approx(mse, rel=1e-5)
    assert metrics["z_norm"] == pytest.approx(SIZE // 2, abs=1e-4)  # sqrt(m) = sqrt(8 * 8)
    assert method.encoder.updates == 1 and method.generator.updates == 1
    for before, model in ((enc_before, method.encoder), (dec_before, method.generator)):
        after = params(model)
        assert all(torch.isfinite(p).all() for p in after)
        assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
    neg = method.last_negatives
    assert neg is not None and neg.shape == x.shape and neg.min() >= 0 and neg.max() <= 1
    assert not neg.requires_grad


def test_latent_noise_changes_the_loss() -> None:
    x = images()
    clean = build(latent_noise=0.0).train_step(x)["loss"]
    torch.manual_seed(5)
    noisy = build(latent_noise=0.5).train_step(x)["loss"]
    assert math.isfinite(noisy) and noisy != pytest.approx(clean, rel=1e-6)
    torch.manual_seed(5)
    assert build(latent_noise=0.5).train_step(x)["loss"] == noisy  # the noise follows torch's seed


def test_training_reduces_the_reconstruction_error() -> None:
    method = build(lr=1e-3)
    g = torch.Generator().manual_seed(1)
    # smooth images (bilinear 4x4 -> 16x16) that a 64-entry latent can hold, unlike pixel noise
    x = F.interpolate(torch.rand(4, 3, 4, 4, generator=g), size=SIZE, mode="bilinear", align_corners=False)
    first = method.train_step(x)["loss"]
    for _ in range(200):
        last = method.train_step(x)["loss"]
    assert last < 0.1 * first
    rec = method.reconstruct(x, ema=False)  # eval mode: BN running statistics, no latent noise
    assert rec.shape == x.shape
    assert (2 * rec - 2 * x).pow(2).mean().item() < 0.1 * first / method.loss_factor


def test_state_round_trip_continues_identically() -> None:
    method = build(latent_noise=0.02, ema=0.9)
    x = images()
    for _ in range(3):
        method.train_step(x)
    other = build(latent_noise=0.02, ema=0.9, seed=7)
    other.load_state(method.state_tensors(), method.state_meta())
    assert torch.equal(method.reconstruct(x), other.reconstruct(x))
    assert torch.equal(method.reconstruct(x, ema=False), other.reconstruct(x, ema=False))
    torch.manual_seed(3)
    a = method.train_step(x)
    torch.manual_seed(3)
    b = other.train_step(x)
    assert a["loss"] == b["loss"] and a["mse"] == b["mse"]
    for model, copy in ((method.encoder, other.encoder), (method.generator, other.generator)):
        # the optimiser state came along too: the step just taken moved both copies alike
        assert all(torch.equal(p, q) for p, q in zip(params(model), params(copy), strict=True))
    assert other.encoder.updates == method.encoder.updates == 4
    keys = set(method.state_tensors())
    assert any(k.startswith("encoder.") for k in keys) and any(k.startswith("generator.") for k in keys)
    assert all(k.startswith(("encoder.", "generator.")) for k in keys)


def test_weights_round_trip() -> None:
    method = build()
    method.train_step(images())
    other = build(seed=7)
    other.load_weights(method.weight_tensors())
    x = images(seed=2)
    assert torch.equal(method.reconstruct(x), other.reconstruct(x))


def test_samples_are_images_and_ignore_langevin_settings() -> None:
    method = build()
    seen = []
    x = method.sample(5, steps=100, step_size=1.0, callback=lambda k, s: seen.append(k))
    assert x.shape == (5, 3, SIZE, SIZE) and x.min() >= 0 and x.max() <= 1
    assert seen == [0]
    assert method.net is method.generator.net and not method.has_ema


def test_representation_is_the_flattened_sphere_latent() -> None:
    method = build()
    x = images(3)
    rep = method.representation(x)
    assert rep.shape == (3, (SIZE // 2) ** 2) and not rep.requires_grad
    assert torch.allclose(rep.norm(dim=1), torch.full((3,), float(SIZE // 2)), atol=1e-4)
    with torch.no_grad():
        expected = method.encoder.net.eval()(2 * x - 1).flatten(1)
    assert torch.allclose(rep, expected)
