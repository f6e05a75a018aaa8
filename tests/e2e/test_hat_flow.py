"""Hat EBM end to end through the real CLI: sngan -> hat refine -> `ebmctl refine`, ae -> hat retrofit, the
generator sources hat.generator accepts (latest:PRESET, a run directory, a generator file), synthesis with its
bank and tandem generator, exact resumes, and the one-line refusals of everything a Hat EBM cannot stand on."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from ebmctl.checkpoints import load_tensors

SNGAN_TINY = ["--set", "net.ngf=16", "--set", "net.ndf=16", "--set", "net.nz=8", "--set", "train.batch_size=4",
              "--set", "method.n_dis=1", "--set", "train.log_every=1"]
AE_TINY = ["--set", "net.nef=8", "--set", "net.ngf=8", "--set", "train.batch_size=4", "--set", "train.log_every=1"]
HAT_TINY = ["--set", "net.ndf=16", "--set", "train.batch_size=4", "--set", "sampler.steps=2", "--set", "sample.steps=2",
            "--set", "train.log_every=1"]
SYNTH_TINY = [*HAT_TINY, "--set", "hat.generator_net.ngf=16", "--set", "hat.generator_net.nz=8",
              "--set", "method.bank_size=16"]
QUICKSTART_TINY = ["--set", "train.steps=1", "--set", "train.batch_size=4", "--set", "net.width=8",
                   "--set", "sampler.steps=2", "--set", "method.kl_chains=4"]
PNG = b"\x89PNG\r\n\x1a\n"


# ----------------------------------------------------------------------------------------------- helpers


def _ok(result) -> dict:
    assert result.code == 0, (result.code, result.err)
    return json.loads(result.out)


def _train(cli, preset: str, *args: str) -> dict:
    return _ok(cli("--json", "--quiet", "train", "--preset", preset, *args))


def _sngan(cli, steps: int = 2) -> Path:
    return Path(_train(cli, "sngan-shapes", *SNGAN_TINY, "--set", f"train.steps={steps}")["run"])


def _hat(cli, preset: str, steps: int, *args: str) -> Path:
    tiny = SYNTH_TINY if preset == "hat-synth-shapes" else HAT_TINY
    return Path(_train(cli, preset, *tiny, "--set", f"train.steps={steps}", *args)["run"])


def _runs(cli) -> set[str]:
    return {p.name for p in cli.runs.iterdir()} if cli.runs.is_dir() else set()


def _fails(result, codes: tuple[int, ...], *words: str) -> str:
    """A one-line ``error: ...`` on stderr with one of ``codes``, no traceback; returns the line."""
    assert result.code in codes, (result.code, result.out, result.err)
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.err
    assert "Traceback" not in result.err + result.out
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def _refused(cli, argv: list[str], codes: tuple[int, ...], *words: str) -> str:
    """``argv`` fails in one line and leaves no new run directory behind."""
    before = _runs(cli)
    line = _fails(cli(*argv), codes, *words)
    assert _runs(cli) == before, f"{argv} left {_runs(cli) - before}"
    return line


def _generator_of(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A model checkpoint's generator weights, keyed without the ``generator.`` prefix."""
    return {k[len("generator."):]: v for k, v in tensors.items() if k.startswith("generator.")}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a, "no tensors to compare"
    assert a.keys() == b.keys(), sorted(set(a) ^ set(b))[:5]
    unequal = [k for k in a if not torch.equal(a[k], b[k])]
    assert not unequal, unequal[:5]


def _is_png(path: str | Path) -> bool:
    path = Path(path)
    return path.is_file() and path.read_bytes()[:8] == PNG


# ----------------------------------------------------------------------------------------------- refine


