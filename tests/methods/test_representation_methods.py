"""CEBM, EBCLR and SimCLR: loss formulas on hand-made batches, MSGLD, chains, and exact state round trips."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ebmctl.data import DataInfo
from ebmctl.errors import SpecError
from ebmctl.losses.contrastive import distance_logits, ebclr_log_density, ebclr_loss, nt_xent
from ebmctl.methods.cebm import Cebm
from ebmctl.methods.ebclr import Ebclr
from ebmctl.methods.simclr import Simclr
from ebmctl.recipes import build_method, resolve_spec
from ebmctl.samplers.langevin import msgld_noise, sgld

DIGITS = DataInfo(name="digits", kind="image", split="train", shape=(1, 16, 16), num_classes=10)
SHAPES = DataInfo(name="shapes32", kind="image", split="train", shape=(3, 16, 16), num_classes=4)
TINY_CEBM = ["net.channels=[8,8,8,8]", "net.hidden=16", "net.latent_dim=6", "sampler.steps=3", "train.batch_size=8"]
TINY_ENCODER = ["net.width=4", "net.hidden=16", "net.out_dim=8", "buffer.size=32", "train.batch_size=8",
                "sampler.steps=2"]


def build(preset: str, info: DataInfo, sets: list[str], seed: int = 0):
    torch.manual_seed(seed)
    return build_method(resolve_spec(preset, sets), info, torch.device("cpu"))


# ----------------------------------------------------------------------------------------------- MSGLD


def test_msgld_noise_schedule_by_hand() -> None:
    visits = torch.tensor([0, 1, 2, 3, 7])
    sigma = msgld_noise(visits, 0.01, 0.05, 3.0)
    expected = [0.05, 0.01 + 0.04 * 2 / 3, 0.01 + 0.04 / 3, 0.01, 0.01]
    assert torch.allclose(sigma, torch.tensor(expected), atol=1e-7)


def test_sgld_takes_one_noise_level_per_chain() -> None:
    x = torch.zeros(3, 1, 100, 100)
    sigma = torch.tensor([0.0, 0.1, 1.0])
    out = sgld(lambda v: 0.0 * v.flatten(1).sum(1), x, steps=1, step_size=1.0, noise=sigma, pixel_clamp=None)
    stds = out.flatten(1).std(dim=1)
    assert stds[0] == 0
    assert stds[1] == pytest.approx(0.1, rel=0.05) and stds[2] == pytest.approx(1.0, rel=0.05)


def test_sgld_clamps_the_gradient_elementwise() -> None:
    x = torch.zeros(1, 4)
    out = sgld(lambda v: (v * torch.tensor([10.0, -10.0, 0.5, 0.0])).sum(1), x, steps=1, step_size=0.05,
               noise=0.0, grad_clamp=1.0, pixel_clamp=None)
    assert torch.allclose(out, torch.tensor([[-0.05, 0.05, -0.025, 0.0]]))


# ------------------------------------------------------------------------------------------ EBCLR loss


def _brute_force_ebclr(z1: np.ndarray, z2: np.ndarray, zn: np.ndarray, tau: float, l1: float, l2: float) -> float:
    def unit(a: np.ndarray) -> np.ndarray:
        return a / np.linalg.norm(a, axis=1, keepdims=True)

    def sim(a: np.ndarray, b: np.ndarray) -> float:
        return -float(np.sum((a - b) ** 2)) / tau

    n = len(z1)
    views = unit(np.concatenate([z1, z2]))
    contrastive = 0.0
    for a in range(2 * n):
        pos = (a + n) % (2 * n)
        denom = sum(math.exp(sim(views[a], views[k])) for k in range(2 * n) if k != a)
        contrastive -= math.log(math.exp(sim(views[a], views[pos])) / denom)
    contrastive /= 2 * n
    keys = unit(z2)

    def log_q(z: np.ndarray) -> float:
        return math.log(sum(math.exp(sim(unit(z[None])[0], k)) for k in keys))

    generative = (-np.mean([log_q(z) for z in z1]) + np.mean([log_q(z) for z in zn])
                  + l1 * (np.sum(z1**2) + np.sum(zn**2)))
    return contrastive + l2 * generative


def test_ebclr_loss_matches_a_brute_force_computation() -> None:
    g = torch.Generator().manual_seed(3)
    z1, z2, zn = (torch.randn(4, 3, generator=g, dtype=torch.float64) for _ in range(3))
    loss, parts = ebclr_loss(z1, z2, zn, temperature=0.1, lmda1=1e-3, lmda2=0.1)
    expected = _brute_force_ebclr(z1.numpy(), z2.numpy(), zn.numpy(), 0.1, 1e-3, 0.1)
    assert loss.item() == pytest.approx(expected, rel=1e-9)
    assert parts["generative"].item() != 0


def test_distance_similarity_nt_xent_equals_cosine_at_half_temperature() -> None:
    z = torch.randn(6, 5, dtype=torch.float64)
    logits = distance_logits(z, z, 0.2)
    logits.fill_diagonal_(float("-inf"))
    targets = torch.cat([torch.arange(3, 6), torch.arange(3)])
    direct = torch.nn.functional.cross_entropy(logits, targets)
    assert direct.item() == pytest.approx(nt_xent(z, 0.1).item(), rel=1e-10)


def test_log_density_by_hand() -> None:
    z = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    keys = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)  # distances^2 after normalising: 0, 2
    assert ebclr_log_density(z, keys, 0.5).item() == pytest.approx(math.log(1 + math.exp(-4.0)))


# ---------------------------------------------------------------------------------------------- EBCLR


def test_ebclr_fresh_slots_start_from_data_views_with_zero_visits() -> None:
    method = build("ebclr-digits", DIGITS, [*TINY_ENCODER, "buffer.reinit=0.0"])
    assert isinstance(method, Ebclr)
    x = torch.rand(8, 1, 16, 16)
    idx, x0, visits = method.draw_chains(x)
    assert (visits == 0).all()
    assert x0.min() >= -1 - 0.5 and x0.max() <= 1 + 0.5  # views in [-1, 1] plus noise 0.03
    method.buffer.write(idx, x0 + 0.25)
    assert (method.buffer.counts(idx) == 1).all()


def test_ebclr_reinit_resets_the_visit_count() -> None:
    method = build("ebclr-digits", DIGITS, [*TINY_ENCODER, "buffer.size=8", "buffer.reinit=1.0"])
    x = torch.rand(8, 1, 16, 16)
    idx, x0, _ = method.draw_chains(x)
    method.buffer.write(idx, x0)
    method.buffer.write(idx, x0)
    assert (method.buffer.counts(idx) == 2).all()
    idx2, _, visits = method.draw_chains(x)  # every chain restarts: counts drop to 0
    assert (visits == 0).all() and (method.buffer.counts(idx2) == 0).all()


def test_ebclr_step_and_exact_state_round_trip() -> None:
    method = build("ebclr-digits", DIGITS, TINY_ENCODER)
    x = torch.rand(8, 1, 16, 16)
    metrics = method.train_step(x)
    assert {"loss", "contrastive", "generative", "e_pos", "e_neg"} <= set(metrics)
    assert all(math.isfinite(v) for v in metrics.values())
    assert method.last_negatives is not None and method.last_negatives.min() >= 0
    tensors, meta = method.state_tensors(), method.state_meta()
    other = build("ebclr-digits", DIGITS, TINY_ENCODER, seed=5)
    other.load_state(tensors, meta)
    assert torch.equal(other.buffer.visits, method.buffer.visits)
    torch.manual_seed(1)
    a = method.train_step(x)
    torch.manual_seed(1)
    b = other.train_step(x)
    assert a == b


def test_ebclr_representation_is_the_backbone_on_the_model_range() -> None:
    method = build("ebclr-digits", DIGITS, TINY_ENCODER)
    x = torch.rand(3, 1, 16, 16)
    feats = method.representation(x)
    assert feats.shape == (3, 8 * 4)
    assert torch.allclose(feats, method.net.backbone(2 * x - 1))


# --------------------------------------------------------------------------------------------- SimCLR


def test_simclr_step_changes_the_encoder_and_probes_its_backbone() -> None:
    method = build("simclr-shapes", SHAPES, TINY_ENCODER)
    assert isinstance(method, Simclr)
    before = [p.detach().clone() for p in method.net.parameters()]
    metrics = method.train_step(torch.rand(8, 3, 16, 16))
    assert math.isfinite(metrics["loss"]) and metrics["loss"] > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, method.net.parameters(), strict=True))
    method.net.eval()
    x = torch.rand(2, 3, 16, 16)
    assert torch.allclose(method.representation(x), method.net.backbone(x))
    assert isinstance(method.model.optimizer, torch.optim.SGD)


# ----------------------------------------------------------------------------------------------- CEBM


def test_cebm_chains_live_in_minus_one_one_and_images_come_back_in_zero_one() -> None:
    method = build("cebm-digits", DIGITS, TINY_CEBM)
    assert isinstance(method, Cebm)
    assert method.sampler.pixel_clamp is None and method.chains.init_range == (-1.0, 1.0)
    metrics = method.train_step(torch.rand(8, 1, 16, 16))
    assert all(math.isfinite(v) for v in metrics.values())
    x = torch.rand(4, 1, 16, 16)
    assert torch.allclose(method.energy(x), method.net(2 * x - 1).sum(1))
    assert torch.allclose(method.representation(x), method.net.features(2 * x - 1))
    samples = method.sample(5, steps=2)
    assert samples.shape == (5, 1, 16, 16) and samples.min() >= 0 and samples.max() <= 1


def test_cebm_positive_energy_is_taken_on_rescaled_noisy_data() -> None:
    x = torch.rand(8, 1, 16, 16)
    clean = build("cebm-digits", DIGITS, [*TINY_CEBM, "method.data_noise=0.0", "method.l2=0.5"])
    expected = clean.net(2 * x - 1).mean().item()
    metrics = clean.train_step(x)
    assert metrics["e_pos"] == pytest.approx(expected, rel=1e-5)
    assert metrics["gap"] == pytest.approx(metrics["e_pos"] - metrics["e_neg"])
    assert metrics["loss"] >= metrics["gap"]  # plus 0.5 (mean E+^2 + mean E-^2) >= 0
    noisy = build("cebm-digits", DIGITS, [*TINY_CEBM, "method.data_noise=0.5"])
    assert noisy.train_step(x)["e_pos"] != pytest.approx(expected, rel=1e-3)


def test_cebm_mixture_means_travel_with_the_weights() -> None:
    method = build("cebmm-digits", DIGITS, TINY_CEBM, seed=0)
    weights = method.weight_tensors()
    means = [k for k in weights if k.endswith("bias_mean")]
    assert means and weights[means[0]].shape == (50, 6)
    other = build("cebmm-digits", DIGITS, TINY_CEBM, seed=9)
    x = torch.rand(4, 1, 16, 16)
    assert not torch.allclose(other.energy(x), method.energy(x))
    other.load_weights(weights)
    assert torch.allclose(other.energy(x), method.energy(x))


# ---------------------------------------------------------------------------------------------- specs


@pytest.mark.parametrize(("preset", "net"), [("simclr-shapes", "small_conv"), ("cebm-digits", "small_conv"),
                                             ("quickstart", "resnet18"), ("quickstart", "cebm_conv")])
def test_methods_refuse_nets_they_cannot_use(preset: str, net: str) -> None:
    with pytest.raises(SpecError):
        build(preset, SHAPES if "shapes" in preset or preset == "quickstart" else DIGITS, [f"net.name={net}"])


@pytest.mark.parametrize(("preset", "info", "override", "words"), [
    ("cebm-digits", DIGITS, "buffer.policy=fifo", "fixed slots"),
    ("cebm-digits", DIGITS, "buffer.size=4", "smaller than the batch"),
    ("ebclr-digits", DIGITS, "buffer.policy=reservoir", "fixed slots"),
])
def test_slot_methods_check_their_buffer_before_building(preset: str, info: DataInfo, override: str,
                                                         words: str) -> None:
    with pytest.raises(SpecError, match=words):
        build(preset, info, [*(TINY_CEBM if preset.startswith("cebm") else TINY_ENCODER), override])
