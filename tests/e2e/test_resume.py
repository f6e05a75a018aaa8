"""A run interrupted and resumed ends with the same weights, buffer and metrics as an uninterrupted one."""

from __future__ import annotations

import json

import pytest
import torch

from ebmctl.checkpoints import load_tensors
from ebmctl.recipes import resolve_spec
from ebmctl.runs import MODEL_CKPT, STATE_CKPT
from ebmctl.services.train import resume, train

TIMING = {"images_per_s", "elapsed_s"}


def _spec(steps: int, preset: str = "quickstart", extra: tuple[str, ...] = ()):
    icd = ["method.kl_chains=4", "method.entropy_min_buffer=10", "method.entropy_refs=5"] if preset != "igebm-toy" else []
    return resolve_spec(preset, ["train.batch_size=8", "sampler.steps=3", "train.log_every=1", "train.checkpoint_every=3",
                                 "train.sample_every=100", "buffer.size=20", *icd, *extra], {"train.steps": steps})


def _metrics(run):
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in TIMING} for r in records]


@pytest.mark.parametrize("preset", ["quickstart", "igebm-toy"])
def test_resume_matches_the_uninterrupted_run(tmp_path, preset):
    torch.use_deterministic_algorithms(True)
    try:
        full = train(_spec(7, preset), runs_root=tmp_path / "a", device="cpu").run_dir
        part = train(_spec(3, preset), runs_root=tmp_path / "b", device="cpu").run_dir
        resumed = resume(part, overrides={"train": {"steps": 7}}, device="cpu").run_dir
    finally:
        torch.use_deterministic_algorithms(False)
    assert resumed == part
    a, _ = load_tensors(full / STATE_CKPT)
    b, _ = load_tensors(part / STATE_CKPT)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key  # weights, EMA, Adam moments, buffer, RNG
    assert _metrics(full) == _metrics(part)
    wa, _ = load_tensors(full / MODEL_CKPT)
    wb, _ = load_tensors(part / MODEL_CKPT)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_resume_refuses_to_change_what_is_trained(tmp_path):
    from ebmctl.errors import SpecError

    run = train(_spec(2), runs_root=tmp_path, device="cpu").run_dir
    with pytest.raises(SpecError) as err:
        resume(run, overrides={"sampler": {"steps": 9}}, device="cpu")
    assert "sampler.steps" in err.value.message


def test_a_learnt_mixture_bias_resumes_exactly(tmp_path):
    sets = ["net.learn_bias=true", "net.channels=[8,8,8,8]", "net.hidden=16", "net.latent_dim=6", "net.components=3",
            "train.batch_size=8", "sampler.steps=3", "train.log_every=1", "train.checkpoint_every=3",
            "train.sample_every=100", "buffer.size=20"]
    spec = lambda steps: resolve_spec("cebmm-digits", sets, {"train.steps": steps})  # noqa: E731
    torch.use_deterministic_algorithms(True)
    try:
        full = train(spec(5), runs_root=tmp_path / "a", device="cpu").run_dir
        part = train(spec(3), runs_root=tmp_path / "b", device="cpu").run_dir
        resumed = resume(part, overrides={"train": {"steps": 5}}, device="cpu").run_dir
    finally:
        torch.use_deterministic_algorithms(False)
    a, _ = load_tensors(full / STATE_CKPT)
    b, _ = load_tensors(resumed / STATE_CKPT)
    assert a.keys() == b.keys() and "model.bias_mean" in a
    assert any(k.startswith("optim.") and a[k].shape == a["model.bias_mean"].shape for k in a)  # its Adam moments
    for key in a:
        assert torch.equal(a[key], b[key]), key
    fixed = train(resolve_spec("cebmm-digits", [*sets, "net.learn_bias=false"], {"train.steps": 1}),
                  runs_root=tmp_path / "c", device="cpu").run_dir
    wa, _ = load_tensors(full / MODEL_CKPT)
    wf, _ = load_tensors(fixed / MODEL_CKPT)
    assert wa["model.bias_mean"].shape == wf["model.bias_mean"].shape
    assert not torch.equal(wa["model.bias_mean"], wf["model.bias_mean"])  # learnt: moved from the shared draw


def test_a_run_without_its_state_file_is_never_started_over(cli):
    """Before, `train --resume` of a run whose state file was gone said "resuming ... at step 0" and overwrote the
    weights it had reached."""
    small = ["--set", "train.batch_size=8", "--set", "sampler.steps=2", "--set", "buffer.size=16"]
    assert cli("--quiet", "train", "--preset", "igebm-toy", "--steps", "3", *small).code == 0
    (run,) = list(cli.runs.iterdir())
    (run / STATE_CKPT).unlink()
    model = (run / MODEL_CKPT).read_bytes()
    result = cli("train", "--resume", str(run), "--steps", "6")
    assert result.code == 1, result.err
    line = result.err.strip()
    assert "\n" not in line and "state.safetensors is missing" in line and "reached step 3" in line, line
    assert f"ebmctl sample --run {run}" in line and "ebmctl train --preset igebm-toy" in line
    assert (run / MODEL_CKPT).read_bytes() == model and json.loads((run / "run.json").read_text())["step"] == 3


def test_a_flipped_bit_in_a_checkpoint_is_named_on_resume_and_sample(cli):
    """A flipped bit that leaves a checkpoint readable and finite went unnoticed; the digest stored with it finds it."""
    small = ["--set", "train.batch_size=8", "--set", "sampler.steps=2", "--set", "buffer.size=16"]
    assert cli("--quiet", "train", "--preset", "igebm-toy", "--steps", "2", *small).code == 0
    (run,) = list(cli.runs.iterdir())
    for name, command in (("state", ["train", "--resume", str(run), "--steps", "3"]), ("model", ["sample"])):
        path = run / "checkpoints" / f"{name}.safetensors"
        data = bytearray(path.read_bytes())
        data[-5] ^= 0x01
        path.write_bytes(bytes(data))
        result = cli(*command)
        assert result.code == 1, result.err
        assert result.err.startswith(f"error: {path} is damaged") and len(result.err.strip().splitlines()) == 1


def test_a_run_written_before_digests_resumes_and_samples(cli):
    """Checkpoints without a digest (as earlier versions wrote them) still load, resume and sample."""
    from safetensors.torch import load as st_load
    from safetensors.torch import save as st_save

    from ebmctl.checkpoints import DIGEST_KEY, META_KEY

    small = ["--set", "train.batch_size=8", "--set", "sampler.steps=2", "--set", "buffer.size=16"]
    assert cli("--quiet", "train", "--preset", "igebm-toy", "--steps", "2", *small).code == 0
    (run,) = list(cli.runs.iterdir())
    for path in (run / "checkpoints").glob("*.safetensors"):
        data = path.read_bytes()
        header = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])
        meta = json.loads(header["__metadata__"][META_KEY])
        assert meta.pop(DIGEST_KEY)
        path.write_bytes(st_save(st_load(data), metadata={META_KEY: json.dumps(meta, sort_keys=True)}))
    assert cli("--quiet", "train", "--resume", str(run), "--steps", "4").code == 0
    assert json.loads((run / "run.json").read_text())["step"] == 4
    assert cli("--quiet", "sample", "--n", "4", "--steps", "1").code == 0
