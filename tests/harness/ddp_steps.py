"""Training steps whose data and negatives are fixed tensors, so that a run on several processes can be compared
with a run on one: process r of n takes rows [r*b, (r+1)*b) of every global tensor, b = batch / n.

Every random draw of a step is replaced by such rows (chains, latents, bank slots), the Langevin noise and data
noise are off, augmentations are the identity and BatchNorm layers keep their initial statistics; what is left
is each method's arithmetic, its nets' forward and backward passes and the gradient averaging.

Run as a script on every process (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT set): ``python ddp_steps.py OUT``
writes ``OUT/rank{r}.pt`` with every case's results, and trains ``quickstart`` through the service (4 steps
straight, and 2 steps resumed to 4) under ``OUT/straight`` and ``OUT/resumed``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ebmctl.data import DataInfo
from ebmctl.methods.hat import GeneratorBank
from ebmctl.recipes import build_method, resolve_spec
from ebmctl.services.runtime.distributed.processes import Processes, session
from ebmctl.services.runtime.trainer import seed_everything

BATCH = 8  # global batch
STEPS = 2
# Cases whose float32 steps are ill-conditioned run in float64; float32 rounding alone, which differs between
# a batch of 4 and one of 8, moved their gradients by 1e-4 to 1e-3. EBCLR: at initialisation the small encoder
# maps every input to nearly the same embedding (pairwise cosine 0.99986). ICD: instance norm over the 2x2 maps
# of a 16 px input (and without norm layers, energies of order 1e7).
FLOAT64 = {"ebclr", "icd"}
ZERO_NOISE = ["sampler.noise=0.0", f"train.batch_size={BATCH}", "sampler.steps=2"]

IMAGES16 = DataInfo("shapes32", "image", "train", (3, 16, 16))
IMAGES32 = DataInfo("shapes32", "image", "train", (3, 32, 32))
DIGITS16 = DataInfo("digits", "image", "train", (1, 16, 16), num_classes=10)
POINTS = DataInfo("8gaussians", "points", "train", (2,))

# name: (preset, overrides, data); icd uses its released net, whose unconditional label maps no loss reaches
CASES: dict[str, tuple[str | None, list[str], DataInfo]] = {
    "igebm": ("igebm-toy", [*ZERO_NOISE, "net.hidden=16", "net.depth=2"], POINTS),
    "icd": (None, [*ZERO_NOISE, "method=icd", "net.width=8", "method.entropy=false", f"method.kl_chains={BATCH}",
                   "train.ema=0.9"], IMAGES16),
    "cebm": ("cebm-digits", [*ZERO_NOISE, "net.channels=[4, 4, 8, 8]", "net.latent_dim=8", "net.hidden=16",
                             "method.data_noise=0.0"], DIGITS16),
    "clel": ("clel-shapes", [*ZERO_NOISE, "net.channels=[4, 4, 8, 8]", "net.hidden=16", "net.latent_dim=8",
                             "method.encoder.width=4", "method.encoder.out_dim=8", "method.encoder.hidden=16",
                             "method.warmup=0", "buffer.size=16"], IMAGES16),
    "ebclr": ("ebclr-shapes", [*ZERO_NOISE, "net.width=4", "net.hidden=16", "net.out_dim=8", "buffer.size=16",
                               "method.view_noise=0.0", "method.sigma_min=0.0", "method.sigma_max=0.0"], IMAGES16),
    "simclr": ("simclr-shapes", [f"train.batch_size={BATCH}", "net.width=4", "net.hidden=16", "net.out_dim=8"],
               IMAGES16),
    "sngan": ("sngan-shapes", [f"train.batch_size={BATCH}", "net.ngf=16", "net.ndf=16"], IMAGES32),
    "ae": ("ae-shapes", [f"train.batch_size={BATCH}", "net.nef=8", "net.ngf=8", "method.latent_noise=0.0"],
           IMAGES16),
    "hat": ("hat-synth-shapes", [f"train.batch_size={BATCH}", "sampler.steps=2", "net.ndf=16",
                                 "hat.generator_net.ngf=16", "method.bank_size=16", "method.data_noise=0.0",
                                 "method.temperature=1e-3", "method.epsilon=0.01"], IMAGES32),
}


def _tensor(seed: int, *shape: int, scale: float = 1.0, normal: bool = False) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g) if normal else torch.rand(shape, generator=g)) * scale


def _fixed_batchnorm(net: nn.Module) -> None:
    """BatchNorm layers normalise with their initial statistics (mean 0, variance 1) in every mode."""
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
            m.train = lambda mode=True, m=m: m  # type: ignore[method-assign]


def build_case(name: str, procs: Processes, average: bool = True) -> tuple[Any, Callable[[int], Tensor]]:
    """The method of case ``name`` as process ``procs.rank`` of ``procs.world`` runs it, with its randomness fixed;
    and ``data(step)``, this process's rows of the global data batch of that step. ``average=False`` leaves the
    nets unwrapped: the process trains on its rows alone, as if gradients were never averaged."""
    preset, overrides, info = CASES[name]
    spec = resolve_spec(preset, overrides)
    seed_everything(0)  # the same initial weights on every process and in the reference
    method = build_method(spec, info, torch.device("cpu"))
    if name in FLOAT64:
        for model in method.trained_models():
            model.net.double()
    if procs.parallel and average:
        method.replicate(procs.replicas())
    rank, shape = procs.rank, tuple(info.shape)

    def rows(t: Tensor, n: int) -> Tensor:
        return t[rank * n : (rank + 1) * n].clone()

    points = info.kind == "points"
    lo, hi = getattr(method, "pixel_range", (0.0, 1.0))
    chains = _tensor(1, BATCH, *shape, scale=2.0, normal=True) if points else _tensor(1, BATCH, *shape) * (hi - lo) + lo
    if name in FLOAT64:
        chains = chains.double()
    for model in method.trained_models():
        for net in (model.net, model.ema_net):
            if net is not None:
                _fixed_batchnorm(net)
    if name in ("igebm", "icd"):
        method.chains.draw = lambda n, device: rows(chains, n)
    if name in ("cebm", "clel"):
        method.chains.draw_slots = lambda n, device: (torch.arange(n), rows(chains, n))
    if name in ("clel", "ebclr", "simclr"):
        method.augment = lambda x: x
    if name == "ebclr":
        method.draw_chains = lambda x: (torch.arange(len(x)), rows(chains, len(x)),
                                        torch.zeros(len(x), dtype=torch.long))
    if name == "sngan":
        z = _tensor(2, BATCH, method.generator.net.nz, normal=True)
        method.generator.net.sample_latent = lambda n, device=None: rows(z, n)
    if name == "hat":
        z = _tensor(2, BATCH, method.gen.nz, normal=True)
        method.latents = lambda n: rows(z, n)
        method.sampler = replace(method.sampler, noise=False)
        # Past samples that G does not already reproduce: a bank of (z, G(z)) pairs, as a fresh run starts
        # with, gives the first generator update a loss of rounding size (~1e-10) whose direction, after Adam's
        # normalisation, is that rounding, so the comparison would measure nothing but the conv kernels' order.
        bank_z = _tensor(3, 16, method.gen.nz, normal=True)
        method.bank = GeneratorBank(bank_z, _tensor(4, 16, *shape) * 2 - 1)
        method.bank.pick = lambda n: torch.arange(rank * n, (rank + 1) * n)

    def data(step: int) -> Tensor:
        x = _tensor(10 + step, BATCH, *shape, scale=2.0, normal=True) if points else _tensor(10 + step, BATCH, *shape)
        if name in FLOAT64:
            x = x.double()
        return rows(x, BATCH // procs.world)

    return method, data


def run_case(name: str, procs: Processes, steps: int = STEPS, average: bool = True) -> dict[str, Any]:
    """Weights (and EMA) after ``steps`` updates, the last update's gradients and the metrics (means over the
    processes), keyed as in a one-process checkpoint."""
    method, data = build_case(name, procs, average)
    before = {k: v.clone() for k, v in method.weight_tensors().items()}
    metrics = []
    for step in range(steps):
        m = method.train_step(data(step))
        metrics.append(procs.agree(m, False)[0] if average else m)
    after = method.weight_tensors()
    grads = {f"{i}.{k}": p.grad.clone() for i, model in enumerate(method.trained_models())
             for k, p in model.net.named_parameters() if p.grad is not None}
    return {"weights": {k: v.clone() for k, v in after.items()},
            "delta": {k: (after[k] - before[k]).float() for k in after if after[k].is_floating_point()},
            "grads": grads, "metrics": metrics}


def _train_runs(out: Path) -> None:
    """quickstart on these processes through the service: 4 steps straight, and 2 steps resumed to 4."""
    from ebmctl.services.train import resume, train

    spec = resolve_spec("quickstart", ["train.batch_size=8", "sampler.steps=3", "train.log_every=1",
                                       "train.checkpoint_every=2", "train.sample_every=100", "buffer.size=20",
                                       "method.kl_chains=4", "method.entropy_min_buffer=10",
                                       "method.entropy_refs=5"], {"train.steps": 4})
    train(spec, runs_root=out / "straight", device="cpu")
    part = train(spec.model_copy(update={"train": spec.train.model_copy(update={"steps": 2})}),
                 runs_root=out / "resumed", device="cpu")
    resume(part.run_dir, overrides={"train": {"steps": 4}}, device="cpu")


def launch(out: Path, world: int = 2, timeout: float = 240.0, env: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Run this script on ``world`` local processes as torchrun would (gloo, a free port) and return each rank's
    results; raises with the processes' output if one fails or they do not finish in ``timeout`` seconds. Each
    process writes its output to ``out/rank{r}.log`` (a pipe read one process at a time could fill and block the
    other process, and with it the collective both wait in)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    procs, logs = [], []
    for rank in range(world):
        penv = {**os.environ, **(env or {}), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "RANK": str(rank),
                "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank), "LOCAL_WORLD_SIZE": str(world),
                "OMP_NUM_THREADS": "1", "EBMCTL_RUNS": str(out / "runs")}
        logs.append(out / f"rank{rank}.log")
        with logs[-1].open("w") as log:
            procs.append(subprocess.Popen([sys.executable, __file__, str(out)], env=penv, stdout=log,
                                          stderr=subprocess.STDOUT))
    deadline = time.monotonic() + timeout
    try:
        for p in procs:
            p.wait(timeout=max(deadline - time.monotonic(), 0.1))
    except subprocess.TimeoutExpired:
        for q in procs:
            q.kill()
        raise RuntimeError(f"the {world} training processes did not finish in {timeout:.0f} s\n" + _tails(logs)) from None
    if any(p.returncode for p in procs):
        raise RuntimeError(_tails(logs))
    return [torch.load(out / f"rank{r}.pt") for r in range(world)]


def _tails(logs: list[Path], chars: int = 3000) -> str:
    return "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-chars:]}" for log in logs)


def main(out: Path) -> None:
    torch.use_deterministic_algorithms(True)
    with session("cpu") as procs:
        results = {name: run_case(name, procs) for name in CASES}
        rank = procs.rank
    torch.save(results, out / f"rank{rank}.pt")
    _train_runs(out)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
