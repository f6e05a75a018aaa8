"""`ebmctl import --from clel`: a checkpoint written the way hankook/CLEL's training writes it (its EBM and encoder
re-derived here from the released definitions: key names, shapes, spectral norm, the CIFAR stem; random weights)
becomes a run whose energies, latents and encoder outputs equal the released computation's."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn

from ebmctl.methods.capabilities import chain_buffer
from ebmctl.runs import resolve_run
from ebmctl.services.runtime.loading import load_replay_buffer, load_run

MEAN, STD = [0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]


class Normalize(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(MEAN))
        self.register_buffer("std", torch.tensor(STD))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean.view(1, -1, 1, 1)) / self.std.view(1, -1, 1, 1)


def mlp(dims: list[int], act, bn: bool = False, bias: bool = True) -> nn.Sequential:
    """architectures.get_mlp."""
    layers: list[nn.Module] = []
    for i in range(len(dims) - 1):
        last = i == len(dims) - 2
        layers.append(nn.Linear(dims[i], dims[i + 1], bias=bias if last else (not bn and bias)))
        if not last:
            layers += [nn.BatchNorm1d(dims[i + 1])] if bn else []
            layers.append(act())
    return nn.Sequential(*layers)


class ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(c_in, c_out, 3, 1, 1), nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.act = nn.LeakyReLU(0.2)
        self.shortcut = nn.Conv2d(c_in, c_out, 1, 1, bias=False) if c_in != c_out else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.conv2(self.act(self.conv1(self.act(x)))) + self.shortcut(x)


class ReleasedEbm(nn.Module):
    """architectures.ResNet with spectral norm on every conv: (f, z) = (head(pool(stages(stem(x)))), g(f))."""

    def __init__(self, layers: list[tuple[int, int]], projection: list[int]) -> None:
        super().__init__()
        c_in = layers[0][0]
        self.stem = nn.Sequential(Normalize(), nn.Conv2d(3, c_in, 3, 1, 1))
        stages = []
        for i, (c, n) in enumerate(layers):
            stage: list[nn.Module] = [nn.AvgPool2d(2)] if i > 0 else []
            for _ in range(n):
                stage.append(ResBlock(c_in, c))
                c_in = c
            stages.append(nn.Sequential(*stage))
        self.stages = nn.Sequential(*stages)
        self.act = nn.LeakyReLU(0.2)
        self.head = mlp([c_in, 64, projection[0]], lambda: nn.LeakyReLU(0.2))
        self.projection = mlp(projection, lambda: nn.LeakyReLU(0.2), bias=False)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.utils.parametrizations.spectral_norm(m)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        out = F.adaptive_avg_pool2d(self.act(self.stages(self.stem(x))), 1).flatten(1)
        f = self.head(out)
        return f, self.projection(f)


def released_encoder(out_dim: int) -> nn.Module:
    """architectures.get_encoder('resnet18') at 32 px: a CIFAR stem after Normalize, no max-pool, a BN MLP head."""
    encoder = torchvision.models.resnet18(zero_init_residual=True)
    encoder.fc = mlp([512, 128, out_dim], nn.ReLU, bn=True)
    encoder.conv1 = nn.Sequential(Normalize(), nn.Conv2d(3, 64, 3, 1, 1, bias=False))
    encoder.maxpool = nn.Identity()
    return encoder


def _moved(module: nn.Module) -> nn.Module:
    """Non-trivial spectral-norm vectors and BN statistics, as after training."""
    module.train()
    with torch.no_grad():
        module(torch.rand(8, 3, 32, 32))
        for p in module.parameters():
            p.add_(0.01 * torch.randn_like(p))
    return module.eval()




@pytest.fixture
def released(tmp_path):
    torch.manual_seed(0)
    layers, projection = [(16, 1), (16, 1), (32, 1), (32, 1)], [32, 64, 32]
    parts = {"ebm": _moved(ReleasedEbm(layers, projection)), "ema_ebm": _moved(ReleasedEbm(layers, projection)),
             "encoder": _moved(released_encoder(32)), "ema_encoder": _moved(released_encoder(32))}
    model = {f"{name}.{k}": v for name, module in parts.items() for k, v in module.state_dict().items()}
    model["sampler.memory"] = torch.rand(64, 3, 32, 32)
    path = tmp_path / "last.ckpt"
    torch.save({"model": model, "optimizers": [{}, {}], "schedulers": [{}, {}],
                "engine": {"epoch_length": 781, "iteration": 2000, "max_iters": 100000, "fid": (50.0, 40.0)}}, path)
    return path, parts


def test_an_imported_clel_computes_the_released_energies_latents_and_encoder_outputs(tmp_path, released, cli_json):
    path, parts = released
    code, doc = cli_json("import", "--from", "clel", str(path), "--preset", "clel-shapes")
    assert code == 0 and doc["step"] == 2000 and any(u.startswith("sampler.memory") for u in doc["used"])
    run = load_run(resolve_run(doc["run"], cli_json.runs), torch.device("cpu"))
    assert run.spec.net.channels == (16, 16, 32, 32) and run.spec.net.blocks == (1, 1, 1, 1)
    assert run.spec.net.hidden == 64 and run.spec.method.encoder.hidden == 128
    load_replay_buffer(run)  # the released chains, where `sample --init buffer` starts
    memory = torch.load(path, weights_only=True)["model"]["sampler.memory"]
    assert torch.equal(chain_buffer(run.method).storage, memory) and run.spec.buffer.size == 64

    x = torch.rand(4, 3, 32, 32)
    for ema in (True, False):
        ebm = parts["ema_ebm" if ema else "ebm"]
        encoder = parts["ema_encoder" if ema else "encoder"]
        with torch.no_grad():
            f, z = ebm(x)
            features = encoder(x)
        assert torch.allclose(run.method.energy(x, ema=ema), f.pow(2).sum(1) / 2, rtol=1e-5, atol=1e-5)
        net = run.method.model.eval_net(ema)
        with torch.no_grad():
            mine_f, latent = net.f_and_latent(x)
            mine_features = run.method.encoder.eval_net(ema)(x)
        assert torch.allclose(mine_f, f, atol=1e-5) and torch.allclose(latent, F.normalize(z), atol=1e-5)
        assert torch.allclose(mine_features, features, atol=1e-5)


def test_an_imported_clel_samples_composes_and_scores_ood_through_the_cli(tmp_path, released, cli_json):
    path, _ = released
    code, doc = cli_json("import", "--from", "clel", str(path), "--preset", "clel-shapes",
                     "--set", "eval.attribute_judge_steps=60", "--set", "method.latent_examples=20")
    assert code == 0
    code, sampled = cli_json("sample", "--run", doc["run"], "--n", "4", "--steps", "2")
    assert code == 0 and sampled["n"] == 4
    code, continued = cli_json("sample", "--run", doc["run"], "--n", "4", "--steps", "2", "--init", "buffer")
    assert code == 0 and continued["n"] == 4  # the released chains (sampler.memory) go on
    code, scored = cli_json("ood", "--run", doc["run"], "--in", "shapes32", "--out", "constant", "--n", "16")
    assert code == 0 and {r["score"] for r in scored["results"]} >= {"energy", "joint"}
    code, _ = cli_json("train", "--resume", doc["run"])
    assert code == 2 and "imported from" in cli_json.err and "ebmctl train --preset clel-shapes" in cli_json.err
    code, composed = cli_json("compose", "--run", doc["run"], "--attrs", "circle,red", "--n", "4", "--steps", "2")
    assert code == 0 and composed["n"] == 4


class ReleasedMultiScaleEbm(nn.Module):
    """architectures.MSResNet (CLEL large): three stems and stage stacks on x, x pooled by 2 and by 4, their pooled
    features concatenated into one head."""

    def __init__(self, layers: list[tuple[int, int]], projection: list[int]) -> None:
        super().__init__()
        for s in (1, 2, 3):
            single = ReleasedEbm(layers, projection)
            setattr(self, f"stem{s}", single.stem)
            setattr(self, f"stages{s}", single.stages)
        self.act = nn.LeakyReLU(0.2)
        self.head = mlp([3 * layers[-1][0], 64, projection[0]], lambda: nn.LeakyReLU(0.2))
        self.projection = mlp(projection, lambda: nn.LeakyReLU(0.2), bias=False)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        outs = [getattr(self, f"stages{s}")(getattr(self, f"stem{s}")(F.avg_pool2d(x, k) if k > 1 else x))
                for s, k in ((1, 1), (2, 2), (3, 4))]
        f = self.head(torch.cat([F.adaptive_avg_pool2d(self.act(o), 1).flatten(1) for o in outs], dim=1))
        return f, self.projection(f)


def test_the_three_scale_large_model_maps_onto_ebmctls_trunks(tmp_path, cli_json):
    torch.manual_seed(1)
    layers, projection = [(16, 1), (16, 1), (16, 1), (16, 1)], [32, 64, 32]
    ebm, ema = _moved(ReleasedMultiScaleEbm(layers, projection)), _moved(ReleasedMultiScaleEbm(layers, projection))
    encoders = [_moved(released_encoder(32)) for _ in range(2)]
    model = {f"{name}.{k}": v for name, module in (("ebm", ebm), ("ema_ebm", ema), ("encoder", encoders[0]),
                                                   ("ema_encoder", encoders[1]))
             for k, v in module.state_dict().items()}
    path = tmp_path / "best.ckpt"
    torch.save({"model": model, "engine": {"iteration": 10}}, path)
    code, doc = cli_json("import", "--from", "clel", str(path), "--preset", "clel-shapes")
    assert code == 0
    run = load_run(resolve_run(doc["run"], cli_json.runs), torch.device("cpu"))
    assert run.spec.net.scales == 3
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        f, z = ema(x)
        mine_f, latent = run.method.model.eval_net(True).f_and_latent(x)
    assert torch.allclose(mine_f, f, atol=1e-5) and torch.allclose(latent, F.normalize(z), atol=1e-5)