def test_refine_stands_on_the_newest_sngan_run_and_refines_its_samples(cli):
    sngan = _sngan(cli)
    hat = _hat(cli, "hat-refine-shapes", 2)  # hat.generator = latest:sngan-shapes
    run_doc = json.loads((hat / "run.json").read_text())
    assert run_doc["method"] == "hat" and run_doc["status"] == "completed"
    assert run_doc["parents"] == [str(sngan)]

    weights, meta = load_tensors(hat / "checkpoints/model.safetensors")
    assert meta["method"] == "hat"
    arch = meta["spec"]["hat"]["generator_net"]  # read from the sngan run, not the preset's defaults
    assert (arch["kind"], arch["nz"], arch["ngf"]) == ("sngan", 8, 16)
    assert any(k.startswith("generator.") for k in weights)
    assert any(not k.startswith("generator.") for k in weights)  # the hat network itself
    source, _ = load_tensors(sngan / "checkpoints/model.safetensors")
    _same(_generator_of(weights), _generator_of(source))
    assert not (hat / "checkpoints/generator.safetensors").exists()  # a frozen generator is not the hat's own

    doc = _ok(cli("--json", "--quiet", "refine", "--run", str(hat), "--n", "6", "--no-fid"))
    out = Path(doc["out"])
    assert out.parent == hat / "refine"
    assert doc["n"] == 6 and doc["steps"] == 2  # sample.steps
    assert doc["before"] == {} and doc["after"] == {}  # --no-fid
    for name in ("before", "after", "chains"):
        assert doc["files"][name] == str(out / f"{name}.png") and _is_png(out / f"{name}.png"), name
    samples, smeta = load_tensors(out / "samples.safetensors")
    assert samples["before"].shape == samples["after"].shape == (6, 3, 32, 32)
    assert float(samples["after"].min()) >= 0.0 and float(samples["after"].max()) <= 1.0
    assert smeta["steps"] == 2 and smeta["checkpoint_step"] == 2

    result = json.loads((out / "result.json").read_text())
    assert result["command"] == "refine" and result["run"] == str(hat)
    motion = result["motion"]
    assert set(motion) == {"latent_move", "residual_norm", "pixel_change"}
    assert all(isinstance(v, float) and math.isfinite(v) and v > 0 for v in motion.values()), motion
    change = (samples["after"] - samples["before"]).flatten(1).norm(dim=1).mean().item()
    assert motion["pixel_change"] == pytest.approx(change, rel=1e-4)
    assert motion == doc["motion"]


def test_sample_and_ood_serve_a_refine_run(cli):
    _sngan(cli)
    hat = _hat(cli, "hat-refine-shapes", 2)
    doc = _ok(cli("--json", "--quiet", "sample", "--run", str(hat), "--n", "4"))
    assert doc["n"] == 4
    samples, _ = load_tensors(doc["files"]["samples"])
    (images,) = samples.values()
    assert images.shape == (4, 3, 32, 32)
    assert _is_png(doc["files"]["grid"])

    doc = _ok(cli("--json", "--quiet", "ood", "--run", str(hat), "--in", "shapes32", "--out", "textures", "--n", "16"))
    (row,) = [r for r in doc["results"] if r["score"] == "energy"]
    assert (row["in"], row["out"], row["n_in"], row["n_out"]) == ("shapes32", "textures", 16, 16)
    assert 0.0 <= row["auroc"] <= 1.0


# ----------------------------------------------------------------------------------------------- retrofit


