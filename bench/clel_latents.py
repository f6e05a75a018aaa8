"""Whether a CLEL run can sample a class: do its encoder's latents separate the classes, and does the EBM's
latent head g predict them?

    OMP_NUM_THREADS=1 python bench/clel_latents.py RUN

Prints, on 400 test images (seed 0): the share whose encoder latent h(x) is nearest (cosine) to its own class
latent z_c (``sample --class``'s latent: the normalised sum of the latents of up to method.latent_examples
training images of the class), the same for the EBM's head u = g(f/|f|), the mean cos(u, h), the spread of the
directions f/|f| across images (mean pairwise cosine), and what g could reach: the held-out cosine of a
least-squares linear map f/|f| -> h fitted on 768 training images, against 300 Adam steps (lr 1e-3, batch 32)
on a fresh g of the net's shape and initialisation.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from ebmctl.runs import resolve_run
from ebmctl.services.runtime.conditioning import examples_latent, run_dataset, to_float
from ebmctl.services.runtime.loading import load_run


def nearest_class(latents: torch.Tensor, classes: torch.Tensor, labels: torch.Tensor) -> float:
    return float(((latents @ classes.T).argmax(1) == labels).float().mean())


def main(path: str) -> None:
    torch.manual_seed(0)
    run = load_run(resolve_run(path, Path("runs")), torch.device("cpu"))
    method, net = run.method, run.method.model.eval_net(True)
    train, test = run_dataset(run, "train", None), run_dataset(run, "test", None)
    train_y = train.labels()
    classes = torch.stack([examples_latent(method, train, torch.nonzero(train_y == k).flatten())[0]
                           for k in range(int(train_y.max()) + 1)])
    idx = torch.randperm(len(test))[:400]
    x, y = to_float(test.get_batch(idx)[0], dequantize=False), test.labels()[idx]
    with torch.no_grad():
        h = method.encode(x, augment=False)
        _, u = net.f_and_latent(x)
    cosines = (classes @ classes.T)[torch.triu(torch.ones(len(classes), len(classes), dtype=torch.bool), 1)]
    print(f"class latents' pairwise cosines: {float(cosines.min()):.2f} to {float(cosines.max()):.2f}")
    print(f"encoder, nearest class latent: {nearest_class(h, classes, y):.3f}")
    print(f"EBM head g, nearest class latent: {nearest_class(u, classes, y):.3f}; mean cos(u, h) "
          f"{float((u * h).sum(1).mean()):.3f}")

    xt = to_float(train.get_batch(torch.randperm(len(train))[:1024])[0], dequantize=False)
    with torch.no_grad():
        d = F.normalize(net.f(xt), dim=1)
        z = method.encode(xt, augment=False)
    print(f"directions f/|f|: mean pairwise cosine {float((d @ d.T).mean()):.4f}")
    ones = torch.ones(len(d), 1)
    design = torch.cat([d, ones], 1)
    w = torch.linalg.lstsq(design[:768], z[:768]).solution
    print(f"least-squares map f/|f| -> h, held-out cosine {float((F.normalize(design[768:] @ w, dim=1) * z[768:]).sum(1).mean()):.3f}")
    g = copy.deepcopy(net.projection).requires_grad_(True)
    for m in g.modules():
        if isinstance(m, torch.nn.Linear):
            torch.nn.init.normal_(m.weight, 0.0, 0.01)
    opt = torch.optim.Adam(g.parameters(), lr=1e-3, betas=(0.0, 0.999))
    for _ in range(300):
        b = torch.randint(0, 768, (32,))
        loss = -(F.normalize(g(d[b]), dim=1) * z[b]).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        print(f"300 Adam steps on a fresh g, held-out cosine {float((F.normalize(g(d[768:]), dim=1) * z[768:]).sum(1).mean()):.3f}")


if __name__ == "__main__":
    main(sys.argv[1])
