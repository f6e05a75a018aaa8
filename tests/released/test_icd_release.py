"""`ebmctl import --from icd`: a checkpoint written the way yilundu/improved_contrastive_divergence's ``train.py``
writes it (torch 1.4's legacy format, its ``ResNetModel`` re-derived here from the released definitions' key names
and shapes with random weights, an ``easydict.EasyDict`` of flags, a numpy inception score) becomes a run whose
energies equal the released computation's, per scale and summed."""

from __future__ import annotations

import json
import os
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ebmctl.runs import resolve_run
from ebmctl.services.runtime.loading import load_run


def swish(x: Tensor) -> Tensor:
    return x * torch.sigmoid(x)


class WSConv2d(nn.Conv2d):
    """The release's weight-standardised conv: weights centred per filter and divided by their std + 1e-5."""

    def forward(self, x: Tensor) -> Tensor:
        w = self.weight - self.weight.mean(dim=(1, 2, 3), keepdim=True)
        w = w / (w.flatten(1).std(dim=1).view(-1, 1, 1, 1) + 1e-5)
        return F.conv2d(x, w, self.bias, self.stride, self.padding)


class SelfAttn(nn.Module):
    """SAGAN attention: ``query_conv``/``key_conv`` to C/8, ``value_conv``, ``gamma``; returns (out, attention)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.query_conv, self.key_conv = nn.Conv2d(c, c // 8, 1), nn.Conv2d(c, c // 8, 1)
        self.value_conv = nn.Conv2d(c, c, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        b, c, h, w = x.shape
        q = self.query_conv(x).view(b, -1, h * w).permute(0, 2, 1)
        attention = torch.softmax(torch.bmm(q, self.key_conv(x).view(b, -1, h * w)), dim=-1)
        out = torch.bmm(self.value_conv(x).view(b, -1, h * w), attention.permute(0, 2, 1)).view(b, c, h, w)
        return self.gamma * out + x, attention


def blur(channels: int) -> Tensor:
    a = torch.tensor([1.0, 2.0, 1.0])
    filt = a[:, None] * a[None, :]
    return (filt / filt.sum())[None, None].repeat(channels, 1, 1, 1)


class CondResBlock(nn.Module):
    """``bn1``/``bn2`` (InstanceNorm up to 128 filters, else GroupNorm(32); none without --norm), ``conv1``/``conv2``
    (WSConv2d, or spectral norm), ``latent_map``/``latent_map_2`` FiLM maps from ``classes`` inputs, and when
    downsampling ``conv_downsample`` (to 2F when rescaling) + AvgPool(3, 2, 1); ``x_out = act(...) + x``."""

    def __init__(self, filters: int, *, downsample: bool = True, rescale: bool = True, norm: bool = True,
                 spec_norm: bool = False, classes: int = 10) -> None:
        super().__init__()
        self.filters, self.downsample = filters, downsample

        def normed() -> nn.Module | None:
            if not norm:
                return None
            return nn.InstanceNorm2d(filters, affine=True) if filters <= 128 else nn.GroupNorm(32, filters)

        def conv() -> nn.Module:
            if spec_norm:
                return nn.utils.spectral_norm(nn.Conv2d(filters, filters, 3, 1, 1))
            return WSConv2d(filters, filters, 3, 1, 1)

        self.bn1, self.conv1, self.bn2, self.conv2 = normed(), conv(), normed(), conv()
        self.latent_map, self.latent_map_2 = nn.Linear(classes, 2 * filters), nn.Linear(classes, 2 * filters)
        if downsample:
            self.conv_downsample = nn.Conv2d(filters, 2 * filters if rescale else filters, 3, 1, 1)
            self.avg_pool = nn.AvgPool2d(3, stride=2, padding=1)

    def _half(self, x: Tensor, conv: nn.Module, bn: nn.Module | None, film: nn.Linear, y: Tensor | None) -> Tensor:
        x = conv(x)
        if bn is not None:
            x = bn(x)
        if y is not None:
            gain, bias = film(y).view(-1, 2 * self.filters, 1, 1).split(self.filters, dim=1)
            x = gain * x + bias
        return swish(x)

    def forward(self, x: Tensor, y: Tensor | None) -> Tensor:
        h = self._half(self._half(x, self.conv1, self.bn1, self.latent_map, y), self.conv2, self.bn2,
                       self.latent_map_2, y)
        out = h + x
        return swish(self.avg_pool(self.conv_downsample(out))) if self.downsample else out


class ResNetModel(nn.Module):
    """The CIFAR-10 model: ``conv1`` + ``res_1a..res_4b`` + ``self_attn`` (after stage 2, built always) +
    ``energy_map``; with --multiscale ``mid_*`` (3 stages on the image pooled once) and ``small_*`` (2 stages,
    pooled twice); energies concatenated [small, mid, large]; blur buffers ``downsample``/``avg_pool`` unused."""

    def __init__(self, flags: dict[str, Any]) -> None:
        super().__init__()
        self.flags = flags
        f = flags["filter_dim"]
        kw = {"norm": flags["norm"], "spec_norm": flags["spec_norm"]}
        widths = (f, f, 2 * f, 4 * f)
        for prefix, stages in (("", 4), ("mid_", 3), ("small_", 2))[: 3 if flags["multiscale"] else 1]:
            setattr(self, f"{prefix}conv1", nn.Conv2d(3, f, 3, 1, 1))
            for s in range(stages):
                setattr(self, f"{prefix}res_{s + 1}a", CondResBlock(widths[s], downsample=False, **kw))
                setattr(self, f"{prefix}res_{s + 1}b", CondResBlock(widths[s], rescale=s > 0, **kw))
            if not prefix:
                self.self_attn = SelfAttn(2 * f)
            setattr(self, f"{prefix}energy_map", nn.Linear(2 * widths[stages - 1], 1))
        self.downsample = nn.Module()
        self.downsample.register_buffer("filt", blur(3))
        if flags["multiscale"]:
            self.avg_pool = nn.Module()
            self.avg_pool.register_buffer("filt", blur(3))

    def _branch(self, prefix: str, stages: int, x: Tensor, y: Tensor | None) -> Tensor:
        x = swish(getattr(self, f"{prefix}conv1")(x))
        for s in range(stages):
            x = getattr(self, f"{prefix}res_{s + 1}b")(getattr(self, f"{prefix}res_{s + 1}a")(x, y), y)
            if not prefix and s == 1 and self.flags["self_attn"]:
                x, _ = self.self_attn(x)
        return getattr(self, f"{prefix}energy_map")(swish(x).mean(dim=(2, 3)))

    def forward(self, x: Tensor, latent: Tensor | None) -> Tensor:
        y = latent if self.flags["cond"] else None
        energy = self._branch("", 4, x, y)
        if not self.flags["multiscale"]:
            return energy
        half = F.avg_pool2d(x, 3, stride=2, padding=1)
        quarter = F.avg_pool2d(half, 3, stride=2, padding=1)
        return torch.cat([self._branch("small_", 2, quarter, y), self._branch("mid_", 3, half, y), energy], dim=-1)


def _moved(model: nn.Module) -> nn.Module:
    """Random non-default weights (attention on, norms off their init) and moved spectral-norm vectors."""
    model.train()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
        model(torch.rand(2, 3, 32, 32), F.one_hot(torch.tensor([1, 2]), 10).float())
    return model.eval()


class EasyDict(dict):
    """easydict 1.9's EasyDict, as far as pickling goes: every item is also an attribute."""

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        super().__setitem__(name, value)

    __setitem__ = __setattr__


