"""`ebmctl import --from cebm`: a checkpoint written the way hao-w/cebm's ``save_models`` writes it (its nets
re-derived here from the released definitions' key names and shapes, random weights) becomes a run whose
energies and posterior means equal the released computation's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from ebmctl.methods.capabilities import chain_buffer
from ebmctl.runs import resolve_run
from ebmctl.services.runtime.loading import load_replay_buffer, load_run


class ReleasedCebm(nn.Module):
    """hao-w/cebm's CEBM (camera-ready '4cnn'; master without ``mlp_net``): ``conv_net`` of four convs with SiLU,
    ``mlp_net`` Linear + SiLU, heads ``nss1_net``, ``nss2_net``; a mixture's ``ib_means``/``ib_log_stds`` are
    Parameters with --optimize_ib."""

    def __init__(self, in_channels: int, channels: list[int], hidden: int, flat: int, latent: int = 128,
                 components: int = 0) -> None:
        super().__init__()
        if components:
            self.ib_means = nn.Parameter(torch.randn(components, latent))
            self.ib_log_stds = nn.Parameter(0.1 * torch.randn(components, latent))
        layers, c_in = [], in_channels
        for c, k, s in zip(channels, (3, 4, 4, 4), (1, 2, 2, 2), strict=True):
            layers += [nn.Conv2d(c_in, c, k, s, 1), nn.SiLU()]
            c_in = c
        self.conv_net = nn.Sequential(*layers)
        self.mlp_net = nn.Sequential(nn.Linear(flat, hidden), nn.SiLU()) if hidden else nn.Identity()
        self.nss1_net = nn.Linear(hidden or flat, latent)
        self.nss2_net = nn.Linear(hidden or flat, latent)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.mlp_net(self.conv_net(x).flatten(1))
        return self.nss1_net(h), -self.nss2_net(h) ** 2

    @staticmethod
    def log_partition(nat1: Tensor, nat2: Tensor) -> Tensor:
        return -0.25 * nat1**2 / nat2 - 0.5 * (-2 * nat2).log()

    def prior_nats(self) -> tuple[Tensor, Tensor]:
        if hasattr(self, "ib_means"):
            mean, std = self.ib_means, self.ib_log_stds.exp()
        else:
            mean, std = torch.zeros(self.nss1_net.out_features), torch.ones(self.nss1_net.out_features)
        return mean / std**2, -0.5 / std**2

    def energy(self, x: Tensor) -> Tensor:
        t1, t2 = self.forward(x)
        n1, n2 = self.prior_nats()
        if not hasattr(self, "ib_means"):
            return self.log_partition(n1, n2).sum(0) - self.log_partition(n1 + t1, n2 + t2).sum(1)
        prior = self.log_partition(n1, n2)
        posterior = self.log_partition(n1.unsqueeze(0) + t1.unsqueeze(1), n2.unsqueeze(0) + t2.unsqueeze(1))
        k = torch.tensor([float(n1.shape[0])]).log()
        return k - torch.logsumexp(posterior.sum(2) - prior.sum(1), dim=-1)

    def posterior_mean(self, x: Tensor) -> Tensor:
        t1, t2 = self.forward(x)
        n1, n2 = self.prior_nats()
        return -0.5 * (n1 + t1) / (n2 + t2)




CASES = {  # name: (in channels, channels, FC, flat, components, image side)
    "camera-ready mnist": (1, [32, 32, 64, 64], 256, 576, 0, 28),
    "master mnist": (1, [32, 32, 64, 64], 0, 576, 0, 28),
    "camera-ready cifar10 mixture": (3, [16, 16, 32, 32], 64, 512, 10, 32),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_an_imported_cebm_computes_the_released_energy(tmp_path, case, cli_json):
    in_channels, channels, hidden, flat, components, side = CASES[case]
    torch.manual_seed(0)
    released = ReleasedCebm(in_channels, channels, hidden, flat, components=components).eval()
    name = "CEBM_GMM_d=cifar10_z=128" if components else "CEBM_Gaussian_d=mnist_z=128"
    path = tmp_path / name
    torch.save({"ebm": released.state_dict()}, path)  # save_models
    code, doc = cli_json("import", "--from", "cebm", str(path))
    assert code == 0
    run = load_run(resolve_run(doc["run"], cli_json.runs), torch.device("cpu"))
    assert run.spec.method.name == "cebm" and run.info.shape == (in_channels, side, side)
    meta = json.loads((Path(doc["run"]) / "run.json").read_text())
    assert meta["status"] == "completed" and meta["imported"]["source"] == str(path)
    assert len(meta["imported"]["sha256"]) == 64

    images = torch.rand(6, in_channels, side, side)
    with torch.no_grad():
        want = released.energy(images * 2 - 1)  # the released code works on images in [-1, 1]
    assert torch.allclose(run.method.energy(images), want, rtol=1e-5, atol=1e-5)
    if not components:
        with torch.no_grad():
            mean = released.posterior_mean(images * 2 - 1)
        assert torch.allclose(run.method.representation(images), mean, rtol=1e-5, atol=1e-5)


def test_a_mixture_without_its_means_and_a_foreign_file_are_refused(tmp_path, cli_json):
    released = ReleasedCebm(1, [8, 8, 8, 8], 0, 72)
    lost = tmp_path / "CEBM_GMM_d=mnist_K=20"
    torch.save({"ebm": released.state_dict()}, lost)
    code, _ = cli_json("import", "--from", "cebm", str(lost))
    assert code == 1 and "means were never saved" in cli_json.err
    other = tmp_path / "model.pt"
    torch.save({"model": released.state_dict()}, other)
    code, _ = cli_json("import", "--from", "cebm", str(other))
    err = cli_json.err
    assert code == 1 and "no 'ebm' state_dict" in err and "\n" not in err.strip()
    assert not cli_json.runs.exists() or not any(cli_json.runs.iterdir())


def test_a_released_buffer_is_stored_as_the_run_stores_chains(tmp_path, cli_json):
    path, chains = tmp_path / "CEBM_Gaussian_d=mnist_z=128", tmp_path / "buffer-CEBM_Gaussian_d=mnist_z=128"
    torch.save({"ebm": ReleasedCebm(1, [8, 8, 16, 16], 32, 144).state_dict()}, path)
    released = torch.rand(128, 1, 28, 28) * 2 - 1
    torch.save(released, chains)
    code, doc = cli_json("import", "--from", "cebm", str(path), "--buffer", str(chains), "--set", "buffer.uint8=true")
    assert code == 0, cli_json.err
    run = load_run(resolve_run(doc["run"], cli_json.runs), torch.device("cpu"))
    load_replay_buffer(run)
    buffer = chain_buffer(run.method)
    quantised = ((released + 1) / 2 * 256).floor().clamp(0, 255).to(torch.uint8)  # as a uint8 run stores chains
    assert torch.equal(buffer.storage, quantised)
    code, _ = cli_json("import", "--from", "cebm", str(path), "--buffer", str(chains), "--set", "buffer.size=200")
    assert code == 1 and "drop --set buffer.size" in cli_json.err and "\n" not in cli_json.err.strip()


def test_an_imported_run_samples_scores_ood_and_probes_through_the_cli(tmp_path, cli_json):
    torch.manual_seed(0)
    path = tmp_path / "CEBM_Gaussian_d=mnist_z=128"
    torch.save({"ebm": ReleasedCebm(1, [8, 8, 16, 16], 32, 144).state_dict()}, path)
    chains = tmp_path / "buffer-CEBM_Gaussian_d=mnist_z=128"  # the trainer's last act, apart from the weights
    torch.save(torch.rand(256, 1, 28, 28) * 2.4 - 1.2, chains)
    code, doc = cli_json("import", "--from", "cebm", str(path), "--preset", "cebm-mnist5k", "--buffer", str(chains))
    assert code == 0 and doc["preset"] == "cebm-mnist5k" and any(u.startswith(chains.name) for u in doc["used"])
    run = load_run(resolve_run(doc["run"], cli_json.runs), torch.device("cpu"))
    load_replay_buffer(run)
    assert torch.equal(chain_buffer(run.method).storage, torch.load(chains, weights_only=True))
    code, continued = cli_json("sample", "--run", doc["run"], "--n", "4", "--steps", "2", "--init", "buffer")
    assert code == 0 and continued["n"] == 4
    code, sampled = cli_json("sample", "--run", doc["run"], "--n", "4", "--steps", "2")
    assert code == 0 and sampled["n"] == 4
    code, scored = cli_json("ood", "--run", doc["run"], "--in", "mnist5k", "--out", "constant", "--n", "16")
    assert code == 0 and scored["counts"] == {"mnist5k": 16, "constant": 16}
    code, probed = cli_json("probe", "--run", doc["run"], "--shots", "1", "--seeds", "1", "--knn", "0")
    assert code == 0 and all(0.0 <= r["mean"] <= 1.0 for r in probed["results"])
    weights = (Path(doc["run"]) / "checkpoints" / "model.safetensors").read_bytes()
    code, _ = cli_json("train", "--resume", doc["run"], "--steps", "2")  # step 0: must not train over the release
    assert code == 2 and "holds the released weights" in cli_json.err
    assert (Path(doc["run"]) / "checkpoints" / "model.safetensors").read_bytes() == weights
