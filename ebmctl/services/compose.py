"""`ebmctl compose`: sample from compositions of concepts, judged attribute by attribute.

Two routes:

- ``--attrs`` on a CLEL run (paper 000, section 4.4): each attribute's latent z_a is the normalised sum of the
  encoder's latents of labelled training examples with that attribute (without it, for ``-a``), and
  E(x|A) = 1/2 ||f||^2 - beta sum_a cos(g(f/|f|), z_a).
- ``--runs`` of independently trained conditional EBMs (paper 002, section 3.4): their energies are summed
  (``-RUN`` subtracts one, ``--op or`` takes the soft-min) and the step size is divided by the number of models.

Samples are judged by an attribute classifier trained on the dataset's labels (cached), and, for the CLEL
route, compared with unconditional samples drawn with the same settings.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ebmctl.checkpoints import save_tensors, write_bytes_atomic
from ebmctl.data.classes import class_name
from ebmctl.data.views import find_attribute
from ebmctl.errors import CapabilityError, DataError, EbmctlError, UsageError
from ebmctl.methods.capabilities import HasLatents
from ebmctl.recipes import condition_of
from ebmctl.runs import check_outputs, command_dir, output_base, resolve_run, write_json
from ebmctl.samplers.composition import compose as compose_energies
from ebmctl.samplers.langevin import frozen
from ebmctl.services.runtime.chain_progress import ChainProgress
from ebmctl.services.runtime.conditioning import examples_latent, run_dataset, trained_class
from ebmctl.services.runtime.devices import resolve_device
from ebmctl.services.runtime.judging import cache_dir
from ebmctl.services.runtime.loading import LoadedRun, load_run
from ebmctl.services.runtime.pictures import samples_png
from ebmctl.services.runtime.reporting import NullReporter, Reporter


@dataclass
class ComposeOptions:
    attrs: list[str] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    op: str = "and"
    n: int = 64
    steps: int | None = None
    step_size: float | None = None
    noise: float | None = None
    beta: float | None = None  # CLEL route: beta of E(x|A) (None: the run's method.guidance)
    alpha: float = 1.0  # runs route: weight of subtracted (negated) models
    baseline: bool = True
    judge: bool = True
    seed: int = 0
    batch_size: int = 128
    ema: bool = True
    out: str | None = None


@dataclass
class Concept:
    """One requested attribute: its dataset name and whether samples should have it."""

    attribute: str
    present: bool

    @property
    def label(self) -> str:
        return self.attribute if self.present else f"not {self.attribute}"


@dataclass
class ComposeResult:
    out_dir: Path
    route: str
    concepts: list[Concept]
    rows: list[dict[str, Any]]
    n: int
    steps: int
    seconds: float
    files: dict[str, str]
    settings: dict[str, Any]
    judge: str = ""  # the judge that scored the samples, or why none did

    def to_dict(self) -> dict[str, Any]:
        return {"out": str(self.out_dir), "route": self.route, "concepts": [c.label for c in self.concepts],
                "results": self.rows, "n": self.n, "steps": self.steps, "seconds": round(self.seconds, 2),
                "files": self.files, "settings": self.settings, "judge": self.judge}


def compose(
    run: str,
    opts: ComposeOptions,
    *,
    runs_root: Path,
    outputs: Path | None = None,
    device: str = "auto",
    cli_data_root: str | None = None,
    reporter: Reporter | None = None,
) -> ComposeResult:
    reporter = reporter or NullReporter()
    if opts.attrs and opts.runs:
        raise UsageError("--attrs and --runs cannot be combined: --attrs composes the attribute latents of one clel run, "
                         "--runs composes separately trained conditional runs",
                         "give one of them, e.g. ebmctl compose --attrs circle,red or ebmctl compose --runs RUN_A,RUN_B")
    if not opts.attrs and not opts.runs:
        raise UsageError("compose needs either --attrs (a clel run) or --runs (conditional runs)",
                         "e.g. ebmctl compose --attrs young,female, or ebmctl compose --runs RUN_A,RUN_B")
    if opts.op not in ("and", "or"):
        raise UsageError(f"unknown --op {opts.op!r}", "use and (sum of energies) or or (soft-min)")
    if opts.n < 1 or (opts.steps is not None and opts.steps < 1):
        raise UsageError("--n and --steps must be at least 1", "e.g. --n 64 --steps 600")
    torch_device = resolve_device(device)
    started = time.perf_counter()
    if opts.attrs:
        if opts.op != "and":
            raise UsageError("--op or applies to --runs", "attribute latents compose by summation")
        base = load_run(resolve_run(run, runs_root), torch_device)
        plan = _latent_plan(base, opts, cli_data_root, reporter)
    else:
        plan = _runs_plan(opts, runs_root, torch_device)
        base = plan.runs[0]
    out_base = output_base(replace(base.ref, outputs=outputs))
    check_outputs(out_base, "compose", opts.out)  # a bad --out or an unwritable folder fails before sampling
    torch.manual_seed(opts.seed)
    samples = _draw(plan, opts, reporter, "compose")
    baseline = None
    if opts.baseline and plan.route == "latents":
        torch.manual_seed(opts.seed)
        baseline = _draw(_Plan("unconditional", plan.runs, None, plan.concepts, plan.settings), opts, reporter,
                         "baseline")
    seconds = time.perf_counter() - started

    out_dir = command_dir(out_base, "compose", opts.out)
    title = " & ".join(c.label for c in plan.concepts)
    files = {"samples": str(out_dir / "samples.safetensors"), "grid": str(out_dir / "grid.png")}
    save_tensors(out_dir / "samples.safetensors", {"samples": samples},
                 {"kind": "samples", "command": "compose", "concepts": [c.label for c in plan.concepts],
                  "runs": [str(r.ref.run_dir) for r in plan.runs], "settings": plan.settings})
    write_bytes_atomic(out_dir / "grid.png", samples_png(samples[:100], None, title=title))
    if baseline is not None:
        write_bytes_atomic(out_dir / "baseline.png", samples_png(baseline[:100], None, title="unconditional"))
        files["baseline"] = str(out_dir / "baseline.png")
    rows: list[dict[str, Any]] = []
    if not opts.judge:
        judged_by = "skipped (--no-judge)"
    elif not base.info.attribute_names:
        judged_by = f"none: {base.info.name} has no attribute labels to train an attribute judge on"
    else:
        rows, judged_by = _judge(base, plan.concepts, samples, baseline, cli_data_root, torch_device, reporter,
                                 out_dir / "grid.png")
    result = ComposeResult(out_dir, plan.route, plan.concepts, rows, len(samples), plan.settings["steps"], seconds,
                           files, plan.settings, judged_by)
    write_json(out_dir / "result.json", {"command": "compose", **result.to_dict()})
    return result


# ------------------------------------------------------------------------------------------------- plans


@dataclass
class _Plan:
    route: str
    runs: list[LoadedRun]
    energy: Any  # sampler energy, or None for the first run's own
    concepts: list[Concept]
    settings: dict[str, Any]


def _settings(run: LoadedRun, opts: ComposeOptions, models: int) -> dict[str, Any]:
    d = run.spec.sample
    step_size = opts.step_size if opts.step_size is not None else (d.step_size or run.spec.sampler.step_size) / models
    noise = opts.noise if opts.noise is not None else (d.noise if d.noise is not None else run.spec.sampler.noise)
    steps = opts.steps if opts.steps is not None else d.steps
    return {"steps": steps, "step_size": step_size, "noise": noise, "aug_every": d.aug_every,
            "plain_steps": min(d.plain_steps, steps), "seed": opts.seed, "ema": opts.ema and run.method.has_ema,
            "models": models, "op": opts.op}


def _latent_plan(run: LoadedRun, opts: ComposeOptions, cli_data_root: str | None, reporter: Reporter) -> _Plan:
    from ebmctl.evaluation.attributes import ATTRIBUTE_ALIASES, resolve_attributes

    method = run.method
    if not isinstance(method, HasLatents):
        raise CapabilityError(f"run {run.ref.run_dir.name} ({run.spec.method.name}) has no attribute latents",
                              "--attrs needs a clel run; compose conditional icd runs with --runs A,B")
    if not run.info.attribute_names:
        raise DataError(f"{run.info.name} has no attribute labels to build latents from",
                        "train CLEL on a dataset with attributes (shapes32, celeba)")
    wanted = resolve_attributes(opts.attrs, run.info.attribute_names, ATTRIBUTE_ALIASES.get(run.info.name))
    settings = _settings(run, opts, models=1)
    ds = run_dataset(run, run.spec.data.split, cli_data_root)
    attributes = ds.attributes()
    if attributes is None:
        raise DataError(f"{run.info.name} has no attribute labels", "use a dataset with attributes")
    latents, concepts = [], []
    with reporter.progress("attribute latents", len(wanted), unit="attribute") as bar:
        for i, (name, index, present) in enumerate(wanted):
            members = torch.nonzero(attributes[:, index] == (1 if present else 0)).flatten()
            if len(members) == 0:
                raise DataError(f"no training example {'with' if present else 'without'} {name}", "drop it")
            latents.append(examples_latent(method, ds, members, seed=i, ema=settings["ema"])[0])
            concepts.append(Concept(name, present))
            bar.update(i + 1)
    energy = method.conditional_energy(torch.stack(latents), beta=opts.beta, ema=settings["ema"])
    settings["beta"] = method.guidance if opts.beta is None else opts.beta
    settings["examples_per_attribute"] = method.latent_examples
    return _Plan("latents", [run], energy, concepts, settings)


def _parse_item(item: str) -> tuple[str, bool, str | None]:
    """``[-]RUN[@LABEL]`` -> (run, negated, label)."""
    negated = item.startswith("-")
    body = item[1:] if negated else item
    ref, _, label = body.partition("@")
    if not ref:
        raise UsageError(f"--runs item {item!r} names no run", "items look like RUN, -RUN or RUN@LABEL")
    return ref, negated, label or None


def _runs_plan(opts: ComposeOptions, runs_root: Path, device: torch.device) -> _Plan:
    terms, runs, concepts = [], [], []
    for item in opts.runs:
        ref, negated, label = _parse_item(item)
        run = load_run(resolve_run(ref, runs_root), device)
        condition = condition_of(run.spec)
        if condition is None:
            raise CapabilityError(f"run {run.ref.run_dir.name} is unconditional",
                                  "compose runs trained with --set method.condition=ATTRIBUTE (or class)")
        if runs and (run.info.name, run.info.shape) != (runs[0].info.name, runs[0].info.shape):
            raise UsageError("the composed runs model different data",
                             f"{runs[0].ref.run_dir.name}: {runs[0].info.name}; {run.ref.run_dir.name}: {run.info.name}")
        if condition == "class":
            if label is None:
                raise UsageError(f"run {run.ref.run_dir.name} is class-conditional: say which class",
                                 f"write {ref}@CLASS, e.g. {ref}@{(run.info.class_names or ('0',))[0]}")
            y = trained_class(run, label)
            concept = Concept(class_name(run.info, y), not negated)
        else:
            if label not in (None, "0", "1"):
                raise UsageError(f"run {run.ref.run_dir.name} is conditioned on {condition}: its labels are 1 "
                                 "(has it) and 0 (lacks it)", f"write {ref} or {ref}@0")
            y = 0 if label == "0" else 1
            index = find_attribute(run.info, condition)
            name = run.info.attribute_names[index] if index is not None else condition
            concept = Concept(name, (y == 1) != negated)
        ema = opts.ema and run.method.has_ema
        terms.append((run.method.label_energy(torch.tensor(y), ema=ema), -1 if negated else 1))
        runs.append(run)
        concepts.append(concept)
    try:
        energy = compose_energies(terms, op=opts.op, alpha=opts.alpha)
    except ValueError as exc:
        raise UsageError(str(exc), "negate models only under --op and, next to at least one positive model") from None
    settings = _settings(runs[0], opts, models=len(runs))
    settings["alpha"] = opts.alpha
    return _Plan("runs", runs, energy, concepts, settings)


# -------------------------------------------------------------------------------------------- sampling


def _draw(plan: _Plan, opts: ComposeOptions, reporter: Reporter, label: str) -> Tensor:
    s = plan.settings
    lead = plan.runs[0].method
    nets = [r.method.model.eval_net(s["ema"]) for r in plan.runs]
    chunks, done = [], 0
    batches = -(-opts.n // opts.batch_size)
    energy = plan.energy or (lambda x: lead.energy(x, ema=s["ema"]))
    with frozen(*nets), reporter.progress(f"{label} {opts.n} in {batches} batch(es) x {s['steps']} steps",
                                          batches * s["steps"], unit="step", fields=("mean E",)) as bar:
        steps_of = ChainProgress(bar, s["steps"], lambda images: energy(lead.to_model(images)) if plan.energy
                                 else energy(images))
        while done < opts.n:
            b = min(opts.batch_size, opts.n - done)
            batch = done // opts.batch_size
            x = lead.sample(b, steps=s["steps"], step_size=s["step_size"], noise=s["noise"], aug_every=s["aug_every"],
                            plain_steps=s["plain_steps"], ema=s["ema"], energy=plan.energy,
                            callback=steps_of.batch(batch))
            chunks.append(x.detach().cpu())
            done += b
            bar.update((batch + 1) * s["steps"])
    return torch.cat(chunks)


# ---------------------------------------------------------------------------------------------- judging


def attribute_judge(run: LoadedRun, cli_data_root: str | None, device: torch.device, reporter: Reporter,
                    grid: Path | None = None) -> Any:
    """The attribute judge of the run's dataset, trained on first use (saying so first, with how long it will
    take here and where the already written ``grid`` is) and cached."""
    from ebmctl.evaluation.attribute_judge import ARCHITECTURE_NAMES, default_architecture, default_steps
    from ebmctl.evaluation.attribute_training import (
        cached_judge_matches,
        load_or_train_attribute_judge,
        step_seconds,
    )

    info = run.info
    arch = default_architecture(info)
    steps = run.spec.eval.attribute_judge_steps or default_steps(info)
    train = run_dataset(run, run.spec.data.split, cli_data_root, all_classes=True)
    try:
        test = run_dataset(run, "test", cli_data_root, all_classes=True)
    except EbmctlError:  # a dataset without a test split: judge on training data only
        test = None
    shape = "x".join(str(v) for v in info.shape)
    path = cache_dir() / "judges" / f"attributes-{info.name}-{shape}-{arch}.safetensors"
    if not cached_judge_matches(path, train, arch):
        written = f"; the samples are already in {grid}" if grid is not None else ""
        reporter.info(f"first the attribute judge of {info.name} is trained, once (then cached in {path}): a "
                      f"{ARCHITECTURE_NAMES[arch]}, {steps} steps on {len(train)} labelled images with "
                      f"{len(info.attribute_names)} attributes{written}. Add --no-judge to skip judging.")
        per_step = step_seconds(train, arch, device=device)
        reporter.info(f"training the judge takes about {_duration(steps * per_step)} on this device ({device}, "
                      f"{per_step:.2g} s a step)")
    with reporter.progress(f"attribute judge for {info.name}", steps, fields=("loss", "acc")) as bar:
        judge, trained = load_or_train_attribute_judge(
            path, train, test, architecture=arch, steps=steps, device=str(device),
            progress=lambda step, total, m: bar.update(step, loss=m["loss"], acc=m["acc"]),
        )
    if trained:
        reporter.info(f"trained the {info.name} attribute judge ({path})")
    return judge


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def _judge(run: LoadedRun, concepts: list[Concept], samples: Tensor, baseline: Tensor | None,
           cli_data_root: str | None, device: torch.device, reporter: Reporter,
           grid: Path | None = None) -> tuple[list[dict[str, Any]], str]:
    """The judge's rows and its description (or why nothing was judged)."""
    from ebmctl.evaluation.attributes import attribute_report

    wanted = []
    for c in concepts:
        index = find_attribute(run.info, c.attribute)
        if index is not None:
            wanted.append((run.info.attribute_names[index], index, c.present))
    if not wanted:
        return [], f"none: the composed concepts are not attributes of {run.info.name}"
    judge = attribute_judge(run, cli_data_root, device, reporter, grid)
    composed = attribute_report(judge, samples, wanted)
    base = attribute_report(judge, baseline, wanted) if baseline is not None else None
    accuracy = judge.meta.get("test_accuracy") or []
    rows = []
    for i, row in enumerate(composed):
        out: dict[str, Any] = {"attribute": row["name"], "present": row["present"], "composed": row["fraction"],
                               "composed_abstained": row["abstained"], "composed_of_judged": row["fraction_of_judged"]}
        if base is not None:
            out["unconditional"] = base[i]["fraction"]
            out["unconditional_abstained"] = base[i]["abstained"]
            out["unconditional_of_judged"] = base[i]["fraction_of_judged"]
        index = row["index"]
        if index is not None and isinstance(accuracy, list) and index < len(accuracy):
            out["judge_accuracy"] = accuracy[index]
        rows.append(out)
    return rows, judge.describe()
