"""`ebmctl import --from hat`: checkpoints that Hat EBM's released code (TensorFlow 2, Keras ``save_weights``)
wrote for its CIFAR-10 nets, at a small width with random weights (tests/released/fixtures/make_hat_fixtures.py
ran the released definitions), become runs whose EBM energies, generator images and joint energies H(G(z) + y)
equal the released computation's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ebmctl.runs import resolve_run
from ebmctl.services.runtime.loading import load_run

FIXTURES = Path(__file__).parent / "fixtures" / "hat"
SYNTHESIS = FIXTURES / "synthesis" / "checkpoints" / "ebm_1000.ckpt"
REFINE = FIXTURES / "refine" / "checkpoints" / "ebm_1000.ckpt"
REFINE_GENERATOR = FIXTURES / "refine" / "pretrained_nets" / "cifar10_refine" / "gen.ckpt"


def nchw(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a).permute(0, 3, 1, 2).contiguous()


CASES = {  # fixture: (mode, --generator, preset it defaults to, width)
    "synthesis": ("synthesis", None, "hat-synth-cifar10", 16),
    "refine": ("refine", REFINE_GENERATOR, "hat-refine-cifar10", 16),
    "refine64": ("refine", FIXTURES / "refine64" / "pretrained_nets" / "celeb_a_refine" / "gen.ckpt",
                 "hat-refine-celeba64", 32),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_an_imported_hat_ebm_computes_the_released_energies_and_images(cli_json, case):
    mode, generator, preset, width = CASES[case]
    ebm = FIXTURES / case / "checkpoints" / "ebm_1000.ckpt"
    code, doc = cli_json("import", "--from", "hat", str(ebm), *(["--generator", str(generator)] if generator else []))
    assert code == 0 and doc["step"] == 1000 and doc["preset"] == preset
    run = load_run(resolve_run(doc["run"], cli_json.runs), torch.device("cpu"))
    spec = run.spec
    assert spec.method.mode == mode and (spec.net.ndf, spec.net.pooling, spec.net.bias) == (width, "mean", False)
    assert (spec.hat.generator_net.nz, spec.hat.generator_net.ngf) == (32, width)
    assert spec.hat.generator_net.out_scale == (2.0 if mode == "synthesis" else 1.0)
    files = json.loads((Path(doc["run"]) / "run.json").read_text())["imported"]["files"]
    names = sorted(Path(f).name for f in files)  # the EBM's and the generator's, each with its hash
    assert names[:2] == ["ebm_1000.ckpt.data-00000-of-00001", "ebm_1000.ckpt.index"] and len(names) == 4
    assert all(len(h) == 64 for h in files.values()) and spec.hat.generator is None  # the weights are in the run

    io = np.load(FIXTURES / case / "io.npz")
    images = nchw(io["images_nhwc"])
    assert torch.allclose(run.method.energy((images + 1) / 2), torch.from_numpy(io["energy"]).ravel(), atol=1e-5)
    net, gen = run.method.model.eval_net(True), run.method.gen.eval()
    with torch.no_grad():
        generated = gen(torch.from_numpy(io["z"]))
        joint = net(generated + nchw(io["y_nhwc"]))
    assert torch.allclose(generated, nchw(io["gen_images_nhwc"]), atol=1e-5)
    assert torch.allclose(joint, torch.from_numpy(io["hat_energy"]), atol=1e-5)


def test_the_file_decides_the_mode_whatever_the_preset(cli_json):
    code, doc = cli_json("import", "--from", "hat", str(SYNTHESIS), "--preset", "hat-refine-cifar10")
    assert code == 0, cli_json.err
    spec = load_run(resolve_run(doc["run"], cli_json.runs), torch.device("cpu")).spec
    assert spec.method.mode == "synthesis" and spec.hat.generator is None and spec.hat.generator_net.out_scale == 2.0


def test_a_missing_or_misplaced_generator_is_a_one_line_error_with_the_fix(cli_json):
    code, _ = cli_json("import", "--from", "hat", str(REFINE))
    assert code == 2 and "no gen_<step>.ckpt lies beside" in cli_json.err and "--generator" in cli_json.err
    code, _ = cli_json("import", "--from", "hat", str(REFINE_GENERATOR))
    assert code == 2 and "generator's checkpoint, not the EBM's" in cli_json.err
    code, _ = cli_json("import", "--from", "icd", str(REFINE), "--generator", str(REFINE_GENERATOR))
    assert code == 2 and "drop --generator" in cli_json.err
    assert "\n" not in cli_json.err.strip() and not any(cli_json.runs.glob("*/run.json"))


def test_an_imported_hat_ebm_samples_refines_and_scores_ood_through_the_cli(cli_json):
    code, doc = cli_json("import", "--from", "hat", str(REFINE) + ".index", "--generator", str(REFINE_GENERATOR),
                         "--preset", "hat-refine-shapes")
    assert code == 0 and doc["preset"] == "hat-refine-shapes"
    code, sampled = cli_json("sample", "--run", doc["run"], "--n", "4", "--steps", "2")
    assert code == 0 and sampled["n"] == 4
    code, refined = cli_json("refine", "--run", doc["run"], "--n", "4", "--steps", "2", "--no-fid")
    assert code == 0 and refined["n"] == 4
    code, scored = cli_json("ood", "--run", doc["run"], "--in", "shapes32", "--out", "constant", "--n", "16")
    assert code == 0 and scored["counts"] == {"shapes32": 16, "constant": 16}
