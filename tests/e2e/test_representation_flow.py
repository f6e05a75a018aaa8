"""Representation learning end to end through the real CLI: tiny cebm, cebmm, ebclr and simclr runs, then
`ebmctl probe`, the latent_nn OOD score, the capability errors of encoder-only runs, and the cebm-mnist and
ebclr-cifar10 presets on fixtures in the datasets' exact on-disk formats.

Each run trains once per module (a few steps of a shrunk net) and several tests read it."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from data.fixtures import (
    write_celeba,
    write_cifar10,
    write_cifar100,
    write_dtd,
    write_imagenet32,
    write_mnist,
    write_svhn,
)
from PIL import Image
from safetensors.torch import load_file

from ebmctl.data import load_dataset, to_float
from ebmctl.runs import resolve_run
from ebmctl.services.runtime.loading import load_run

LATENT = 8  # net.latent_dim of the tiny CEBMs
CEBM_TINY = ["--set", "train.steps=2", "--set", "net.channels=[8,8,8,8]", "--set", "net.hidden=16",
             "--set", f"net.latent_dim={LATENT}", "--set", "sampler.steps=3", "--set", "train.batch_size=16",
             "--set", "buffer.size=64"]
WIDTH = 8  # net.width of the tiny ResNet-18 encoders: pooled features of 8 * WIDTH
RESNET_TINY = ["--set", "train.steps=2", "--set", f"net.width={WIDTH}", "--set", "net.hidden=32",
               "--set", "train.batch_size=16"]
EBCLR_TINY = [*RESNET_TINY, "--set", "buffer.size=64"]
SMALL_PROBE = ["--seeds", "2", "--train-n", "200", "--test-n", "100"]
SEEDS = 2


# ----------------------------------------------------------------------------------------------- helpers


def _invoke(*argv: str) -> tuple[int, str, str]:
    """The real CLI entry point with stdout and stderr captured (usable in module-scoped fixtures)."""
    from ebmctl.cli.main import main_entry

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main_entry(list(argv))
    return code, out.getvalue(), err.getvalue()


def _train(runs: Path, *args: str, data_root: Path | None = None) -> tuple[Path, str]:
    """Train into an empty runs directory; returns the run directory and the printed summary table."""
    root = ["--data-root", str(data_root)] if data_root else []
    code, out, err = _invoke("--runs-dir", str(runs), "--device", "cpu", "--quiet", *root, "train", *args)
    assert code == 0, err
    (run,) = [p for p in runs.iterdir() if p.is_dir()]
    return run, out


def _probe(run: Path, *args: str, data_root: Path | None = None) -> dict:
    """`ebmctl --json probe --run RUN ARGS`, which must succeed; returns its JSON."""
    root = ["--data-root", str(data_root)] if data_root else []
    code, out, err = _invoke("--device", "cpu", "--quiet", "--json", *root, "probe", "--run", str(run), *args)
    assert code == 0, err
    return json.loads(out)


def _ok(result) -> dict:
    assert result.code == 0, result.err
    return json.loads(result.out)


def _fails(result, code: int, *words: str) -> str:
    """A one-line ``error: ...`` on stderr, the exit code, no traceback; returns the line."""
    assert result.code == code, (result.code, result.out, result.err)
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.err
    assert "Traceback" not in result.err + result.out
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def _rows(doc: dict, **match) -> list[dict]:
    return [r for r in doc["results"] if all(r[k] == v for k, v in match.items())]


def _next_row(table: str) -> str:
    """The text of the summary table from its "next" row on (a long path wraps onto the following lines)."""
    cells = [line.strip("│┃|+ ") for line in table.splitlines()]
    (start,) = [i for i, cell in enumerate(cells) if cell.split(" ")[0] == "next"]
    return " ".join(cells[start:])


def _outputs(run: Path, command: str) -> set[str]:
    """The output folders a command has written in a run so far."""
    folder = run / command
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


def _is_png(path: str | Path) -> bool:
    path = Path(path)
    if not path.is_file() or path.read_bytes()[:8] != b"\x89PNG\r\n\x1a\n":
        return False
    with Image.open(path) as image:
        return image.size[0] > 0 and image.size[1] > 0


# ----------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module", autouse=True)
def _module_env(tmp_path_factory):
    """Module-scoped runs train before the per-test isolation: keep them off the user's caches and data too."""
    root = tmp_path_factory.mktemp("module-env")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EBMCTL_RUNS", str(root / "runs"))
        mp.setenv("EBMCTL_CACHE", str(root / "cache"))
        mp.setenv("TORCH_HOME", str(root / "torch_home"))
        mp.delenv("EBMCTL_DATA", raising=False)
        yield


