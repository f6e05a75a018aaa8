"""Langevin speed: ebmctl's sampler against torchebm, ebmkit and the released-code loops, in one process.

Three energy nets, one thread, B=64, 3x32x32:

- ``conv``: a conv net shaped like the CEBM encoder (conv3x3 64, conv4x4/2 128, 256, 512, LeakyReLU 0.2,
  FC 128, FC 1), step 10, noise 0.005, clamp [0, 1]. Loops: a naive loop (``backward()`` fills parameter
  gradients), torchebm's and ebmkit's LangevinDynamics, and ebmctl's ``sgld`` in fp32 and bf16.
- ``icd``: ebmctl's ICD CIFAR-10 net (``icd-cifar10``) in training mode with the released training-time
  chain (noise 0.001 added first, step 100, clamp), written as ``train.py``'s ``gen_image`` writes it.
- ``clel``: ebmctl's CLEL base net (``clel-base``) with the released ``models/sampler.py`` chain (gradient
  step, then noise, clamp) at the preset's step size and noise.

Every loop starts from the same state with the same seed; the loops of one net alternate ``--repeats`` times
and the best time of each is kept, so machine load hits them alike. For each net the script prints
images*steps/s per loop, ebmctl's ratio to each, and how far ebmctl's chain is from the reference chain
after ``--check-steps`` steps (float rounding; bf16 is compared too).

The peers come from the benchmark extra: ``pip install -e ".[benchmark]"`` (missing ones are skipped).

Run: OMP_NUM_THREADS=1 python bench/langevin_speed.py [--nets conv,icd,clel] [--batch 64] [--steps 60]
     [--net-steps 10] [--repeats 3]
"""

from __future__ import annotations

import argparse
import copy
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ebmctl.nets import build_net
from ebmctl.recipes import resolve_spec
from ebmctl.samplers.langevin import sgld

Loop = Callable[[Tensor, int, int], Tensor]  # (start, steps, seed) -> final chains


@dataclass
class Setting:
    step: float
    noise: float
    noise_first: bool


