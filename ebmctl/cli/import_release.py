"""`ebmctl import --from METHOD PATH`."""

from __future__ import annotations

from typing import Annotated

import typer

from ebmctl.cli.common import emit, examples, kv_table, options, with_notes
from ebmctl.services.import_release import import_release, importable

HELP = ("Turn a checkpoint the authors' released code wrote into an ebmctl run: read it without running code, "
        "map its weights onto the matching paper preset's nets (settings read from the tensors' shapes), and "
        "write spec.json, a safetensors checkpoint and a run.json naming the file and its SHA-256. Then sample, "
        "ood, probe and compose work on it. See docs/commands/import.md.")

EPILOG = examples(
    "ebmctl import --from cebm weights/CEBM_Gaussian_d=mnist_z=128_seed=1 --buffer buffer-CEBM_Gaussian_d=mnist_z=128_seed=1",
    "ebmctl import --from ebclr logs/200.pt --preset ebclr-cifar100",
    "ebmctl import --from ebclr curr.pt && ebmctl probe --shots 10",
    "ebmctl import --from clel last.ckpt --set sample.steps=600",
    "ebmctl import --from icd cachedir/cifar10_model/model_1000.pth",
    "ebmctl import --from hat checkpoints/ebm_20000.ckpt --generator pretrained_nets/cifar10_refine/gen.ckpt",
)


def import_(
    ctx: typer.Context,
    path: Annotated[str, typer.Argument(help="The checkpoint the released training code saved (a TensorFlow "
                                              "checkpoint: its prefix, its .index or .data file, or the folder "
                                              "whose 'checkpoint' file names it).")],
    from_: Annotated[str, typer.Option("--from", help=f"Whose released code wrote it: {', '.join(importable())}.")],
    preset: Annotated[str | None, typer.Option(
        "--preset", help="Paper preset the run takes its data and sampler settings from (default: the method's "
        "paper preset for the file's data, read from its shapes, and mode).")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Override a spec key of the run, e.g. --set sample.steps=600 (repeatable; the weights must "
        "still fit the net).")] = None,
    generator: Annotated[str | None, typer.Option(
        "--generator", help="hat: the generator's checkpoint (refinement: pretrained_nets/<data>_refine/gen.ckpt; "
        "synthesis: gen_<step>.ckpt beside the EBM's, found by itself).")] = None,
    buffer: Annotated[str | None, typer.Option(
        "--buffer", help="cebm: the replay buffer its trainer writes apart (buffer-<exp_name>), for "
        "`sample --init buffer`.")] = None,
) -> None:
    opts = options(ctx)
    result = import_release(from_, path, preset=preset, overrides=set_ or [],
                            companions={"generator": generator, "buffer": buffer}, runs_root=opts.runs,
                            cli_data_root=opts.data_root, reporter=opts.reporter())
    doc = result.to_dict() | {"next": f"ebmctl sample --run {result.run_dir}"}
    rows = [("run", str(result.run_dir)), ("method", result.method), ("preset", result.preset),
            ("source", str(result.source)), ("sha256", result.sha256), ("step", str(result.step)),
            *(("used", u) for u in result.used), *(("left out", d) for d in result.dropped)]
    emit(opts, doc, with_notes(kv_table(f"imported in {result.seconds:.1f} s", rows), f"next: {doc['next']}"))