@pytest.fixture(scope="module")
def cebm(tmp_path_factory):
    """A tiny cebm-digits run and its summary table."""
    return _train(tmp_path_factory.mktemp("runs-cebm"), "--preset", "cebm-digits", *CEBM_TINY)


@pytest.fixture(scope="module")
def cebm_probe(cebm):
    """`probe --dataset digits --pixels --json` on the cebm-digits run, all four shot counts."""
    return _probe(cebm[0], "--dataset", "digits", "--pixels", *SMALL_PROBE)


@pytest.fixture(scope="module")
def cebmm(tmp_path_factory):
    """A tiny cebmm-digits run (mixture bias of 50 components)."""
    return _train(tmp_path_factory.mktemp("runs-cebmm"), "--preset", "cebmm-digits", *CEBM_TINY)[0]


@pytest.fixture(scope="module")
def ebclr(tmp_path_factory):
    """A tiny ebclr-digits run and its summary table."""
    return _train(tmp_path_factory.mktemp("runs-ebclr"), "--preset", "ebclr-digits", *EBCLR_TINY)


@pytest.fixture(scope="module")
def simclr(tmp_path_factory):
    """A tiny simclr-shapes run."""
    return _train(tmp_path_factory.mktemp("runs-simclr"), "--preset", "simclr-shapes", *RESNET_TINY)[0]


@pytest.fixture(scope="module")
def real_data(tmp_path_factory):
    """A data root with small MNIST, SVHN, DTD, CelebA, CIFAR-10/100 and ImageNet32 fixtures."""
    root = tmp_path_factory.mktemp("data")
    write_mnist(root, n_train=40, n_test=20)
    write_svhn(root, n_train=10, n_test=12)
    write_dtd(root, per_class=6)
    write_celeba(root, n=6)
    write_cifar10(root, n_train=40, n_test=20)
    write_cifar100(root, n_train=100, n_test=50)
    write_imagenet32(root, n_train=20, n_val=10)
    return root


@pytest.fixture(scope="module")
def mnist_run(tmp_path_factory, real_data):
    """cebm-mnist (the paper's MNIST encoder shape, shrunk) trained for 2 steps on the MNIST fixture."""
    runs = tmp_path_factory.mktemp("runs-mnist")
    return _train(runs, "--preset", "cebm-mnist", "--set", "data.verify_checksums=false", *CEBM_TINY,
                  data_root=real_data)[0]


@pytest.fixture(scope="module")
def cifar_run(tmp_path_factory, real_data):
    """ebclr-cifar10 shrunk (width 8, hidden 32, 64 slots, batch 8) trained for 2 steps on the CIFAR-10 fixture."""
    runs = tmp_path_factory.mktemp("runs-cifar")
    return _train(runs, "--preset", "ebclr-cifar10", "--set", "data.verify_checksums=false", "--set", "train.steps=2",
                  "--set", f"net.width={WIDTH}", "--set", "net.hidden=32", "--set", "buffer.size=64",
                  "--set", "train.batch_size=8", data_root=real_data)[0]


# ----------------------------------------------------------------------------------------------- cebm-digits


def test_cebm_run_completes_and_points_at_sample(cebm):
    run, table = cebm
    doc = json.loads((run / "run.json").read_text())
    assert doc["status"] == "completed" and doc["step"] == 2 and doc["preset"] == "cebm-digits"
    spec = json.loads((run / "spec.json").read_text())
    assert spec["method"]["name"] == "cebm" and spec["net"]["name"] == "cebm_conv"
    assert spec["data"]["image_size"] == 16 and spec["net"]["latent_dim"] == LATENT
    assert "ebmctl sample --run" in _next_row(table)


