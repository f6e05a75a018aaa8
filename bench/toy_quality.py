"""Quality of a 2D run: mode coverage and MMD of its samples against the test split.

Trains the preset (default icd-toy) unless --run is given, samples with the preset's test-time schedule, and
prints the fraction of 8gaussians modes hit, the samples per mode, the share of samples near a mode (the data
itself: about 63% within 0.5), and the unbiased MMD^2 against 1000 test points next to the MMD^2 of a second,
independent draw of the data.

Run: OMP_NUM_THREADS=1 python bench/toy_quality.py [--preset icd-toy] [--seed 0] [--run RUN]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from ebmctl.checkpoints import load_tensors
from ebmctl.data import load_dataset, mode_centers
from ebmctl.evaluation.mmd import mmd_rbf, mode_coverage
from ebmctl.recipes import resolve_spec
from ebmctl.runs import resolve_run
from ebmctl.services.sample import SampleOptions, sample
from ebmctl.services.train import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="icd-toy")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    root = Path(tempfile.mkdtemp(prefix="toy-quality-"))
    started = time.perf_counter()
    if args.run is None:
        run_dir = train(resolve_spec(args.preset, [f"seed={args.seed}"]), runs_root=root, device="cpu").run_dir
    else:
        run_dir = Path(args.run)
    trained = time.perf_counter() - started
    result = sample(resolve_run(str(run_dir), root), SampleOptions(seed=args.seed), device="cpu")
    samples = load_tensors(result.out_dir / "samples.safetensors")[0]["samples"]
    data = load_dataset("8gaussians", split="test")
    reference = data.get_batch(torch.arange(1000))[0]
    other = data.get_batch(torch.arange(1000, 2000))[0]
    cov = mode_coverage(samples, mode_centers("8gaussians"), radius=0.5, min_count=40)
    print(f"run {run_dir} (trained in {trained:.0f} s), {len(samples)} samples, {result.steps} steps from noise")
    print(f"modes covered (>= 40 of {len(samples)} samples within 0.5): {cov.covered:.3f}; per mode {cov.counts}")
    print(f"share of samples within 0.5 of a mode: {cov.quality:.3f}")
    print(f"MMD^2 samples vs test: {mmd_rbf(samples[:1000], reference):.5f}; data vs data: "
          f"{mmd_rbf(other, reference):.5f}")


if __name__ == "__main__":
    main()
