"""Every Langevin path against ``sgld``'s fast path: Hat EBM's joint and residual samplers on the shapes presets'
nets, timed beside ``sgld`` running the same residual chain, in one process.

Nets (untrained, seed 0, one thread): the hat network of ``hat-refine-shapes`` (SN-GAN discriminator without
spectral norm, width 64, sum pooling, biased output) and an SN-GAN generator of width 64 at 32 px, BatchNorm
frozen. Chains of ``--batch`` images, ``--steps`` steps, temperature 1e-3:

- ``hat joint``: :func:`ebmctl.samplers.hat.hat_langevin` with a latent step (refinement and retrofit);
- ``hat residual``: the same with the latent fixed (synthesis);
- ``sgld residual``: :func:`ebmctl.samplers.langevin.sgld` on E(y) = H(G(z) + y) / T, no clamp (the same
  chain as ``hat residual`` without the per-sample step clip).

The loops alternate ``--repeats`` times and the best time of each is kept. Prints images*steps/s per path and
the ratio of each path to ``sgld residual``. A joint step costs more by design: it also differentiates through
the generator and runs it again.

With ``--fast-path`` it also times the joint sampler and ``sgld`` with the speed options they share
(:mod:`ebmctl.samplers.fastpath`): NHWC chains and weights, and the hat network under bf16 autocast.

Run: OMP_NUM_THREADS=1 python bench/sampler_paths.py [--batch 32] [--steps 10] [--repeats 3] [--fast-path]
"""

from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Callable
from dataclasses import replace

import torch

from ebmctl.nets.sngan import SnganDiscriminator, SnganGenerator
from ebmctl.samplers.hat import HatLangevinParams, hat_langevin
from ebmctl.samplers.langevin import sgld

TEMPERATURE = 1e-3
EPSILON, EPSILON_LATENT = 1e-4, 5e-3


def _seconds(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fast-path", action="store_true", help="also time the NHWC and bf16 speed options")
    args = parser.parse_args()
    torch.manual_seed(0)
    hat = SnganDiscriminator(32, ndf=64, spectral_norm=False, pooling="sum", bias=True, block_hidden="in").eval()
    gen = SnganGenerator(32, ngf=64).eval()
    z = torch.randn(args.batch, 128)
    with torch.no_grad():
        g = gen(z)
    joint = HatLangevinParams(args.steps, EPSILON, EPSILON_LATENT, TEMPERATURE)
    residual = HatLangevinParams(args.steps, EPSILON, 0.0, TEMPERATURE)
    paths: dict[str, Callable[[], object]] = {
        "hat joint": lambda: hat_langevin(hat, gen, z, None, joint),
        "hat residual": lambda: hat_langevin(hat, gen, z, None, residual),
        "sgld residual": lambda: sgld(lambda y: hat(g + y).flatten() / TEMPERATURE, torch.zeros_like(g),
                                      steps=args.steps, step_size=EPSILON**2 / 2, noise=EPSILON,
                                      pixel_clamp=None, noise_first=False),
    }
    if args.fast_path:  # the same chains through sgld's speed options (NHWC chains and weights, bf16 energy)
        hat_nhwc, gen_nhwc = (copy.deepcopy(m).to(memory_format=torch.channels_last) for m in (hat, gen))
        g_nhwc = g.contiguous(memory_format=torch.channels_last)
        paths |= {
            "hat joint NHWC": lambda: hat_langevin(hat_nhwc, gen_nhwc, z, None, replace(joint, channels_last=True)),
            "hat joint bf16": lambda: hat_langevin(hat, gen, z, None, replace(joint, precision="bf16")),
            "sgld res. NHWC": lambda: sgld(lambda y: hat_nhwc(g_nhwc + y).flatten() / TEMPERATURE,
                                           torch.zeros_like(g), steps=args.steps, step_size=EPSILON**2 / 2,
                                           noise=EPSILON, pixel_clamp=None, noise_first=False, channels_last=True),
        }
    best = {name: float("inf") for name in paths}
    for _ in range(args.repeats):  # alternate, so that load hits every path alike
        for name, fn in paths.items():
            best[name] = min(best[name], _seconds(fn))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), batch {args.batch}, {args.steps} steps")
    reference = args.batch * args.steps / best["sgld residual"]
    for name, seconds in best.items():
        rate = args.batch * args.steps / seconds
        print(f"{name:14s} {rate:8.1f} images*steps/s  ({rate / reference:.2f}x sgld residual)")


if __name__ == "__main__":
    main()