def test_probe_has_model_and_pixel_rows_for_every_shot_and_probe(cebm_probe):
    for kind in ("model", "pixels"):
        rows = _rows(cebm_probe, dataset="digits", features=kind)
        assert [r["shots"] for r in rows if r["probe"] == "linear"] == [1, 10, 100, "full"]
        assert [(r["probe"], r["shots"]) for r in rows if r["probe"] != "linear"] == [("knn20", "full"),
                                                                                       ("1nn", "full")]
    assert len(cebm_probe["results"]) == 12
    assert cebm_probe["counts"] == {"digits": {"train": 200, "test": 100}}


def test_probe_rows_are_consistent_statistics(cebm_probe):
    for row in cebm_probe["results"]:
        assert 0.0 <= row["mean"] <= 1.0 and row["std"] >= 0.0
        assert all(0.0 <= a <= 1.0 for a in row["accuracies"])
        if row["probe"] == "linear":
            assert row["runs"] == (1 if row["shots"] == "full" else SEEDS) == len(row["accuracies"])
            assert row["mean"] == pytest.approx(float(np.mean(row["accuracies"])))
            assert row["std"] == pytest.approx(float(np.std(row["accuracies"])))
            # accuracies on 100 test images are multiples of 1/100
            assert all(abs(a * 100 - round(a * 100)) < 1e-9 for a in row["accuracies"])
        elif row["probe"] == "knn20":
            assert row["runs"] == 1 and row["accuracies"] == [row["mean"]]


def test_probe_feature_dims_are_the_latent_and_the_pixels(cebm_probe):
    dims = {(r["features"], r["dim"]) for r in cebm_probe["results"]}
    assert dims == {("model", LATENT), ("pixels", 16 * 16)}  # cebm-digits is 1x16x16


def test_probe_writes_confusion_pictures_and_result_json(cebm, cebm_probe):
    run = cebm[0]
    out = Path(cebm_probe["out"])
    assert out.parent == run / "probe"
    assert set(cebm_probe["files"]) == {"confusion-digits-model", "confusion-digits-pixels"}
    for path in cebm_probe["files"].values():
        assert Path(path).parent == out and _is_png(path)
    saved = json.loads((out / "result.json").read_text())
    assert saved["command"] == "probe" and Path(saved["run"]) == run
    assert saved["results"] == cebm_probe["results"] and saved["counts"] == cebm_probe["counts"]


def test_probe_names_the_cebm_protocol_for_a_cebm_run(cebm_probe):
    protocol = cebm_probe["protocol"]
    assert protocol["name"] == "cebm" and "liblinear" in protocol["linear"] and "1/d" in protocol["knn"]
    assert "hao-w/cebm" in protocol["source"]
    assert {r["protocol"] for r in cebm_probe["results"]} == {"cebm"}  # the pixel rows too


