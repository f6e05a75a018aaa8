"""What limits a CEBM run's posterior-mean probe: the features' scale or their content?

    OMP_NUM_THREADS=1 python bench/cebm_features.py RUN [CHECKPOINT ...]

For the run's model (or each named model checkpoint of it), on the validation split of its dataset: the
posterior means' common offset (RMS over dimensions of their mean over images) and spread (mean over dimensions
of their std across images), the energies of data and of U[-1, 1] noise, and the 1- and 10-shot accuracy of the
paper's probe (liblinear on the raw means, 5 draws) on the raw means and on the same means standardised with
the labelled images' statistics (which makes the probe blind to scale), beside pixels; and, for the Gaussian
bias, how much of the energy the precision head (s) and the mean head (t1) make.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from ebmctl.data import to_float
from ebmctl.evaluation.linear_probes import few_shot_indices, fit_liblinear
from ebmctl.runs import RunRef, resolve_run
from ebmctl.services.runtime.datasets import data_root, dataset_from
from ebmctl.services.runtime.loading import load_run

DRAWS = 5


def shots_accuracy(train: np.ndarray, train_y: np.ndarray, test: np.ndarray, test_y: np.ndarray,
                   shots: int, standardise: bool) -> tuple[float, float]:
    accs = []
    for seed in range(DRAWS):
        idx = few_shot_indices(train_y, shots, seed)
        tr, te = train[idx], test
        if standardise:
            mu, sd = tr.mean(0), tr.std(0) + 1e-8
            tr, te = (tr - mu) / sd, (te - mu) / sd
        accs.append(fit_liblinear(tr, train_y[idx], te, test_y))
    return float(np.mean(accs)), float(np.std(accs))


def energy_terms(net: torch.nn.Module, x: torch.Tensor) -> tuple[float, float] | None:
    """Under the Gaussian bias E(x) = sum_d [log(1 + 2 s_d) / 2 - t1_d^2 / (2 (1 + 2 s_d))] with s = (W2 h)^2:
    the mean over ``x`` of the precision term and of the mean term (None for a mixture bias)."""
    if net.bias_mean.dim() != 1:
        return None
    t1, t2 = net.statistics(x)
    s = -t2
    return (float((0.5 * torch.log1p(2 * s)).sum(1).mean()), float((t1.pow(2) / (2 * (1 + 2 * s))).sum(1).mean()))


def main(path: str, checkpoints: list[str]) -> None:
    ref = resolve_run(path, Path("runs"))
    refs = [RunRef(ref.run_dir, Path(c)) for c in checkpoints] or [ref]
    first = load_run(refs[0], torch.device("cpu"))
    sets = {}
    for split in ("train", "val"):
        ds = dataset_from(first.spec.data, split=split, root=data_root(first.spec.data.root, None), image_size=first.info.shape[-1],
                          channels=first.info.shape[0])
        x, y = ds.get_batch(torch.arange(len(ds)))
        sets[split] = (to_float(x, dequantize=False), np.asarray(y, dtype=np.int64).reshape(-1))
    (xtr, ytr), (xva, yva) = sets["train"], sets["val"]
    pixels = (xtr.flatten(1).double().numpy(), xva.flatten(1).double().numpy())
    for shots in (1, 10):
        m, s = shots_accuracy(pixels[0], ytr, pixels[1], yva, shots, False)
        print(f"pixels, {shots} shot(s): {m:.3f} ± {s:.3f}")
    noise = torch.rand(len(xva), *xva.shape[1:], generator=torch.Generator().manual_seed(0))
    for r in refs:
        run = load_run(r, torch.device("cpu"))
        method, net = run.method, run.method.model.eval_net(True)
        with torch.no_grad():
            feats = [torch.cat([method.representation(c) for c in x.split(500)]).double().numpy()
                     for x in (xtr, xva)]
            e_data = torch.cat([net(method.to_model(c)) for c in xva.split(500)]).flatten()
            e_noise = torch.cat([net(method.to_model(c)) for c in noise.split(500)]).flatten()
            terms = {name: energy_terms(net, method.to_model(x[:500])) for name, x in (("val", xva), ("noise", noise))}
        offset = float(np.sqrt((feats[1].mean(0) ** 2).mean()))
        spread = float(feats[1].std(0).mean())
        print(f"{r.checkpoint.name} (step {run.step}): offset {offset:.4f}, spread {spread:.4f}, "
              f"E(val) {float(e_data.mean()):.3f} ± {float(e_data.std()):.3f}, E(noise) {float(e_noise.mean()):.3f}")
        if terms["val"] is not None:
            print("  energy terms (Gaussian bias): " + ", ".join(
                f"{name} precision {p:.2f}, mean {m:.2f}" for name, (p, m) in terms.items()))
        for shots in (1, 10):
            raw = shots_accuracy(feats[0], ytr, feats[1], yva, shots, False)
            std = shots_accuracy(feats[0], ytr, feats[1], yva, shots, True)
            print(f"  {shots} shot(s): raw {raw[0]:.3f} ± {raw[1]:.3f}, standardised {std[0]:.3f} ± {std[1]:.3f}")


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    main(sys.argv[1], sys.argv[2:])
