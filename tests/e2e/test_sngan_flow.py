"""SN-GAN end to end through the real CLI: a tiny sngan-shapes run, resume, samples G(z), refusals."""

from __future__ import annotations

import json
from pathlib import Path

from ebmctl.checkpoints import load_tensors

TINY = ["--set", "net.ngf=16", "--set", "net.ndf=16", "--set", "net.nz=8", "--set", "train.batch_size=4",
        "--set", "method.n_dis=2", "--set", "train.log_every=1"]


def _train(cli, steps: int) -> dict:
    result = cli("--json", "train", "--preset", "sngan-shapes", *TINY, "--set", f"train.steps={steps}")
    assert result.code == 0, result.err
    return json.loads(result.out)


def test_sngan_trains_both_nets_and_samples_generator_images(cli):
    doc = _train(cli, 4)
    tensors, meta = load_tensors(f"{doc['run']}/checkpoints/model.safetensors")
    assert meta["method"] == "sngan"
    assert any(k.startswith("generator.model.") for k in tensors)
    assert any(k.startswith("discriminator.model.") for k in tensors)
    lines = Path(doc["run"], "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [("g_loss" in r) for r in records] == [False, True, False, True]  # n_dis = 2
    assert "ebmctl sample" in doc["next"]
    result = cli("--json", "sample", "--n", "6")
    assert result.code == 0, result.err
    out = json.loads(result.out)
    assert out["n"] == 6
    from PIL import Image

    assert Image.open(out["files"]["grid"]).size[0] > 32


def test_a_resumed_sngan_run_matches_the_uninterrupted_one(cli):
    full = _train(cli, 4)
    part = _train(cli, 2)
    result = cli("--json", "train", "--resume", part["run"], "--set", "train.steps=4")
    assert result.code == 0, result.err
    a, _ = load_tensors(f"{full['run']}/checkpoints/model.safetensors")
    b, _ = load_tensors(f"{part['run']}/checkpoints/model.safetensors")
    assert a.keys() == b.keys()
    assert all((a[k] == b[k]).all() for k in a)


def test_commands_a_gan_cannot_serve_say_so(cli):
    _train(cli, 1)
    for args in (["ood", "--in", "shapes32", "--out", "textures"], ["probe", "--dataset", "shapes32"],
                 ["compose", "--attrs", "circle"], ["sample", "--init", "buffer", "--n", "2"]):
        result = cli(*args)
        assert result.code in (1, 2), (args, result.err)
        assert len(result.err.strip().splitlines()) == 1 and "Traceback" not in result.err
    bad = cli("train", "--preset", "sngan-shapes", "--set", "data.image_size=16")
    assert bad.code in (1, 2) and "data.image_size" in bad.err