def _digits_features(run: Path) -> dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Model and pixel features of the whole digits train and test splits, encoded as the probe encodes them."""
    method = load_run(resolve_run(str(run), run.parent), torch.device("cpu")).method
    out: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {"model": {}, "pixels": {}}
    for split in ("train", "test"):
        ds = load_dataset("digits", split=split, image_size=16, channels=1)
        x, y = ds.get_batch(torch.arange(len(ds)))
        y = np.asarray(y, dtype=np.int64).reshape(-1)
        model = [method.representation(to_float(c, dequantize=False)).flatten(1).detach().double().numpy()
                 for c in x.split(256)]
        out["model"][split] = (np.concatenate(model), y)
        out["pixels"][split] = (to_float(x, dequantize=False).flatten(1).double().numpy(), y)
    return out


@pytest.mark.parametrize("protocol", ["paper", "standard"])
def test_probe_rows_are_the_protocols_classifiers_on_model_and_pixel_features(cebm, protocol):
    """`--protocol standard` gives the previous probe's numbers; the default, CEBM's, fits liblinear on the raw
    features and votes 1/d in Euclidean distance, on the pixels as on the model's features."""
    from ebmctl.evaluation.linear_probes import fit_liblinear, linear_probe
    from ebmctl.evaluation.neighbours import knn_accuracy, knn_euclidean_accuracy

    doc = _probe(cebm[0], "--dataset", "digits", "--pixels", "--shots", "1,full", "--seeds", "2", "--knn", "5",
                 "--protocol", protocol)
    assert doc["protocol"]["name"] == ("cebm" if protocol == "paper" else "standard")
    feats = _digits_features(cebm[0])
    for kind in ("model", "pixels"):
        (tr_x, tr_y), (te_x, te_y) = feats[kind]["train"], feats[kind]["test"]
        if protocol == "standard":  # the probe as it was before protocols: lbfgs on standardised features, cosine
            linear = linear_probe(tr_x, tr_y, te_x, te_y, shots=[1, None], seeds=2)
            knn = knn_accuracy(tr_x, tr_y, te_x, te_y, k=5)
        else:
            linear = linear_probe(tr_x, tr_y, te_x, te_y, shots=[1, None], seeds=2,
                                  fit=lambda a, b, c, d, seed: fit_liblinear(a, b, c, d))
            knn = knn_euclidean_accuracy(tr_x, tr_y, te_x, te_y, k=5)
        rows = _rows(doc, features=kind)
        assert [(r["probe"], r["shots"]) for r in rows] == [("linear", 1), ("linear", "full"), ("knn5", "full"),
                                                            ("1nn", "full")]
        assert [r["accuracies"] for r in rows[:2]] == [r["accuracies"] for r in linear]
        assert rows[2]["mean"] == knn
        assert {r["protocol"] for r in rows} == {doc["protocol"]["name"]}


def test_probe_table_names_its_protocol(cebm, cli):
    args = ("probe", "--run", str(cebm[0]), "--shots", "full", "--knn", "0", "--train-n", "100", "--test-n", "50")
    paper = cli("--quiet", *args)
    assert paper.code == 0, paper.err
    assert "protocol cebm" in paper.out and "liblinear" in paper.out
    standard = cli("--quiet", *args, "--protocol", "standard")
    assert standard.code == 0, standard.err
    assert "protocol standard" in standard.out and "standardised" in standard.out and "liblinear" not in standard.out


def test_probe_refuses_an_unknown_protocol(cebm, cli):
    before = _outputs(cebm[0], "probe")
    _fails(cli("--quiet", "probe", "--run", str(cebm[0]), "--protocol", "papers"), 2, "--protocol", "standard")
    assert _outputs(cebm[0], "probe") == before


def test_probe_of_the_run_dataset_is_the_default(cebm, cli):
    doc = _ok(cli("--json", "--quiet", "probe", "--run", str(cebm[0]), "--shots", "full", "--knn", "0",
                  "--seeds", "1", "--test-n", "50"))
    assert [(r["dataset"], r["probe"]) for r in doc["results"]] == [("digits", "linear"), ("digits", "1nn")]
    assert doc["counts"]["digits"] == {"train": 1500, "test": 50}  # the whole train split of the embedded digits


# ----------------------------------------------------------------------------------------------- cebmm-digits


def test_cebmm_checkpoint_keeps_the_mixture_means(cebmm):
    tensors = load_file(str(cebmm / "checkpoints" / "model.safetensors"))
    (key,) = [k for k in tensors if k.endswith("bias_mean")]
    means = tensors[key]
    assert means.shape == (50, LATENT)  # cebmm-digits: 50 components
    assert means.std() > 0.5 and len(torch.unique(means[:, 0])) == 50  # N(0, 1) draws, not a constant
    run = load_run(resolve_run(str(cebmm), cebmm.parent), torch.device("cpu"))
    assert torch.equal(run.method.net.bias_mean.cpu(), means)  # the reloaded net has the saved means