FLAGS = {"dataset": "cifar10", "filter_dim": 64, "multiscale": True, "self_attn": True, "norm": True,
         "spec_norm": False, "cond": False, "alias": False, "square_energy": False, "sigmoid": False, "ensembles": 1,
         "step_lr": 100.0, "num_steps": 40, "kl": True, "kl_coeff": 1.0, "exp": "cifar10_model", "resume_iter": 0,
         "logdir": "cachedir", "im_size": 32, "lr": 0.0003, "gpus": 1, "helpfull": None}


@pytest.fixture
def easydict(monkeypatch):
    """An ``easydict`` module for pickle to name, as the released environment has."""
    module = types.ModuleType("easydict")
    EasyDict.__module__ = "easydict"
    module.EasyDict = EasyDict
    monkeypatch.setitem(sys.modules, "easydict", module)
    return EasyDict


def _save(path: Path, flags: dict[str, Any], models: list[nn.Module], emas: list[nn.Module], *, restarted: bool = False,
          legacy: bool = True, extra: dict[str, Any] | None = None) -> None:
    """train.py's save: FLAGS as an EasyDict (after a --resume_iter restart, with the bound methods its
    ``for key in dir(FLAGS)`` loop picks up), Adam's state, a numpy inception score, model and EMA per ensemble."""
    easy = EasyDict()
    for k, v in flags.items():
        easy[k] = v
    if restarted:
        old = EasyDict()
        for key in dir(easy):
            if "__" not in key:
                old[key] = getattr(easy, key)
        easy = old
    params = list({id(p): p for m in models for p in m.parameters()}.values())
    optimizer = torch.optim.Adam(params, lr=flags["lr"], betas=(0.0, 0.9))
    ckpt = {"optimizer_state_dict": optimizer.state_dict(), "FLAGS": easy, "best_inception": np.float64(6.25)}
    for i, (model, ema) in enumerate(zip(models, emas, strict=True)):
        ckpt[f"model_state_dict_{i}"] = model.state_dict()
        ckpt[f"ema_model_state_dict_{i}"] = ema.state_dict()
    torch.save(ckpt | (extra or {}), path, _use_new_zipfile_serialization=not legacy, pickle_protocol=2)


