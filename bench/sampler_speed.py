"""Langevin speed: ebmctl's sampler against a loop written the way the released ICD code writes it.

Both run the ICD CIFAR-10 net (6.6M parameters, multiscale, self-attention) in training mode with the released
training-time settings (noise 0.001 added first, step 100, clamp to [0, 1]) from the same start, one thread, and
print images*steps/s for each, their ratio, and how far the two chains differ after one step (float rounding;
over many steps at step size 100 an untrained net amplifies it, so the K-step difference is shown too).

Run: OMP_NUM_THREADS=1 python bench/sampler_speed.py [--batch 64] [--steps 60] [--repeats 2] [--width 64]
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from ebmctl.nets import IcdResNet
from ebmctl.samplers.langevin import sgld


def released_style_loop(model: torch.nn.Module, x: torch.Tensor, steps: int, step_lr: float, noise: float,
                        generator: torch.Generator) -> torch.Tensor:
    """The training-time chain as the released code writes it: parameters keep requires_grad, a fresh noise
    tensor and a fresh graph each step, out-of-place updates."""
    im_neg = x.clone()
    im_noise = torch.randn_like(im_neg).detach()
    for _ in range(steps):
        im_noise = torch.randn(im_neg.shape, generator=generator)
        im_neg = im_neg + noise * im_noise
        im_neg.requires_grad_(requires_grad=True)
        energy = model.forward(im_neg, None)
        im_grad = torch.autograd.grad([energy.sum()], [im_neg])[0]
        im_neg = im_neg - step_lr * im_grad
        im_neg = im_neg.detach()
        im_neg = torch.clamp(im_neg, 0, 1)
    return im_neg


def timed(fn, repeats: int) -> tuple[float, torch.Tensor]:
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = IcdResNet(width=args.width).train()
    x0 = torch.rand(args.batch, 3, 32, 32)
    step_lr, noise = 100.0, 0.001

    def reference() -> torch.Tensor:
        return released_style_loop(model, x0, args.steps, step_lr, noise, torch.Generator().manual_seed(1))

    def ours() -> torch.Tensor:
        return sgld(model_energy, x0, steps=args.steps, step_size=step_lr, noise=noise, pixel_clamp=(0.0, 1.0),
                    noise_first=True, generator=torch.Generator().manual_seed(1))

    class Summed(torch.nn.Module):
        def __init__(self, net: torch.nn.Module) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x).sum(1)

    model_energy = Summed(model)
    work = args.batch * args.steps
    t_ref, a = timed(reference, args.repeats)
    t_ours, b = timed(ours, args.repeats)
    print(f"ICD net width {args.width}, B={args.batch}, 3x32x32, K={args.steps}, threads={torch.get_num_threads()}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, torch {torch.__version__}")
    print(f"released-style loop : {work / t_ref:8.1f} images*steps/s  ({t_ref:.2f} s)")
    print(f"ebmctl sgld         : {work / t_ours:8.1f} images*steps/s  ({t_ours:.2f} s)")
    print(f"ratio               : {t_ref / t_ours:8.2f}x")
    one_ref = released_style_loop(model, x0, 1, step_lr, noise, torch.Generator().manual_seed(1))
    one = sgld(model_energy, x0, steps=1, step_size=step_lr, noise=noise, generator=torch.Generator().manual_seed(1))
    print(f"one step, max |diff|: {(one_ref - one).abs().max().item():.1e}  (same start and noise: float rounding)")
    print(f"{args.steps} steps, max |diff|: {(a - b).abs().max().item():.1e}  (rounding grows along chaotic chains at "
          "step 100)")


if __name__ == "__main__":
    main()