def test_cebmm_samples_a_grid(cebmm, cli):
    doc = _ok(cli("--json", "--quiet", "sample", "--run", str(cebmm), "--n", "4", "--steps", "3"))
    assert doc["n"] == 4 and doc["steps"] == 3
    assert _is_png(doc["files"]["grid"])
    samples = load_file(doc["files"]["samples"])["samples"]
    assert samples.shape == (4, 1, 16, 16) and torch.isfinite(samples).all()
    assert samples.min() >= 0.0 and samples.max() <= 1.0


def test_cebmm_ood_reports_energy_gradient_mass_and_latent_nn(cebmm, cli):
    doc = _ok(cli("--json", "--quiet", "ood", "--run", str(cebmm), "--in", "digits", "--out", "textures",
                  "--score", "energy,grad_norm,latent_nn", "--n", "20"))
    assert [r["score"] for r in doc["results"]] == ["energy", "grad_norm", "latent_nn"]
    for row in doc["results"]:
        assert 0.0 <= row["auroc"] <= 1.0 and 0.0 <= row["fpr95"] <= 1.0
        assert row["in"] == "digits" and row["out"] == "textures" and row["n_in"] == row["n_out"] == 20
    scores = np.load(doc["files"]["scores"])
    assert sorted(scores.files) == sorted(f"{d}__{s}" for d in ("digits", "textures")
                                          for s in ("energy", "grad_norm", "latent_nn"))
    assert all(np.isfinite(scores[k]).all() for k in scores.files)
    assert (scores["digits__latent_nn"] <= 0).all()  # minus a distance


def test_latent_nn_is_minus_the_distance_to_the_nearest_training_representation(cebmm, cli):
    """Recompute the score in float64 on every digits test image and compare (the order does not matter)."""
    run = load_run(resolve_run(str(cebmm), cebmm.parent), torch.device("cpu"))

    def latents(split: str) -> torch.Tensor:
        ds = load_dataset("digits", split=split, image_size=16, channels=1)
        x = to_float(ds.get_batch(torch.arange(len(ds)))[0], dequantize=False)
        return run.method.representation(x).flatten(1).double()

    train, test = latents("train"), latents("test")
    exact = -torch.cdist(test, train, compute_mode="donot_use_mm_for_euclid_dist").min(dim=1).values
    doc = _ok(cli("--json", "--quiet", "ood", "--run", str(cebmm), "--in", "digits", "--out", "textures",
                  "--score", "latent_nn", "--n", str(len(test))))
    reported = np.load(doc["files"]["scores"])["digits__latent_nn"]
    assert len(reported) == len(test)
    np.testing.assert_allclose(np.sort(reported), np.sort(exact.numpy()), rtol=1e-2, atol=1e-6)


# ----------------------------------------------------------------------------------------------- ebclr-digits


def test_ebclr_train_table_points_at_probe(ebclr):
    run, table = ebclr
    assert json.loads((run / "run.json").read_text())["status"] == "completed"
    row = _next_row(table)
    assert "ebmctl probe --run" in row and "ebmctl sample" not in row


def test_ebclr_state_checkpoint_keeps_the_buffer_visits(ebclr):
    run = ebclr[0]
    state = load_file(str(run / "checkpoints" / "state.safetensors"))
    (key,) = [k for k in state if "visits" in k]
    visits = state[key]
    assert visits.shape == (64,)  # one count per slot
    # two steps of 16 chains, each advanced once per step: at most 32 visits, none above 2
    assert 0 < int(visits.sum()) <= 32 and int(visits.max()) <= 2 and int(visits.min()) >= 0
    assert 16 <= int((visits > 0).sum()) <= 32  # the first step alone visits 16 distinct slots
    model = load_file(str(run / "checkpoints" / "model.safetensors"))
    assert not any("visits" in k for k in model) and any(k.startswith("model.") for k in model)


