"""`ebmctl ood`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Group
from rich.table import Table

from ebmctl.cli.common import (
    check_datasets,
    check_number,
    emit,
    examples,
    options,
    run_for_outputs,
    split_list,
    with_notes,
)
from ebmctl.errors import UsageError
from ebmctl.services.ood import OodOptions, OodResult
from ebmctl.services.ood import ood as run_ood

HELP = "Out-of-distribution detection: AUROC, AUPR-in/out and FPR@95%TPR of a run's scores."

EPILOG = examples(
    "ebmctl ood --in cifar10 --out svhn",
    "ebmctl ood --in shapes32 --out textures,photos --score energy,grad_norm",
    "ebmctl ood --in shapes32 --out shapes32@diamond,textures",
    "ebmctl ood --in cifar10 --out svhn --score energy,joint --beta 0.1",
    "ebmctl ood --in digits --out textures --score energy,grad_norm,latent_nn",
    "ebmctl --json ood --run runs/icd-cifar10-20260101-120000 --in cifar10 --out svhn,cifar100,dtd --n 2000",
)


def ood(
    ctx: typer.Context,
    in_name: Annotated[str | None, typer.Option("--in", help="In-distribution dataset (its test split); the run's "
                                                 "own dataset means the classes it was trained on (data.classes), "
                                                 "DATASET@A+B names classes.")] = None,
    out_names: Annotated[str | None, typer.Option("--out", help="OOD datasets, comma-separated; DATASET@A+B keeps "
                                                  "classes A and B (e.g. a class held out in training: "
                                                  "shapes32@diamond).")] = None,
    run: Annotated[str, typer.Option("--run", "-r", help="Run directory, model checkpoint, or latest.")] = "latest",
    score: Annotated[str | None, typer.Option(
        "--score", help="Scores, comma-separated: energy, grad_norm (CEBM's gradient mass), joint (clel's eq. "
        "14), latent_nn (distance to the nearest training representation). Default: energy, and joint too for "
        "clel runs; latent_nn for encoder-only runs.")] = None,
    beta: Annotated[float | None, typer.Option("--beta", help="beta of the joint score (default: the run's "
                                                 "method.ood_beta, 0.1).", min=0)] = None,
    n: Annotated[int | None, typer.Option("--n", help="Images per set (default: the whole test split).", min=1)] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Images scored at once.", min=1)] = 256,
    split: Annotated[str, typer.Option("--split", help="Split of every set.")] = "test",
    no_ema: Annotated[bool, typer.Option("--no-ema", help="Use the raw weights, not the EMA.")] = False,
    no_verify_checksums: Annotated[bool, typer.Option(
        "--no-verify-checksums", help="Read real datasets without checking their files' md5 sums.")] = False,
    out_dir: Annotated[str | None, typer.Option("--out-dir", help="Output folder: an absolute path, or taken relative to the run directory and kept "
        "inside it "
        "(default: <run>/ood/<timestamp>).")] = None,
) -> None:
    opts = options(ctx)
    if not in_name or not out_names:
        raise UsageError("ood needs --in and --out", "e.g. ebmctl ood --in cifar10 --out svhn")
    _check_sets("--in", [in_name], split)
    _check_sets("--out", split_list(out_names), split)
    check_number("--beta", beta, minimum=0)
    oopts = OodOptions(in_name=in_name, out_names=split_list(out_names), scores=split_list(score) or None,
                       n=n, batch_size=batch_size, ema=not no_ema, split=split, out=out_dir, beta=beta,
                       verify_checksums=not no_verify_checksums)
    ref = run_for_outputs(opts, run, "ood", out_dir, "--out-dir")
    result = run_ood(ref, oopts, device=opts.device, cli_data_root=opts.data_root,
                     reporter=opts.reporter())
    emit(opts, result.to_dict(), _table(result))


def _check_sets(option: str, texts: list[str], split: str) -> None:
    """Known datasets with the split, classes written DATASET@CLASS (a ':' there is taken for a slip)."""
    from ebmctl.data.classes import CLASS_MARK
    from ebmctl.data.registry import dataset_names

    for text in texts:
        head, colon, rest = text.partition(":")
        if colon and head in dataset_names():
            raise UsageError(f"{option} {text}: classes of a dataset follow '{CLASS_MARK}' (':' addresses one "
                             f"image, as in sample --like {head}:12)", f"write {option} {head}{CLASS_MARK}{rest}")
    check_datasets(option, [t.partition(CLASS_MARK)[0] for t in texts], split)


def _table(result: OodResult) -> Group:
    table = Table(title=f"OOD detection ({result.convention})", title_justify="left")
    for col in ("in", "out", "score", "AUROC", "AUPR-in", "AUPR-out", "FPR@95"):
        table.add_column(col, justify="right" if col[0].isupper() else "left")
    for r in result.rows:
        table.add_row(r["in"], r["out"], r["score"], f"{r['auroc']:.4f}", f"{r['aupr_in']:.4f}",
                      f"{r['aupr_out']:.4f}", f"{r['fpr95']:.4f}")
    table.caption = f"images: {', '.join(f'{k} {v}' for k, v in result.counts.items())}"
    return with_notes(table, f"pictures in {result.out_dir}")