def conv_net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 64, 3, 1, 1), nn.LeakyReLU(0.2),
        nn.Conv2d(64, 128, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.Conv2d(128, 256, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.Conv2d(256, 512, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.Flatten(), nn.Linear(512 * 4 * 4, 128), nn.LeakyReLU(0.2), nn.Linear(128, 1),
    )


def preset_net(preset: str) -> tuple[nn.Module, Setting]:
    spec = resolve_spec(preset=preset)
    kwargs = spec.net.model_dump(exclude={"name"})
    kwargs["in_channels"] = 3
    net = build_net(spec.net.name, **kwargs).train()
    s = spec.sampler
    return net, Setting(s.step_size, s.noise, s.noise_first)


class Summed(nn.Module):
    """E(x) as one number per sample (nets return (B, 1) or per-scale (B, S))."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).flatten(1).sum(1)


def naive_loop(energy: nn.Module, s: Setting) -> Loop:
    """What a first attempt writes: ``backward()`` on the summed energy, parameter gradients included."""
    def run(x0: Tensor, steps: int, seed: int) -> Tensor:
        gen = torch.Generator().manual_seed(seed)
        x = x0.clone()
        for _ in range(steps):
            if s.noise_first:
                x = x + s.noise * torch.randn(x.shape, generator=gen)
            x.requires_grad_(True)
            energy(x).sum().backward()
            x = x - s.step * x.grad
            if not s.noise_first:
                x = x + s.noise * torch.randn(x.shape, generator=gen)
            x = x.detach().clamp(0, 1)
        energy.zero_grad(set_to_none=True)
        return x
    return run


def icd_released_loop(energy: nn.Module, s: Setting) -> Loop:
    """ICD ``train.py`` ``gen_image`` at training time (without the KL tail): parameters keep requires_grad,
    a noise tensor refilled each step, out-of-place updates, a fresh graph per step."""
    def run(x0: Tensor, steps: int, seed: int) -> Tensor:
        gen = torch.Generator().manual_seed(seed)
        im_neg = x0.clone()
        im_noise = torch.randn_like(im_neg).detach()
        for _ in range(steps):
            im_noise.normal_(generator=gen)
            im_neg = im_neg + s.noise * im_noise
            im_neg.requires_grad_(requires_grad=True)
            e = energy(im_neg)
            im_grad = torch.autograd.grad([e.sum()], [im_neg])[0]
            im_neg = im_neg - s.step * im_grad
            im_neg = im_neg.detach()
            im_neg = torch.clamp(im_neg, 0, 1)
        return im_neg
    return run


def clel_released_loop(energy: nn.Module, s: Setting) -> Loop:
    """CLEL ``models/sampler.py`` ``sgld``: gradient step, then fresh noise, clamp, clone, detach."""
    def run(x0: Tensor, steps: int, seed: int) -> Tensor:
        gen = torch.Generator().manual_seed(seed)
        x = x0.clone().detach()
        for _ in range(steps):
            x.requires_grad = True
            e = energy(x)
            g = torch.autograd.grad(e.sum(), [x])[0]
            x = x - g * s.step + torch.randn(x.shape, generator=gen) * s.noise
            x = x.clamp(0, 1).clone().detach()
        return x
    return run


def torchebm_loop(energy: nn.Module, s: Setting) -> Loop | None:
    try:
        from torchebm.core import BaseModel
        from torchebm.samplers import LangevinDynamics
    except ImportError:
        return None

    class Model(BaseModel):
        def __init__(self) -> None:
            super().__init__()
            self.energy = energy

        def forward(self, x: Tensor) -> Tensor:
            return self.energy(x)

    model = Model()

    def run(x0: Tensor, steps: int, seed: int) -> Tensor:
        # torchebm's Euler-Maruyama step adds sqrt(2 * step) * noise_scale * N(0, I); scale it to ``noise``.
        sampler = LangevinDynamics(model, step_size=s.step, noise_scale=s.noise / (2 * s.step) ** 0.5,
                                   clamp=(0.0, 1.0))
        return sampler.sample(x=x0.clone(), n_steps=steps, generator=torch.Generator().manual_seed(seed))
    return run


def ebmkit_loop(energy: nn.Module, s: Setting) -> Loop | None:
    try:
        from ebm.samplers import LangevinDynamics
    except ImportError:
        return None

    def run(x0: Tensor, steps: int, seed: int) -> Tensor:
        torch.manual_seed(seed)
        sampler = LangevinDynamics(step_size=s.step, steps=steps, noise_scale=s.noise, clamp=(0.0, 1.0))
        return sampler.sample(energy, x0.clone())
    return run


def ebmctl_loop(energy: nn.Module, s: Setting, *, channels_last: bool, precision: str) -> Loop:
    """``sgld`` on the net as ``ebmctl train`` lays it out (NHWC weights when the chains run NHWC)."""
    if channels_last:
        energy = copy.deepcopy(energy).to(memory_format=torch.channels_last)

    def run(x0: Tensor, steps: int, seed: int) -> Tensor:
        return sgld(energy, x0, steps=steps, step_size=s.step, noise=s.noise, noise_first=s.noise_first,
                    pixel_clamp=(0.0, 1.0), generator=torch.Generator().manual_seed(seed),
                    channels_last=channels_last, precision=precision)
    return run


def race(loops: dict[str, Loop], x0: Tensor, steps: int, repeats: int) -> dict[str, float]:
    """Best images*steps/s of each loop over ``repeats`` alternating rounds (after one warm-up step each)."""
    for loop in loops.values():
        loop(x0, 1, 0)
    best = dict.fromkeys(loops, float("inf"))
    for _ in range(repeats):
        for name, loop in loops.items():
            start = time.perf_counter()
            loop(x0, steps, 1)
            best[name] = min(best[name], time.perf_counter() - start)
    return {name: x0.shape[0] * steps / t for name, t in best.items()}


def report(title: str, speeds: dict[str, float], ours: tuple[str, ...], diffs: dict[str, float]) -> None:
    print(f"\n## {title}")
    width = max(len(n) for n in speeds)
    for name, v in speeds.items():
        print(f"{name:<{width}}  {v:8.1f} images*steps/s")
    for mine in ours:
        others = [n for n in speeds if n not in ours]
        print(f"{mine}: " + ", ".join(f"{speeds[mine] / speeds[n]:.2f}x {n}" for n in others))
    for name, d in diffs.items():
        print(f"max |chain difference| {name}: {d:.1e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", default="conv,icd,clel")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=60, help="Langevin steps per timed run on the conv net")
    parser.add_argument("--net-steps", type=int, default=10, help="steps per timed run on the ICD and CLEL nets")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--check-steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"B={args.batch}, 3x32x32, threads={torch.get_num_threads()}, OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS')}, torch {torch.__version__}")
    torch.manual_seed(0)
    x0 = torch.rand(args.batch, 3, 32, 32)
    for name in args.nets.split(","):
        torch.manual_seed(0)
        if name == "conv":
            energy, s = Summed(conv_net()), Setting(10.0, 0.005, True)
            reference = naive_loop(energy, s)
            loops: dict[str, Loop] = {"naive loop": reference}
            for peer, make in (("torchebm", torchebm_loop), ("ebmkit", ebmkit_loop)):
                loop = make(energy, s)
                if loop is None:
                    print(f"({peer} not installed: pip install -e '.[benchmark]')")
                else:
                    loops[peer] = loop
            channels_last, steps = True, args.steps
        else:
            preset, released = {"icd": ("icd-cifar10", icd_released_loop),
                                "clel": ("clel-base", clel_released_loop)}[name]
            net, s = preset_net(preset)
            energy = Summed(net)
            reference = released(energy, s)
            loops = {f"released {name} loop": reference}
            channels_last, steps = bool(getattr(net, "channels_last_chains", False)), args.net_steps
        loops["ebmctl fp32"] = ebmctl_loop(energy, s, channels_last=channels_last, precision="fp32")
        loops["ebmctl bf16"] = ebmctl_loop(energy, s, channels_last=channels_last, precision="bf16")
        speeds = race(loops, x0, steps, args.repeats)
        ref = reference(x0, args.check_steps, 2)
        diffs = {f"fp32 vs {next(iter(loops))} after {args.check_steps} steps":
                 (loops["ebmctl fp32"](x0, args.check_steps, 2) - ref).abs().max().item(),
                 f"bf16 vs {next(iter(loops))} after {args.check_steps} steps":
                 (loops["ebmctl bf16"](x0, args.check_steps, 2) - ref).abs().max().item()}
        title = f"{name} net, K={steps}, step {s.step:g}, noise {s.noise:g}, channels_last={channels_last}"
        report(title, speeds, ("ebmctl fp32", "ebmctl bf16"), diffs)


if __name__ == "__main__":
    main()