def test_ebclr_probe_on_digits(ebclr):
    doc = _probe(ebclr[0], "--dataset", "digits", "--shots", "1,full", "--knn", "5", *SMALL_PROBE)
    assert [(r["probe"], r["shots"], r["runs"]) for r in doc["results"]] == [
        ("linear", 1, SEEDS), ("linear", "full", 1), ("knn5", "full", 1), ("1nn", "full", 1)]
    for row in doc["results"]:
        assert row["features"] == "model" and row["dim"] == 8 * WIDTH  # the pooled ResNet-18 backbone
        assert 0.0 <= row["mean"] <= 1.0 and row["protocol"] == "ebclr"
    assert doc["protocol"]["name"] == "ebclr" and "Adam" in doc["protocol"]["linear"]
    assert list(doc["files"]) == ["confusion-digits-model"] and _is_png(doc["files"]["confusion-digits-model"])


def test_probe_split_scores_the_validation_split_and_names_it(ebclr):
    args = ["--dataset", "mnist5k", "--shots", "full", "--knn", "5", "--seeds", "1", "--train-n", "100"]
    val, test = _probe(ebclr[0], *args, "--split", "val"), _probe(ebclr[0], *args)
    assert val["counts"] == {"mnist5k": {"train": 100, "test": 500}}  # mnist5k's val split: 500 images
    assert test["counts"] == {"mnist5k": {"train": 100, "test": 1000}}  # the default: its test split
    assert {r["split"] for r in val["results"]} == {"val"} and {r["split"] for r in test["results"]} == {"test"}


@pytest.mark.parametrize("split", ["train", "validation"])
def test_probe_split_must_be_a_held_out_split(split, ebclr, cli):
    before = _outputs(ebclr[0], "probe")
    line = _fails(cli("--quiet", "probe", "--run", str(ebclr[0]), "--dataset", "mnist5k", "--split", split), 2,
                  "--split", "no held-out split")
    assert "val" in line and "test" in line  # the hint names the held-out splits there are
    assert _outputs(ebclr[0], "probe") == before


@pytest.mark.parametrize("method", ["ebclr", "simclr"])
def test_sampling_an_encoder_run_is_a_one_line_error_naming_probe(method, ebclr, simclr, cli):
    run = ebclr[0] if method == "ebclr" else simclr
    before = _outputs(run, "sample")
    line = _fails(cli("--quiet", "sample", "--run", str(run), "--n", "4", "--steps", "2"), 1, "ebmctl probe")
    assert method in line
    assert _outputs(run, "sample") == before == set()


def test_ebclr_ood_defaults_to_latent_nn(ebclr, cli):
    run = str(ebclr[0])
    doc = _ok(cli("--json", "--quiet", "ood", "--run", run, "--in", "digits", "--out", "textures", "--n", "20"))
    assert [r["score"] for r in doc["results"]] == ["latent_nn"]
    row = doc["results"][0]
    assert 0.0 <= row["auroc"] <= 1.0 and row["n_in"] == row["n_out"] == 20
    for score in ("energy", "grad_norm"):
        _fails(cli("--quiet", "ood", "--run", run, "--in", "digits", "--out", "textures", "--n", "8", "--score",
                   score), 1, "latent_nn")


# ----------------------------------------------------------------------------------------------- simclr-shapes


def test_simclr_transfer_probe_has_rows_for_both_datasets(simclr, tmp_path):
    out = simclr / "probe-out"  # --out stays inside the run directory
    doc = _probe(simclr, "--dataset", "shapes32", "--transfer", "digits", "--shots", "10,full", "--out", str(out),
                 *SMALL_PROBE)
    assert [(r["dataset"], r["probe"], r["shots"]) for r in doc["results"]] == [
        (name, probe, shots) for name in ("shapes32", "digits")
        for probe, shots in (("linear", 10), ("linear", "full"), ("knn20", "full"), ("1nn", "full"))]
    assert doc["counts"] == {"shapes32": {"train": 200, "test": 100}, "digits": {"train": 200, "test": 100}}
    assert {r["dim"] for r in doc["results"]} == {8 * WIDTH}  # the same frozen features on both datasets
    assert doc["protocol"]["name"] == "ebclr"  # SimCLR, EBCLR's baseline, is probed as EBCLR probes
    assert [r["runs"] for r in _rows(doc, probe="linear", shots=10)] == [SEEDS, SEEDS]
    assert sorted(doc["files"]) == ["confusion-digits-model", "confusion-shapes32-model"]
    assert Path(doc["out"]) == out and (out / "result.json").is_file()
    assert all(_is_png(p) and Path(p).parent == out for p in doc["files"].values())
    assert not (simclr / "probe").exists()  # --out replaces <run>/probe/<timestamp>


