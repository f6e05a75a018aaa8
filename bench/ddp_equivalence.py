"""Data-parallel equivalence, measured: two CPU processes (gloo) against one, per method.

Runs the fixed-input training steps of ``tests/harness/ddp_steps.py`` (two steps of every method, global batch 8
split 4 + 4) on two processes and on one, and prints the table of ``docs/scaling.md``: how far the two-process
gradients, updates, weights and metrics are from the one-process ones. The last column is the rounding floor of
each case: the one-process steps run again with AVX2 kernels (``ATEN_CPU_CAPABILITY=avx2
DNNL_MAX_CPU_ISA=AVX2``) against this machine's own; a case whose floor nears the test's 2e-4 tolerance is
ill-conditioned, and its comparison would measure the kernels rather than the gradient averaging.

    OMP_NUM_THREADS=1 python bench/ddp_equivalence.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "harness"))
from ddp_steps import CASES, launch, run_case  # noqa: E402

from ebmctl.services.runtime.distributed.processes import Processes  # noqa: E402

AVX2 = {"ATEN_CPU_CAPABILITY": "avx2", "DNNL_MAX_CPU_ISA": "AVX2"}
ONE_PROCESS = """
import sys, torch
sys.path.insert(0, {e2e!r})
from ddp_steps import CASES, run_case
from ebmctl.services.runtime.distributed.processes import Processes
torch.use_deterministic_algorithms(True)
torch.save({{name: run_case(name, Processes()) for name in CASES}}, {out!r})
"""


def _rel(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    fa = torch.cat([a[k].double().flatten() for k in sorted(a)])
    fb = torch.cat([b[k].double().flatten() for k in sorted(b)])
    return float((fa - fb).norm() / fb.norm())


def _metrics_rel(a: list[dict[str, float]], b: list[dict[str, float]]) -> float:
    return max(abs(x[k] - y[k]) / max(abs(y[k]), 1e-6) for x, y in zip(a, b, strict=True) for k in y)


def _one_process_with(env: dict[str, str], out: Path) -> dict[str, Any]:
    script = ONE_PROCESS.format(e2e=str(ROOT / "tests" / "harness"), out=str(out))
    subprocess.run([sys.executable, "-c", script], env={**os.environ, **env, "OMP_NUM_THREADS": "1"}, check=True,
                   capture_output=True)
    return torch.load(out)


def main() -> None:
    torch.use_deterministic_algorithms(True)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "two").mkdir()
        two = launch(Path(tmp) / "two")[0]
        avx2 = _one_process_with(AVX2, Path(tmp) / "avx2.pt")
    print(f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}, float32 "
          "(ebclr, icd: float64)\n")
    print("| method | gradients, relative | updates, relative | weights, max abs diff | metrics, relative "
          "| rounding floor (gradients) |")
    print("|---|---|---|---|---|---|")
    for name in CASES:
        one = run_case(name, Processes())
        t = two[name]
        weights = max(float((t["weights"][k].double() - v.double()).abs().max()) for k, v in one["weights"].items())
        print(f"| {name} | {_rel(t['grads'], one['grads']):.1e} | {_rel(t['delta'], one['delta']):.1e} "
              f"| {weights:.1e} | {_metrics_rel(t['metrics'], one['metrics']):.1e} "
              f"| {_rel(avx2[name]['grads'], one['grads']):.1e} |")


if __name__ == "__main__":
    main()
