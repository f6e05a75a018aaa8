"""`ebmctl probe`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Group
from rich.table import Table

from ebmctl.cli.common import check_datasets, emit, examples, options, run_for_outputs, with_notes
from ebmctl.services.probe import PROTOCOL_CHOICES, ProbeOptions, ProbeResult, parse_shots
from ebmctl.services.probe import probe as run_probe

HELP = ("Probe a run's frozen representation: a linear probe with few and all labels, kNN, and a 1-NN "
        "confusion matrix, under the protocol of the run's paper (or the standard one).")

EPILOG = examples(
    "ebmctl probe --dataset digits",
    "ebmctl probe --dataset digits --pixels",
    "ebmctl probe --dataset mnist5k --split val --shots full",
    "ebmctl probe --dataset digits --pixels --protocol standard",
    "ebmctl probe --run runs/ebclr-cifar10-20260101-120000 --dataset cifar10 --transfer cifar100",
    "ebmctl --json probe --dataset shapes32 --shots 10,full --seeds 5 --knn 20",
)


def probe(
    ctx: typer.Context,
    dataset: Annotated[str | None, typer.Option(
        "--dataset", "-d", help="Labelled dataset to probe on (train split fits, test split scores). "
        "Default: the run's dataset.")] = None,
    run: Annotated[str, typer.Option("--run", "-r", help="Run directory, model checkpoint, or latest.")] = "latest",
    protocol: Annotated[str, typer.Option(
        "--protocol", help=f"One of {', '.join(PROTOCOL_CHOICES)}. paper: the protocol of the run's method's "
        "paper (cebm: liblinear on raw features; ebclr: Adam linear layer, 1/d-weighted Euclidean kNN); "
        "standard: lbfgs on standardised features, cosine kNN; cebm or ebclr: that paper's for any run.")] = "paper",
    shots: Annotated[str, typer.Option("--shots", help="Labels per class, comma-separated; 'full' = the whole "
                                       "train split.")] = "1,10,100,full",
    seeds: Annotated[int, typer.Option("--seeds", help="Random label subsets per few-shot count.", min=1)] = 10,
    knn: Annotated[int, typer.Option("--knn", help="k of the weighted kNN classifier (0: off).", min=0)] = 20,
    transfer: Annotated[str | None, typer.Option(
        "--transfer", help="Also probe this second dataset with the same frozen features.")] = None,
    pixels: Annotated[bool, typer.Option(
        "--pixels", help="Also probe raw pixels, the baseline, under the same protocol.")] = False,
    train_n: Annotated[int | None, typer.Option("--train-n", help="Use at most this many train images.",
                                                min=1)] = None,
    test_n: Annotated[int | None, typer.Option("--test-n", help="Use at most this many test images.", min=1)] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Images encoded at once.", min=1)] = 256,
    no_ema: Annotated[bool, typer.Option("--no-ema", help="Use the raw weights, not the EMA.")] = False,
    split: Annotated[str | None, typer.Option(
        "--split", help="Held-out split to score (e.g. val, to tune without touching test). Default: the "
        "dataset's evaluation split.")] = None,
    out_dir: Annotated[str | None, typer.Option("--out", help="Output folder: an absolute path, or taken relative to the run directory and kept "
        "inside it "
        "(default: <run>/probe/<timestamp>).")] = None,
) -> None:
    opts = options(ctx)
    check_datasets("--dataset", [dataset] if dataset is not None else [])
    check_datasets("--transfer", [transfer] if transfer is not None else [])
    popts = ProbeOptions(dataset=dataset, shots=parse_shots(shots), seeds=seeds, knn=knn, transfer=transfer,
                         pixels=pixels, train_n=train_n, test_n=test_n, batch_size=batch_size, ema=not no_ema,
                         out=out_dir, protocol=protocol, split=split)
    ref = run_for_outputs(opts, run, "probe", out_dir)
    result = run_probe(ref, popts, device=opts.device, cli_data_root=opts.data_root,
                       reporter=opts.reporter())
    emit(opts, result.to_dict(), _table(result))


def _table(result: ProbeResult) -> Group:
    p = result.protocol
    table = Table(title=f"Probe accuracy on the held-out split (mean ± std over seeds), protocol {p['name']}",
                  title_justify="left")
    for col in ("dataset", "features", "probe", "shots", "accuracy", "runs"):
        table.add_column(col, justify="right" if col in ("accuracy", "runs", "shots") else "left")
    for r in result.rows:
        spread = f" ± {r['std']:.3f}" if r["runs"] > 1 else ""
        table.add_row(r["dataset"], r["features"], r["probe"], str(r["shots"]), f"{r['mean']:.3f}{spread}",
                      str(r["runs"]))
    held = {r["dataset"]: r.get("split", "test") for r in result.rows}
    sizes = "; ".join(f"{k}: {v['train']} train / {v['test']} {held.get(k, 'test')}" for k, v in result.counts.items())
    table.caption = (f"protocol {p['name']}: linear = {p['linear']}; knn = {p['knn']}; source: {p['source']}. "
                     f"{sizes}; 1nn = mean per-class recall of 1-NN (L2)")
    return with_notes(table, f"pictures in {result.out_dir}")