# ----------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("shots", ["0", "abc", ",", "1,-3", "10,lots"])
def test_bad_shots_are_one_line_usage_errors(shots, ebclr, cli):
    before = _outputs(ebclr[0], "probe")
    _fails(cli("--quiet", "probe", "--run", str(ebclr[0]), "--shots", shots), 2, "--shots")
    assert _outputs(ebclr[0], "probe") == before


def test_a_probe_that_fails_on_its_data_leaves_no_output_folder(ebclr, cli, tmp_path):
    run = ebclr[0]
    before = _outputs(run, "probe")
    _fails(cli("--quiet", "--data-root", str(tmp_path / "empty"), "probe", "--run", str(run), "--dataset", "cifar10"),
           1, "cifar-10-batches-py")
    assert _outputs(run, "probe") == before


def test_probe_refuses_a_2d_points_run(cli):
    assert cli("--quiet", "train", "--preset", "igebm-toy", "--steps", "2").code == 0
    (run,) = list(cli.runs.iterdir())
    _fails(cli("--quiet", "probe", "--run", str(run)), 2, "2D points")
    assert _outputs(run, "probe") == set()


@pytest.mark.parametrize(("dataset", "words"), [("digitz", ("unknown dataset", "did you mean 'digits'")),
                                                ("8gaussians", ("2D points",))])
def test_probe_refuses_an_unknown_or_point_dataset(dataset, words, ebclr, cli):
    _fails(cli("--quiet", "probe", "--run", str(ebclr[0]), "--dataset", dataset), 2, *words)


def test_a_preset_with_the_wrong_net_leaves_no_run(cli):
    _fails(cli("--quiet", "train", "--preset", "simclr-shapes", "--set", "net.name=small_conv", "--steps", "1"), 2,
           "net.")
    assert not cli.runs.exists() or not any(cli.runs.iterdir())


SPEC_MISMATCHES = {
    "encoder-on-a-conv-net": ('[data]\nname = "shapes32"\nimage_size = 16\n[net]\nname = "small_conv"\n'
                              '[method]\nname = "simclr"\n', ("simclr", "resnet18")),
    "cebm-on-an-encoder": ('[data]\nname = "digits"\nimage_size = 16\n[net]\nname = "resnet18"\n'
                           '[method]\nname = "cebm"\n', ("cebm", "cebm_conv")),
    "conjugate-net-elsewhere": ('[data]\nname = "digits"\nimage_size = 16\n[net]\nname = "cebm_conv"\n'
                                '[method]\nname = "igebm"\n', ("igebm", "cebm_conv")),
    "encoder-on-points": ('[data]\nname = "8gaussians"\n[method]\nname = "ebclr"\n', ("ebclr", "2D points")),
}


@pytest.mark.parametrize("case", list(SPEC_MISMATCHES))
def test_a_method_and_net_mismatch_is_one_line_and_leaves_no_run(case, cli, tmp_path):
    text, words = SPEC_MISMATCHES[case]
    spec = tmp_path / f"{case}.toml"
    spec.write_text(text)
    _fails(cli("--quiet", "train", "--preset", str(spec), "--steps", "1"), 2, *words)
    assert not cli.runs.exists() or not any(cli.runs.iterdir())


@pytest.mark.parametrize(("override", "words"), [("buffer.policy=fifo", ("slots",)),
                                                 ("buffer.size=8", ("buffer.size 8", "batch"))])
def test_ebclr_buffer_settings_are_checked_before_the_run_exists(override, words, cli):
    _fails(cli("--quiet", "train", "--preset", "ebclr-digits", "--set", override, "--steps", "1"), 2, *words)
    assert not cli.runs.exists() or not any(cli.runs.iterdir())


