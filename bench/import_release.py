"""How long `ebmctl import` takes on a full-size released checkpoint, and how close the imported energies are to
the ones the released code computed.

Make the checkpoint with the released code (TensorFlow 2, a checkout of openai/ebm_code_release), at the
published model's width, then import and compare:

    EBM_CODE_RELEASE=../ebm_code_release python tests/released/fixtures/igebm_tools/make_igebm_fixture.py \\
        r32large_uncond --width 128 --out /tmp/igebm128
    OMP_NUM_THREADS=1 python bench/import_release.py --from igebm /tmp/igebm128/model_0 \\
        --energies /tmp/igebm128/energies.npz

``--energies`` is the fixture script's ``energies.npz`` (inputs ``x_nchw``, labels, first-call ``energy``).
Prints one JSON line: the import's own seconds, the net's parameters, and the largest energy difference.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from ebmctl.runs import resolve_run
from ebmctl.services.import_release import import_release
from ebmctl.services.runtime.loading import load_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", help="the released checkpoint")
    parser.add_argument("--from", dest="method", required=True)
    parser.add_argument("--energies", type=Path, required=True, help="inputs and the released code's energies")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as runs:
        result = import_release(args.method, args.path, runs_root=Path(runs))
        run = load_run(resolve_run(str(result.run_dir), Path(runs)), torch.device("cpu"))
        io = np.load(args.energies)
        labels = torch.from_numpy(io["labels"]) if bool(io["conditional"]) else None
        energy = run.method.energy(torch.from_numpy(io["x_nchw"]), labels)
        want = torch.from_numpy(io["energy"]).ravel()
        print(json.dumps({"seconds": round(result.seconds, 2), "torch": torch.__version__,
                          "parameters": sum(p.numel() for p in run.method.model.net.parameters()),
                          "max_abs_diff": float((energy - want).abs().max()), "max_abs_energy": float(want.abs().max()),
                          "step": result.step}))


if __name__ == "__main__":
    main()