def test_ae_writes_a_generator_file_and_retrofit_refines_its_decoder(cli):
    ae = Path(_train(cli, "ae-shapes", *AE_TINY, "--set", "train.steps=2")["run"])
    gen, meta = load_tensors(ae / "checkpoints/generator.safetensors")
    assert meta["kind"] == "generator" and meta["method"] == "ae" and meta["step"] == 2
    assert meta["arch"]["kind"] == "image_latent"
    assert (meta["arch"]["ngf"], meta["arch"]["latent_channels"]) == (8, 1)
    assert meta["shape"] == [3, 32, 32]
    model, _ = load_tensors(ae / "checkpoints/model.safetensors")
    _same(gen, _generator_of(model))  # the decoder alone, not the encoder
    assert not any(k.startswith("encoder.") for k in gen)

    hat = _hat(cli, "hat-retrofit-shapes", 2)  # hat.generator = latest:ae-shapes
    assert json.loads((hat / "run.json").read_text())["parents"] == [str(ae)]
    weights, hmeta = load_tensors(hat / "checkpoints/model.safetensors")
    assert hmeta["spec"]["method"]["mode"] == "retrofit"
    assert hmeta["spec"]["hat"]["generator_net"]["kind"] == "image_latent"
    _same(_generator_of(weights), gen)

    doc = _ok(cli("--json", "--quiet", "refine", "--run", str(hat), "--no-fid", "--n", "4"))
    samples, _ = load_tensors(doc["files"]["samples"])
    assert samples["after"].shape == (4, 3, 32, 32)
    assert all(math.isfinite(v) and v > 0 for v in doc["motion"].values()), doc["motion"]


# ----------------------------------------------------------------------------------------------- generator sources


def test_hat_generator_takes_a_generator_file_a_run_directory_or_a_run_name(cli):
    older = _sngan(cli, steps=1)
    newer = _sngan(cli, steps=2)  # latest:sngan-shapes would pick this one
    file = older / "checkpoints/generator.safetensors"
    _, fmeta = load_tensors(file)
    assert fmeta["kind"] == "generator" and fmeta["arch"]["kind"] == "sngan" and fmeta["step"] == 1
    expected, _ = load_tensors(older / "checkpoints/model.safetensors")

    for source, parent in ((str(file), file), (str(older), older), (older.name, older)):
        hat = _hat(cli, "hat-refine-shapes", 1, "--set", f"hat.generator={source}")
        assert json.loads((hat / "run.json").read_text())["parents"] == [str(parent)], source
        weights, _ = load_tensors(hat / "checkpoints/model.safetensors")
        _same(_generator_of(weights), _generator_of(expected))
    newest, _ = load_tensors(newer / "checkpoints/model.safetensors")  # so the source did matter
    assert any(not torch.equal(v, _generator_of(expected)[k]) for k, v in _generator_of(newest).items())


# ----------------------------------------------------------------------------------------------- synthesis


def test_synthesis_state_holds_the_bank_and_the_generator_optimiser(cli):
    run = _hat(cli, "hat-synth-shapes", 3)
    assert json.loads((run / "run.json").read_text())["parents"] == []
    state, meta = load_tensors(run / "checkpoints/state.safetensors")
    assert meta["step"] == 3
    assert state["bank.z"].shape == (16, 8)
    assert state["bank.images"].shape == (16, 3, 32, 32)
    assert any(k.startswith("generator.optim.") for k in state)
    assert meta["method"]["generator"]["updates"] == 3
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3] and all("g_loss" in r for r in records)

    # the trained generator is the run's own: a generator file that a refine Hat EBM can stand on
    gen, gmeta = load_tensors(run / "checkpoints/generator.safetensors")
    assert gmeta["arch"]["kind"] == "sngan" and (gmeta["arch"]["nz"], gmeta["arch"]["ngf"]) == (8, 16)
    assert gmeta["arch"]["out_scale"] == 2.0
    weights, _ = load_tensors(run / "checkpoints/model.safetensors")
    _same(gen, _generator_of(weights))
    hat = _hat(cli, "hat-refine-shapes", 1, "--set", f"hat.generator={run}")
    refined, _ = load_tensors(hat / "checkpoints/model.safetensors")
    _same(_generator_of(refined), gen)