# ----------------------------------------------------------------------------------------------- real data


def test_cebm_mnist_probe_on_the_mnist_fixture(mnist_run, real_data):
    run = load_run(resolve_run(str(mnist_run), mnist_run.parent), torch.device("cpu"))
    assert run.info.name == "mnist" and run.info.shape == (1, 28, 28)
    doc = _probe(mnist_run, "--dataset", "mnist", "--seeds", "1", "--shots", "1,full", data_root=real_data)
    assert doc["counts"] == {"mnist": {"train": 40, "test": 20}}
    assert [(r["probe"], r["shots"], r["runs"]) for r in doc["results"]] == [
        ("linear", 1, 1), ("linear", "full", 1), ("knn20", "full", 1), ("1nn", "full", 1)]
    for row in doc["results"]:
        assert row["dim"] == LATENT and 0.0 <= row["mean"] <= 1.0
        # 20 test images: every accuracy is a multiple of 1/20
        assert all(abs(a * 20 - round(a * 20)) < 1e-9 for a in row["accuracies"])
    assert _is_png(doc["files"]["confusion-mnist-model"])


def test_cebm_mnist_ood_against_svhn_and_dtd(mnist_run, real_data, cli):
    doc = _ok(cli("--json", "--quiet", "--data-root", str(real_data), "ood", "--run", str(mnist_run), "--in", "mnist",
                  "--out", "svhn,dtd", "--score", "energy,grad_norm,latent_nn", "--n", "10"))
    assert [(r["out"], r["score"]) for r in doc["results"]] == [
        (out, score) for out in ("svhn", "dtd") for score in ("energy", "grad_norm", "latent_nn")]
    assert doc["counts"]["mnist"] == 10 and doc["counts"]["svhn"] == 10
    for row in doc["results"]:
        assert 0.0 <= row["auroc"] <= 1.0 and row["n_out"] == doc["counts"][row["out"]] > 0


def test_probe_refuses_an_unlabelled_dataset(mnist_run, real_data, cli):
    _fails(cli("--quiet", "--data-root", str(real_data), "probe", "--run", str(mnist_run), "--dataset", "celeba"), 2,
           "celeba", "no class labels")


@pytest.mark.filterwarnings("ignore:The number of unique classes:UserWarning")  # 100 classes, 100 images
def test_ebclr_cifar10_probe_and_transfer_to_cifar100(cifar_run, real_data):
    spec = json.loads((cifar_run / "spec.json").read_text())
    assert spec["preset"] == "ebclr-cifar10" and spec["net"]["name"] == "resnet18"
    assert spec["net"]["batch_norm"] is False and spec["train"]["batch_size"] == 8
    doc = _probe(cifar_run, "--dataset", "cifar10", "--transfer", "cifar100", "--seeds", "1", "--shots", "1,full",
                 data_root=real_data)
    assert doc["counts"] == {"cifar10": {"train": 40, "test": 20}, "cifar100": {"train": 100, "test": 50}}
    for name in ("cifar10", "cifar100"):
        rows = _rows(doc, dataset=name)
        assert [(r["probe"], r["shots"]) for r in rows] == [("linear", 1), ("linear", "full"), ("knn20", "full"),
                                                            ("1nn", "full")]
        assert all(r["dim"] == 8 * WIDTH and 0.0 <= r["mean"] <= 1.0 for r in rows)
        assert _is_png(doc["files"][f"confusion-{name}-model"])


def test_imagenet32_is_probed_on_its_val_split(cifar_run, real_data):
    """ImageNet32 has no test split; its held-out split is val (the registry's eval_split)."""
    doc = _probe(cifar_run, "--dataset", "imagenet32", "--seeds", "1", "--shots", "full", data_root=real_data)
    assert doc["counts"] == {"imagenet32": {"train": 20, "test": 10}}
    assert [r["probe"] for r in doc["results"]] == ["linear", "knn20", "1nn"]
