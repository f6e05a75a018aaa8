"""`ebmctl import --from igebm`: TensorFlow checkpoints that IGEBM's released train.py wrote (its ResNet32Large
graph at width 4, one training step, saved with its Saver; made by running the released code) become runs whose
energies equal the released code's first evaluation after restoring them: unconditional as the published
cifar10_large_model_uncond, conditional, and with attention."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from tf_bundle_writer import write_bundle

from ebmctl.released.tf_bundle import read_bundle
from ebmctl.runs import resolve_run
from ebmctl.services.runtime.loading import load_run

FIXTURES = Path(__file__).parent / "fixtures" / "igebm"


@pytest.mark.parametrize("case", ["uncond", "cond", "attention"])
def test_an_imported_igebm_computes_the_released_energies(cli_json, case):
    code, doc = cli_json("import", "--from", "igebm", str(FIXTURES / case / "model_1000"))
    assert code == 0 and doc["step"] == 1000 and doc["preset"] == "igebm-cifar10"
    assert any("Adam's state" in d for d in doc["dropped"])
    run = load_run(resolve_run(doc["run"], cli_json.runs), torch.device("cpu"))
    assert run.spec.net.width == 4 and run.spec.net.self_attn == (case == "attention")
    assert run.spec.method.condition == ("class" if case == "cond" else None)
    io = np.load(FIXTURES / case / "io.npz")
    images = torch.from_numpy(io["images_nhwc"]).permute(0, 3, 1, 2).contiguous()
    labels = torch.from_numpy(io["labels"]) if case == "cond" else None
    want = torch.from_numpy(io["energy"]).ravel()
    assert torch.allclose(run.method.energy(images, labels), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", ["uncond", "attention"])
def test_without_adams_state_attention_is_read_from_gamma(cli_json, tmp_path, case):
    """A file saved without the optimiser: attention is on where gamma moved off its initial 0."""
    bundle = read_bundle(FIXTURES / case / "model_1000")
    kept = {k: v.numpy() for k, v in bundle.tensors.items() if not k.endswith(("/Adam", "/Adam_1", "_power"))}
    if case == "uncond":
        kept["context_0/atten/gamma"] = np.zeros(1, np.float32)  # never trained: attention was off
    write_bundle(tmp_path / "model_1000", kept)
    code, doc = cli_json("import", "--from", "igebm", str(tmp_path / "model_1000"))
    assert code == 0 and not any("Adam" in d for d in doc["dropped"])
    run = load_run(resolve_run(doc["run"], cli_json.runs), torch.device("cpu"))
    assert run.spec.net.self_attn == (case == "attention")
    io = np.load(FIXTURES / case / "io.npz")
    images = torch.from_numpy(io["images_nhwc"]).permute(0, 3, 1, 2).contiguous()
    assert torch.allclose(run.method.energy(images), torch.from_numpy(io["energy"]).ravel(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("telltale", "expect"), [("fc_dense/wweight", "ResNet32 (the published cifar10_cond)"),
                                                  ("res_optim_res_adaptive/cweight", "ResNet32Wider"),
                                                  ("c1_pre/cweight", "no context_0/c1_pre or res_8")])
def test_the_other_released_nets_are_refused_by_name(cli_json, tmp_path, telltale, expect):
    write_bundle(tmp_path / "model_500", {f"context_0/{telltale}": np.ones((3, 3, 3, 4), np.float32)})
    code, _ = cli_json("import", "--from", "igebm", str(tmp_path / "model_500.index"))
    assert code == 1 and expect in cli_json.err and "\n" not in cli_json.err.strip()


def test_an_imported_igebm_samples_and_scores_ood_through_the_cli(cli_json):
    code, doc = cli_json("import", "--from", "igebm", str(FIXTURES / "uncond" / "model_1000.index"),
                         "--set", "data.name=shapes32")
    assert code == 0
    code, sampled = cli_json("sample", "--run", doc["run"], "--n", "4", "--steps", "2")
    assert code == 0 and sampled["n"] == 4
    code, scored = cli_json("ood", "--run", doc["run"], "--in", "shapes32", "--out", "constant", "--n", "16")
    assert code == 0 and scored["counts"] == {"shapes32": 16, "constant": 16}
