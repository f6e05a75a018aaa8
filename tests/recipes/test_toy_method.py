"""Adding a method takes three code places: the method, its recipe and its registry row. A toy method defined in
this file, and nowhere else, trains, samples and resumes through the real CLI (docs/extending.md walks through the
same steps)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar, Literal

import pytest
import torch
from pydantic import Field
from torch import Tensor

from ebmctl.checkpoints import load_tensors
from ebmctl.losses.contrastive_divergence import cd_loss
from ebmctl.methods.base import PersistentChainEbm
from ebmctl.methods.chains import ChainSource
from ebmctl.methods.energies import summed_energy
from ebmctl.methods.energy_model import EnergyModel
from ebmctl.recipes import RECIPES, register, resolve_spec, unregister
from ebmctl.recipes.blocks import ChainEbmRecipe
from ebmctl.samplers.langevin import LangevinParams, frozen, sgld_params
from ebmctl.specs import Section


# 1. The method: its energy is the net's, its step is contrastive divergence with an L2 penalty.
class Toy(PersistentChainEbm):
    name = "toy"

    def __init__(self, model: EnergyModel, *, sampler: LangevinParams, chains: ChainSource, l2: float = 1.0,
                 device: torch.device | str = "cpu") -> None:
        super().__init__(model, sampler=sampler, chains=chains, device=torch.device(device))
        self.l2 = l2

    def train_step(self, x: Tensor, y: Tensor | None = None) -> dict[str, float]:
        net = self.net.train()
        x0 = self.chains.draw(x.shape[0], self.device)
        with frozen(net):
            x_neg = sgld_params(summed_energy(net), x0, self.sampler)
        e_pos, e_neg = self.model.forward(x), self.model.forward(x_neg)
        loss = cd_loss(e_pos, e_neg, self.l2)
        grad_norm = self.model.step(loss)
        self.chains.buffer.add(x_neg)
        self.last_negatives = x_neg
        ep, en = e_pos.detach().sum(1).mean().item(), e_neg.detach().sum(1).mean().item()
        return {"loss": loss.item(), "e_pos": ep, "e_neg": en, "gap": ep - en, "grad_norm": grad_norm}


# 2. The recipe: its spec section, its defaults, how it is built (a persistent-chain EBM: the shared build).
class ToyMethodSpec(Section):
    name: Literal["toy"] = "toy"
    l2: float = Field(0.5, ge=0, description="Coefficient of E+^2 + E-^2.")


class ToyRecipe(ChainEbmRecipe):  # build_chain_ebm on the spec's energy net
    name = "toy"
    spec = ToyMethodSpec
    method = Toy
    defaults: ClassVar[dict[str, Any]] = {
        "net": {"name": "small_conv", "width": 4},
        "sampler": {"steps": 2, "step_size": 10.0, "noise": 0.005},
        "buffer": {"policy": "fifo", "size": 32},
        "train": {"batch_size": 8, "checkpoint_every": 1, "sample_every": 1},
        "sample": {"steps": 2},
    }


# 3. The registry row (a method shipped in ebmctl has its row in ebmctl/recipes/registry.py instead).
@pytest.fixture
def toy():
    register(ToyRecipe())
    yield
    unregister("toy")


def _cli(runs: Path, *args: str) -> int:
    from ebmctl.cli.main import main_entry

    return main_entry(["--runs-dir", str(runs), "--device", "cpu", "--quiet", "--json", *args])


def test_a_toy_method_trains_samples_and_resumes_through_the_cli(toy, tmp_path):
    preset = tmp_path / "toy-shapes.toml"
    preset.write_text('# A toy method.\nmethod = "toy"\n\n[data]\nname = "shapes32"\nimage_size = 16\n')
    runs = tmp_path / "runs"
    assert _cli(runs, "train", "--preset", str(preset), "--steps", "2", "--set", "method.l2=0.25") == 0
    (run,) = runs.iterdir()
    spec = json.loads((run / "spec.json").read_text())
    assert spec["method"] == {"name": "toy", "l2": 0.25} and spec["net"]["width"] == 4  # the recipe's defaults

    assert _cli(runs, "sample", "--run", str(run), "--n", "4", "--out", "toy") == 0
    samples, meta = load_tensors(run / "toy" / "samples.safetensors")
    assert samples["samples"].shape == (4, 3, 16, 16) and meta["settings"]["steps"] == 2

    assert _cli(runs, "train", "--resume", str(run), "--set", "train.steps=3") == 0
    doc = json.loads((run / "run.json").read_text())
    assert doc["status"] == "completed" and doc["step"] == 3


def test_a_toy_method_gets_the_usual_spec_errors(toy, tmp_path, capsys):
    assert _cli(tmp_path, "train", "--set", "method=toy", "--set", "method.l3=1") == 2
    assert "did you mean method.l2?" in capsys.readouterr().err
    assert resolve_spec(overrides=["method=toy"]).method.l2 == 0.5


def test_without_its_row_the_method_is_unknown():
    assert "toy" not in RECIPES
    with pytest.raises(Exception, match="unknown method 'toy'"):
        resolve_spec(overrides=["method=toy"])