def _resume_matches(cli, preset: str) -> None:
    full = _hat(cli, preset, 4)
    part = _hat(cli, preset, 2)
    resumed = _ok(cli("--json", "--quiet", "train", "--resume", str(part), "--set", "train.steps=4"))
    assert resumed["run"] == str(part) and resumed["step"] == 4
    a, _ = load_tensors(full / "checkpoints/model.safetensors")
    b, _ = load_tensors(part / "checkpoints/model.safetensors")
    _same(a, b)
    sa, _ = load_tensors(full / "checkpoints/state.safetensors")
    sb, _ = load_tensors(part / "checkpoints/state.safetensors")
    _same({k: v for k, v in sa.items() if not k.startswith("rng.")},
          {k: v for k, v in sb.items() if not k.startswith("rng.")})
    steps = [json.loads(line)["step"] for line in (part / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]


def test_a_resumed_synthesis_run_matches_the_uninterrupted_one(cli):
    _resume_matches(cli, "hat-synth-shapes")


def test_a_resumed_refine_run_matches_the_uninterrupted_one(cli):
    _sngan(cli)
    _resume_matches(cli, "hat-refine-shapes")


# ----------------------------------------------------------------------------------------------- refusals


def test_refine_preset_without_an_sngan_run_says_to_train_one(cli):
    _refused(cli, ["train", "--preset", "hat-refine-shapes", *HAT_TINY], (1, 2),
             "sngan-shapes", "ebmctl train --preset sngan-shapes")
    assert not cli.runs.exists() or _runs(cli) == set()


def test_generators_a_hat_cannot_stand_on_are_refused_in_one_line(cli):
    sngan = _sngan(cli, steps=1)
    quick = Path(_train(cli, "quickstart", *QUICKSTART_TINY)["run"])
    base = ["train", "--preset", "hat-refine-shapes", *HAT_TINY]
    _refused(cli, [*base, "--set", "hat.generator=latest:no-such-preset"], (1, 2), "no-such-preset")
    _refused(cli, [*base, "--set", f"hat.generator={cli.runs / 'missing.safetensors'}"], (1, 2),
             "missing.safetensors", "does not exist")
    _refused(cli, [*base, "--set", f"hat.generator={cli.runs / 'no-such-run'}"], (1, 2), "no-such-run", "does not exist")
    _refused(cli, [*base, "--set", f"hat.generator={cli.runs}"], (1, 2), "not a run directory")
    for source in (quick, quick / "checkpoints/model.safetensors"):
        _refused(cli, [*base, "--set", f"hat.generator={source}"], (1, 2), "icd", "no generator")
    _refused(cli, [*base, "--set", f"hat.generator={sngan}", "--set", "data.name=digits"], (1, 2),
             "3x32x32", "1x32x32", "digits")


def test_refine_on_a_run_that_is_not_a_hat_ebm_says_so(cli):
    sngan = _sngan(cli, steps=1)
    _refused(cli, ["refine", "--run", str(sngan), "--no-fid", "--n", "2"], (1, 2), "sngan", "not a Hat EBM")
    assert not (sngan / "refine").exists()


@pytest.mark.parametrize("preset,tiny", [("quickstart", QUICKSTART_TINY),
                                         ("sngan-shapes", [*SNGAN_TINY, "--set", "train.steps=1"]),
                                         ("ae-shapes", [*AE_TINY, "--set", "train.steps=1"]),
                                         ("hat-synth-shapes", [*SYNTH_TINY, "--set", "train.steps=1"])])
def test_hat_generator_on_another_method_or_on_synthesis_is_refused(cli, preset, tiny):
    _sngan(cli, steps=1)
    _refused(cli, ["train", "--preset", preset, *tiny, "--set", "hat.generator=latest:sngan-shapes"], (1, 2),
             "hat.generator")


def test_hat_refuses_16_px_images_with_a_hint(cli):
    _sngan(cli, steps=1)
    _refused(cli, ["train", "--preset", "hat-refine-shapes", *HAT_TINY, "--set", "data.image_size=16"], (1, 2),
             "data.image_size")
    _refused(cli, ["train", "--preset", "hat-synth-shapes", *SYNTH_TINY, "--set", "data.image_size=16"], (1, 2),
             "data.image_size")


def test_hat_refuses_cuda_graphs(cli):
    _refused(cli, ["train", "--preset", "hat-synth-shapes", *SYNTH_TINY, "--set", "sampler.cuda_graph=true"], (1, 2),
             "joint sampler")