def _released(flags: dict[str, Any], seed: int) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(seed)
    return _moved(ResNetModel(flags)), _moved(ResNetModel(flags))


def _energies(run: Any, ema: bool, x: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor]:
    net = run.method.model.eval_net(ema)
    with torch.no_grad():
        return net(x, y), run.method.energy(x, y, ema=ema)


def test_the_readme_model_imports_with_its_ema_and_computes_the_released_energies(tmp_path, easydict, cli_json):
    model, ema = _released(FLAGS, 0)
    path = tmp_path / "model_1000.pth"
    _save(path, FLAGS, [model], [ema])
    assert not path.read_bytes().startswith(b"PK")  # torch 1.4's legacy format
    code, doc = cli_json("import", "--from", "icd", str(path))
    assert code == 0 and doc["preset"] == "icd-cifar10" and doc["step"] == 1000
    assert any("optimizer_state_dict" in d for d in doc["dropped"]) and any("6.250" in d for d in doc["dropped"])
    run = load_run(resolve_run(doc["run"], cli_json.runs), torch.device("cpu"))
    assert (run.spec.net.width, run.spec.net.multiscale, run.spec.net.self_attn) == (64, True, True)
    assert sum(p.numel() for p in run.method.model.net.parameters()) == 6_643_044

    x = torch.rand(4, 3, 32, 32)
    for released, use_ema in ((model, False), (ema, True)):
        with torch.no_grad():
            want = released(x, None)
        scales, total = _energies(run, use_ema, x)
        assert torch.allclose(scales, want.flip(1), rtol=1e-5, atol=1e-5)  # [full, half, quarter]
        assert torch.allclose(total, want.sum(1), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", ["conditional, spectral norm", "single scale, no attention, no norm"])
def test_other_architectures_follow_their_flags(tmp_path, easydict, cli_json, case):
    changed = ({"cond": True, "spec_norm": True} if case.startswith("conditional")
               else {"multiscale": False, "self_attn": False, "norm": False})
    flags = FLAGS | {"filter_dim": 8} | changed
    model, ema = _released(flags, 1)
    path = tmp_path / "model_best.pth"
    _save(path, flags, [model], [ema], restarted=True, legacy=False)
    code, doc = cli_json("import", "--from", "icd", str(path))
    assert code == 0 and doc["step"] == 0
    run = load_run(resolve_run(doc["run"], cli_json.runs), torch.device("cpu"))
    assert run.spec.net.spectral_norm == flags["spec_norm"] and run.spec.net.norm == flags["norm"]
    assert run.spec.method.condition == ("class" if flags["cond"] else None)
    x, y = torch.rand(5, 3, 32, 32), torch.tensor([0, 3, 9, 3, 1])
    with torch.no_grad():
        want = ema(x, F.one_hot(y, 10).float())
    scales, total = _energies(run, True, x, y if flags["cond"] else None)
    assert torch.allclose(scales, want.flip(1), rtol=1e-5, atol=1e-5)
    assert torch.allclose(total, want.sum(1), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("changed", "expect"), [
    ({"ensembles": 2}, "ensemble of 2 models"),
    ({"square_energy": True}, "--square_energy"),
    ({"dataset": "celeba"}, "celeba model"),
])
def test_what_ebmctl_would_compute_differently_is_refused(tmp_path, easydict, cli_json, changed, expect):
    flags = FLAGS | {"filter_dim": 8, "multiscale": False} | changed
    model, ema = _released(flags, 2)
    path = tmp_path / "model_10.pth"
    _save(path, flags, [model] * flags["ensembles"], [ema] * flags["ensembles"])
    code, _ = cli_json("import", "--from", "icd", str(path))
    assert code == 1 and expect in cli_json.err and "\n" not in cli_json.err.strip()
    assert not cli_json.runs.exists() or not any(cli_json.runs.iterdir())


def test_files_of_the_code_before_its_residual_fix_and_files_that_run_code_are_refused(tmp_path, easydict, cli_json):
    flags = FLAGS | {"filter_dim": 8, "multiscale": False}
    model, ema = _released(flags, 3)
    sd = {k: (torch.zeros(v.shape[0], 512) if k.endswith(("latent_map.weight", "latent_map_2.weight")) else v)
          for k, v in model.state_dict().items()}
    old = tmp_path / "model_old.pth"
    torch.save({"FLAGS": dict(flags), "model_state_dict_0": sd}, old)
    code, _ = cli_json("import", "--from", "icd", str(old))
    assert code == 1 and "no residual connection" in cli_json.err

    marker = tmp_path / "ran"

    class Trap:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    bad = tmp_path / "model_20.pth"
    _save(bad, flags, [model], [ema], extra={"hook": Trap()})
    code, _ = cli_json("import", "--from", "icd", str(bad))
    assert code == 1 and "system object" in cli_json.err and not marker.exists()


def test_an_imported_icd_samples_and_scores_ood_through_the_cli(tmp_path, easydict, cli_json):
    flags = FLAGS | {"filter_dim": 8}
    model, ema = _released(flags, 4)
    path = tmp_path / "model_3000.pth"
    _save(path, flags, [model], [ema])
    code, doc = cli_json("import", "--from", "icd", str(path), "--preset", "icd-shapes")
    assert code == 0 and doc["preset"] == "icd-shapes"
    meta = json.loads((Path(doc["run"]) / "run.json").read_text())
    assert meta["imported"]["from"] == "icd" and len(meta["imported"]["sha256"]) == 64
    code, sampled = cli_json("sample", "--run", doc["run"], "--n", "4", "--steps", "2")
    assert code == 0 and sampled["n"] == 4
    code, scored = cli_json("ood", "--run", doc["run"], "--in", "shapes32", "--out", "constant", "--n", "16")
    assert code == 0 and scored["counts"] == {"shapes32": 16, "constant": 16}
