"""CLEL's losses, energies, optimiser schedules, slots buffer and training step against hand-computed cases."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ebmctl.checkpoints import load_tensors, save_tensors
from ebmctl.data import load_dataset, to_float
from ebmctl.losses.contrastive import nt_xent
from ebmctl.methods.clel import Clel, composed_energy, joint_energy, marginal_energy
from ebmctl.methods.energy_model import EnergyModel
from ebmctl.recipes import build_method, resolve_spec
from ebmctl.samplers.buffers import SlotBuffer, make_buffer

E = math.e

# ------------------------------------------------------------------------------------------------ NT-Xent

TWO_PAIRS = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])


def test_nt_xent_two_orthogonal_pairs():
    # Every anchor: its positive has cosine 1, the two views of the other image cosine 0:
    # -log(e / (e + 1 + 1)) = log(1 + 2/e).
    assert nt_xent(TWO_PAIRS, 1.0).item() == pytest.approx(math.log(1 + 2 / E), rel=1e-6)


def test_nt_xent_extra_negatives_join_every_anchors_denominator():
    # The extra negative (1, 0) has cosine 1 with anchors 0 and 2: -log(e / (e + 2 + e)) = log(2 + 2/e);
    # cosine 0 with anchors 1 and 3: -log(e / (e + 2 + 1)) = log(1 + 3/e).
    expected = (2 * math.log(2 + 2 / E) + 2 * math.log(1 + 3 / E)) / 4
    assert nt_xent(TWO_PAIRS, 1.0, torch.tensor([[1.0, 0.0]])).item() == pytest.approx(expected, rel=1e-6)


def test_nt_xent_divides_the_cosines_by_the_temperature():
    # tau = 0.5: the positive's logit is 2, the negatives' 0: -log(e^2 / (e^2 + 2)) = log(1 + 2/e^2).
    assert nt_xent(TWO_PAIRS, 0.5).item() == pytest.approx(math.log(1 + 2 / E**2), rel=1e-6)
    # and the inputs need not be normalised
    assert nt_xent(3.0 * TWO_PAIRS, 0.5).item() == pytest.approx(math.log(1 + 2 / E**2), rel=1e-6)


@pytest.mark.parametrize("shape", [(4,), (3, 2), (0, 2), (2, 2, 2)])
def test_nt_xent_rejects_views_that_are_not_pairs(shape):
    with pytest.raises(ValueError, match="views must be"):
        nt_xent(torch.ones(shape), 1.0)


def test_nt_xent_rejects_a_non_positive_temperature():
    with pytest.raises(ValueError, match="temperature"):
        nt_xent(TWO_PAIRS, 0.0)


def _brute_force_nt_xent(views: list[list[float]], tau: float, extra: list[list[float]]) -> float:
    def cos(a: list[float], b: list[float]) -> float:
        dot = sum(p * q for p, q in zip(a, b, strict=True))
        return dot / (math.sqrt(sum(p * p for p in a)) * math.sqrt(sum(q * q for q in b)))

    n = len(views) // 2
    total = 0.0
    for a in range(2 * n):
        positive = (a + n) % (2 * n)
        keys = [k for k in range(2 * n) if k != a]
        denominator = sum(math.exp(cos(views[a], views[k]) / tau) for k in keys)
        denominator += sum(math.exp(cos(views[a], e) / tau) for e in extra)
        total += -math.log(math.exp(cos(views[a], views[positive]) / tau) / denominator)
    return total / (2 * n)


@pytest.mark.parametrize(("n", "d", "m", "tau"), [(1, 3, 0, 0.2), (3, 5, 0, 1.0), (4, 8, 5, 0.2), (5, 2, 1, 0.7)])
def test_nt_xent_agrees_with_a_per_anchor_loop(n, d, m, tau):
    g = torch.Generator().manual_seed(n * 100 + m)
    views = torch.randn(2 * n, d, generator=g, dtype=torch.float64)
    extra = torch.randn(m, d, generator=g, dtype=torch.float64)
    expected = _brute_force_nt_xent(views.tolist(), tau, extra.tolist())
    got = nt_xent(views, tau, extra if m else None).item()
    assert got == pytest.approx(expected, rel=1e-9)


# ----------------------------------------------------------------------------------------------- energies


def test_marginal_joint_and_composed_energies_hand_computed():
    f = torch.tensor([[3.0, 4.0]])
    assert marginal_energy(f).tolist() == [12.5]
    # 12.5 - 0.5 * (1 * 0.6 + 0 * 0.8)
    assert joint_energy(f, torch.tensor([[1.0, 0.0]]), torch.tensor([[0.6, 0.8]]), 0.5).item() == pytest.approx(12.2)
    # 12.5 - 2 * (+1 * 0.6 - 1 * 0.8)
    u = torch.tensor([[0.6, 0.8]])
    latents, signs = torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([1.0, -1.0])
    assert composed_energy(f, u, latents, signs, 2.0).item() == pytest.approx(12.9)
    # the attribute latents are normalised first
    assert composed_energy(f, u, latents * torch.tensor([[2.0], [5.0]]), signs, 2.0).item() == pytest.approx(12.9)


def test_composed_energy_per_sample_latents_match_shared_latents():
    g = torch.Generator().manual_seed(0)
    f, u = torch.randn(5, 4, generator=g), F.normalize(torch.randn(5, 4, generator=g), dim=1)
    latents, signs = torch.randn(3, 4, generator=g), torch.tensor([1.0, -1.0, 1.0])
    shared = composed_energy(f, u, latents, signs, 0.3)
    per_sample = composed_energy(f, u, latents.expand(5, 3, 4), signs, 0.3)
    assert torch.allclose(shared, per_sample, atol=1e-6)
    # by hand for sample 0
    z = F.normalize(latents, dim=1)
    by_hand = 0.5 * f[0].pow(2).sum() - 0.3 * sum(signs[a] * (u[0] @ z[a]) for a in range(3))
    assert shared[0].item() == pytest.approx(by_hand.item(), rel=1e-5)
    # one latent and sign +1: the joint energy
    one = composed_energy(f, u, z[:1], torch.ones(1), 0.3)
    assert torch.allclose(one, joint_energy(f, u, z[:1].expand(5, 4), 0.3), atol=1e-6)


# ------------------------------------------------------------------------------ optimiser, schedules, EMA


def _scalar_net(w: float) -> nn.Linear:
    net = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        net.weight.fill_(w)
    return net


def test_linear_warmup_learning_rates():
    model = EnergyModel(_scalar_net(1.0), lr=0.4, warmup=4)
    assert [model.lr_at(u) for u in range(6)] == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.4, 0.4])


def test_cosine_learning_rates_and_torchs_scheduler():
    model = EnergyModel(_scalar_net(1.0), lr=0.4, cosine_steps=4)
    c = math.cos(math.pi / 4)
    expected = [0.4, 0.2 * (1 + c), 0.2, 0.2 * (1 - c), 0.0, 0.0]
    assert [model.lr_at(u) for u in range(6)] == pytest.approx(expected, abs=1e-12)
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=4)
    seen = []
    for _ in range(5):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx(expected[:5], abs=1e-12)


def test_the_schedule_is_the_learning_rate_of_each_update():
    net = _scalar_net(1.0)
    model = EnergyModel(net, lr=0.4, optimizer="sgd", warmup=4)
    x = torch.ones(1, 1)
    weights = [1.0]
    for _ in range(5):
        model.step(net(x).sum())  # gradient 1: plain SGD moves the weight by the learning rate
        weights.append(net.weight.item())
    moves = [a - b for a, b in itertools.pairwise(weights)]
    assert moves == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.4], rel=1e-6)
    assert model.updates == 5


def test_sgd_uses_momentum_and_weight_decay():
    net = _scalar_net(1.0)
    model = EnergyModel(net, lr=0.1, optimizer="sgd", momentum=0.9, weight_decay=0.1)
    assert isinstance(model.optimizer, torch.optim.SGD)
    x = torch.full((1, 1), 2.0)  # d(2w)/dw = 2
    model.step(net(x).sum())
    # g1 = 2 + 0.1 * 1 = 2.1; buffer 2.1; w1 = 1 - 0.1 * 2.1
    assert net.weight.item() == pytest.approx(0.79, rel=1e-6)
    model.step(net(x).sum())
    # g2 = 2 + 0.1 * 0.79 = 2.079; buffer 0.9 * 2.1 + 2.079 = 3.969; w2 = 0.79 - 0.3969
    assert net.weight.item() == pytest.approx(0.3931, rel=1e-6)


def test_adam_weight_decay_and_unknown_optimizer():
    model = EnergyModel(_scalar_net(1.0), lr=1e-3, betas=(0.0, 0.9), weight_decay=0.25)
    assert isinstance(model.optimizer, torch.optim.Adam)
    assert model.optimizer.param_groups[0]["weight_decay"] == 0.25
    assert model.optimizer.param_groups[0]["betas"] == (0.0, 0.9)
    with pytest.raises(ValueError, match="unknown optimizer"):
        EnergyModel(_scalar_net(1.0), lr=1e-3, optimizer="lamb")


def test_ema_copies_the_weights_then_averages():
    net = _scalar_net(1.0)
    model = EnergyModel(net, lr=0.1, optimizer="sgd", ema=0.5, ema_start=2)
    x = torch.ones(1, 1)
    ema = []
    for _ in range(4):
        model.step(net(x).sum())  # w: 0.9, 0.8, 0.7, 0.6
        ema.append(model.ema_net.weight.item())
    # copies for updates 1 and 2, then 0.5 * 0.8 + 0.5 * 0.7 = 0.75 and 0.5 * 0.75 + 0.5 * 0.6 = 0.675
    assert ema == pytest.approx([0.9, 0.8, 0.75, 0.675], rel=1e-6)
    assert net.weight.item() == pytest.approx(0.6, rel=1e-6)


def test_updates_survive_a_state_round_trip():
    net = _scalar_net(1.0)
    model = EnergyModel(net, lr=0.4, optimizer="sgd", warmup=4, ema=0.5, ema_start=2)
    for _ in range(3):
        model.step(net(torch.ones(1, 1)).sum())
    other = EnergyModel(_scalar_net(5.0), lr=0.4, optimizer="sgd", warmup=4, ema=0.5, ema_start=2)
    other.load_state(model.state_tensors(), model.state_meta())
    assert other.updates == 3 and other.net.weight.item() == pytest.approx(net.weight.item())
    assert other.ema_net.weight.item() == pytest.approx(model.ema_net.weight.item())


# ---------------------------------------------------------------------------------------------- SlotBuffer


def test_slot_buffer_starts_full_of_uniform_noise_in_its_range():
    torch.manual_seed(0)
    buf = SlotBuffer(500, quantize=False, value_range=(-1.0, 2.0))
    assert len(buf) == 0
    idx, x = buf.draw(3, (2, 4, 4))
    assert len(buf) == 500 and buf.storage.shape == (500, 2, 4, 4)
    values = buf.storage.flatten()
    assert values.min() >= -1.0 and values.max() <= 2.0
    assert abs(values.mean().item() - 0.5) < 0.05 and abs(values.var().item() - 9 / 12) < 0.05
    assert torch.equal(x, buf.storage[idx])
    assert buf.visits.tolist() == [0] * 500
    quantized = SlotBuffer(50, quantize=True, value_range=(-1.0, 2.0))
    _, q = quantized.draw(50, (3,))
    assert quantized.storage.dtype == torch.uint8 and q.min() >= -1.0 and q.max() <= 2.0


def test_slot_buffer_draws_distinct_slots_and_writes_back_into_them():
    torch.manual_seed(1)
    buf = make_buffer("slots", 10, quantize=False)
    assert isinstance(buf, SlotBuffer)
    idx, _ = buf.draw(10, (1,))
    assert sorted(idx.tolist()) == list(range(10))  # all ten, each once
    idx, _ = buf.draw(4, (1,))
    assert len(set(idx.tolist())) == 4
    before = buf.storage.clone()
    states = torch.tensor([[10.0], [11.0], [12.0], [13.0]])
    buf.write(idx, states)
    assert torch.equal(buf.storage[idx], states)
    others = torch.ones(10, dtype=torch.bool)
    others[idx] = False
    assert torch.equal(buf.storage[others], before[others])
    assert buf.counts(idx).tolist() == [1, 1, 1, 1]
    assert int(buf.visits.sum()) == 4 and buf.visits[others].tolist() == [0] * 6
    buf.write(idx[:2], states[:2])
    assert buf.counts(idx).tolist() == [2, 2, 1, 1]
    with pytest.raises(ValueError, match="cannot draw 11"):
        buf.draw(11, (1,))


def test_slot_buffer_state_round_trip_keeps_the_visits():
    torch.manual_seed(2)
    buf = SlotBuffer(6, quantize=True)
    idx, x = buf.draw(3, (1, 2, 2))
    buf.write(idx, x)
    buf.write(idx[:1], x[:1])
    tensors, meta = buf.state_tensors(), buf.state_meta()
    assert meta == {"policy": "slots", "capacity": 6, "size": 6, "seen": 6}
    other = SlotBuffer(6, quantize=True)
    other.load_state(tensors, meta)
    assert torch.equal(other.storage, buf.storage) and torch.equal(other.visits, buf.visits)
    assert other.counts(idx).tolist() == [2, 1, 1]
    with pytest.raises(ValueError, match="slots/6"):
        SlotBuffer(5).load_state(tensors, meta)


def test_slot_buffer_add_overwrites_slots_without_counting_visits():
    torch.manual_seed(3)
    buf = SlotBuffer(4, quantize=False)
    buf.add(torch.full((2, 1), 7.0))
    assert len(buf) == 4 and int((buf.storage == 7.0).sum()) in (1, 2)
    assert int(buf.visits.sum()) == 0


# ------------------------------------------------------------------------------------------ the CLEL step

TINY = [
    "net.channels=[8,8]", "net.blocks=[1,1]", "net.hidden=32", "net.latent_dim=16", "method.encoder.width=4",
    "method.encoder.hidden=32", "method.encoder.out_dim=16", "train.batch_size=8", "buffer.size=64",
    "sampler.steps=2", "method.warmup=1",
]  # fmt: skip


def _tiny_clel(seed: int) -> Clel:
    torch.manual_seed(seed)
    spec = resolve_spec("clel-shapes", TINY)
    method = build_method(spec, load_dataset("shapes32").info, torch.device("cpu"))
    assert isinstance(method, Clel)
    return method


@pytest.fixture(scope="module")
def batch() -> torch.Tensor:
    ds = load_dataset("shapes32")
    return to_float(ds.get_batch(torch.arange(8))[0], dequantize=False)


def _params(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def test_a_clel_step_trains_both_nets_and_visits_the_drawn_slots(batch):
    method = _tiny_clel(0)
    buffer = method.chains.buffer
    assert isinstance(buffer, SlotBuffer) and buffer.capacity == 64
    drawn = []
    draw = buffer.draw
    buffer.draw = lambda n, shape, generator=None: drawn.append(draw(n, shape, generator)) or drawn[-1]
    ebm, encoder = _params(method.net), _params(method.encoder.net)
    torch.manual_seed(1)
    metrics = method.train_step(batch)
    assert set(metrics) >= {"loss", "loss_ebm", "loss_le", "e_pos", "e_neg", "gap", "s_pos", "grad_norm"}
    assert all(math.isfinite(v) for v in metrics.values())
    assert metrics["loss"] == pytest.approx(metrics["loss_ebm"] + metrics["loss_le"])
    [(idx, _)] = drawn
    assert len(set(idx.tolist())) == 8
    assert buffer.counts(idx).tolist() == [1] * 8 and int(buffer.visits.sum()) == 8
    assert torch.equal(buffer.storage[idx], method.last_negatives.detach().cpu())
    assert any(not torch.equal(v, ebm[k]) for k, v in method.net.named_parameters())
    assert any(not torch.equal(v, encoder[k]) for k, v in method.encoder.net.named_parameters())
    assert method.model.updates == 1 and method.encoder.updates == 1
    # the EMA copies both nets during the first halflife / batch = 2500 updates
    for live, ema in ((method.net, method.model.ema_net), (method.encoder.net, method.encoder.ema_net)):
        for (name, p), q in zip(live.named_parameters(), ema.parameters(), strict=True):
            assert torch.equal(p, q), name


def test_ood_scores_are_the_energy_and_the_joint_energy_by_hand(batch):
    method = _tiny_clel(0)
    torch.manual_seed(1)
    method.train_step(batch)
    beta = 0.7
    scores = method.ood_scores(batch, ["energy", "joint"], beta=beta)
    net, encoder = method.model.ema_net.eval(), method.encoder.ema_net.eval()
    with torch.no_grad():
        f, _ = net.f_and_latent(batch)
        g = net.projection(f / f.norm(dim=1, keepdim=True))
        h = encoder(batch)
        cos = F.cosine_similarity(g, h, dim=1)
        half_sq = 0.5 * f.pow(2).sum(dim=1)
    assert torch.allclose(scores["energy"], -half_sq, rtol=1e-5, atol=1e-7)
    assert torch.allclose(scores["joint"], -(half_sq - beta * cos), rtol=1e-5, atol=1e-6)
    spec = resolve_spec("clel-shapes", TINY)
    assert method.ood_beta == spec.method.ood_beta
    default = method.ood_scores(batch, ["joint"])["joint"]  # beta = method.ood_beta
    assert torch.allclose(default, -(half_sq - spec.method.ood_beta * cos), rtol=1e-5, atol=1e-6)


def test_conditional_energy_with_one_latent_is_the_joint_energy(batch):
    method = _tiny_clel(0)
    z = method.encode(batch[:1], augment=False)[0]
    assert z.norm().item() == pytest.approx(1.0, rel=1e-5)
    energy = method.conditional_energy(z[None], beta=0.3)
    with torch.no_grad():
        f, u = method.model.ema_net.eval().f_and_latent(batch)
        expected = joint_energy(f, u, z.expand(8, -1), 0.3)
        got = energy(batch)
    assert torch.allclose(got, expected, rtol=1e-5, atol=1e-6)
    spec = resolve_spec("clel-shapes", TINY)
    assert method.guidance == spec.method.guidance  # the preset's guidance weighs the latent term
    with torch.no_grad():
        default = method.conditional_energy(z[None])(batch)
    assert torch.allclose(default, joint_energy(f, u, z.expand(8, -1), spec.method.guidance), rtol=1e-5, atol=1e-6)
    unset = resolve_spec("clel-shapes", [*TINY, "method.guidance=none"])
    assert unset.method.guidance is None  # then the latent term takes beta
    assert build_method(unset, load_dataset("shapes32").info, torch.device("cpu")).guidance == unset.method.beta


def test_a_saved_state_reproduces_the_next_step_exactly(batch, tmp_path):
    method = _tiny_clel(0)
    torch.manual_seed(1)
    method.train_step(batch)
    path = tmp_path / "state.safetensors"
    save_tensors(path, method.state_tensors(), {"method": method.state_meta()})
    tensors, meta = load_tensors(path)
    fresh = _tiny_clel(123)
    assert any(not torch.equal(p, q) for p, q in zip(fresh.net.parameters(), method.net.parameters(), strict=True))
    fresh.load_state(tensors, meta["method"])
    assert fresh.model.updates == 1 and fresh.encoder.updates == 1
    assert torch.equal(fresh.chains.buffer.visits, method.chains.buffer.visits)
    torch.manual_seed(2)
    expected = method.train_step(batch)
    torch.manual_seed(2)
    got = fresh.train_step(batch)
    assert got == expected
    for a, b in ((method.net, fresh.net), (method.encoder.net, fresh.encoder.net)):
        for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
            assert torch.equal(p, q), name
    assert torch.equal(method.chains.buffer.storage, fresh.chains.buffer.storage)


@pytest.mark.parametrize(("projection", "layer"), [("mlp", nn.Sequential), ("linear", nn.Linear), ("identity", nn.Identity)])
def test_table5_projection_switch_reaches_the_net_and_trains(projection, layer, batch):
    torch.manual_seed(0)
    spec = resolve_spec("clel-shapes", [*TINY, f"net.projection={projection}"])
    method = build_method(spec, load_dataset("shapes32").info, torch.device("cpu"))
    assert isinstance(method.model.net.projection, layer)
    metrics = method.train_step(batch)
    assert math.isfinite(metrics["loss_ebm"]) and -1.0 <= metrics["s_pos"] <= 1.0


def test_the_latent_and_encoder_dimensions_must_match():
    from ebmctl.errors import SpecError

    spec = resolve_spec("clel-shapes", [*TINY, "method.encoder.out_dim=32"])
    with pytest.raises(SpecError, match="latent_dim"):
        build_method(spec, load_dataset("shapes32").info, torch.device("cpu"))


@pytest.mark.parametrize(("preset", "reference"), [("clel-small", "train"), ("clel-base", "train"),
                                                   ("clel-large", "train"), ("clel-imagenet32", "held_out")])
def test_paper_presets_score_50k_samples_as_the_released_test_fid(preset, reference):
    from types import SimpleNamespace

    from ebmctl.services.sample import SampleOptions, _settings

    spec = resolve_spec(preset)
    assert (spec.eval.fid_samples, spec.eval.fid_reference) == (50_000, reference)
    run = SimpleNamespace(spec=spec, method=SimpleNamespace(has_ema=False))
    # --fid alone draws the protocol's 50k; a plain sample stays a quick look; --n still wins
    assert _settings(run, SampleOptions(fid=True))["n"] == 50_000
    assert _settings(run, SampleOptions())["n"] == spec.sample.n == 64
    assert _settings(run, SampleOptions(fid=True, n=2000))["n"] == 2000
