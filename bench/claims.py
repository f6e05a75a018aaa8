"""Each paper's headline claim reproduced in small: train what is missing, evaluate, write docs/claims.md.

    OMP_NUM_THREADS=1 python bench/claims.py                 # every claim, 3 seeds an arm
    OMP_NUM_THREADS=1 python bench/claims.py --only icd-beats-igebm --seeds 2
    python bench/claims.py --list                             # the claims, their arms and commands
    python bench/claims.py --write                            # docs/claims.md from the recorded results only

Every training run is an ordinary ``ebmctl train`` in ``runs/claims/<arm>/s<seed>/`` (one run a folder): a
completed run is reused, an interrupted one is resumed with ``ebmctl train --resume``. Every measurement is an
``ebmctl ... --json`` command on that run, and its value is recorded in ``bench/claims-results.json`` with the
commit, torch version and wall times, so an interrupted harness (or one on a machine without the runs) goes on
where it stopped: a recorded measurement is never taken again unless ``--redo`` names its claim. docs/claims.md
is written from that file alone. Runs use one thread each; wall times are of a 2-core CPU running one of them.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ebmctl.recipes import resolve_spec, validate_spec
from ebmctl.run_lock import holder

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "runs" / "claims"
RESULTS = ROOT / "bench" / "claims-results.json"
DOC = ROOT / "docs" / "claims.md"
GUARD_OFF = ("guard.enabled=false",)
AFTER_TRAINING = ("sample", "eval")  # spec sections that change what commands on a run do, not the run itself  # a rollback would hide the instability a claim compares


@dataclass(frozen=True)
class Arm:
    """One trained configuration: a preset and overrides (the run of seed s adds ``--seed s``)."""

    key: str
    preset: str
    sets: tuple[str, ...] = ()
    label: str = ""
    run: str = ""  # the training run's key when several arms measure one run (default: key)
    needs: tuple[tuple[str, Arm], ...] = ()  # (spec key, arm): the arm's run of the same seed, e.g. a generator

    @property
    def run_key(self) -> str:
        return self.run or self.key

    def overrides(self, needed: dict[str, Path]) -> list[str]:
        return [*self.sets, *(f"{k}={json.dumps(str(v))}" for k, v in needed.items())]

    def train_args(self, seed: int, needed: dict[str, Path]) -> list[str]:
        args = ["train", "--preset", self.preset, "--seed", str(seed)]
        for item in self.overrides(needed):
            args += ["--set", item]
        return args

    def command(self) -> str:
        sets = "".join(f" --set {shlex.quote(s)}" for s in self.sets)
        needs = "".join(f" --set {k}=RUN_OF_{arm.run_key.upper()}" for k, arm in self.needs)
        first = "".join(f"{arm.command()} && " for _, arm in self.needs)
        return f"{first}ebmctl train --preset {self.preset}{sets}{needs} --seed S"


@dataclass
class Claim:
    """A paper's claim, the small experiment that tests it and the rule that decides it in direction."""

    name: str
    paper: str
    paper_value: str
    experiment: str
    metric: str
    rule: str
    arms: tuple[Arm, ...]
    measure: Callable[[Harness, Arm, int], float]
    decide: Callable[[dict[str, list[float]]], bool]
    eval_command: str
    seeds: int = 3
    first_seed: int = 0  # 1 where seed 0 was the run its settings were tuned on (its records are not shown)
    lower_is_better: bool = False
    notes: list[str] = field(default_factory=list)


class Harness:
    """Trains and measures through the ``ebmctl`` command line, recording every value in RESULTS."""

    def __init__(self, results: dict[str, Any], redo: set[str], threads: int = 1, smoke: bool = False) -> None:
        self.results = results
        self.redo = redo
        self.threads = threads
        self.smoke = smoke  # 3 training steps a run, under runs/claims-smoke, recorded nowhere
        self.runs = RUNS.with_name("claims-smoke") if smoke else RUNS
        self._outputs: dict[tuple[str, ...], dict[str, Any]] = {}

    def evaluate(self, run: Path, args: list[str]) -> dict[str, Any]:
        """The JSON of an evaluation command on ``run``, run once per harness process (two arms may read one)."""
        key = (str(run), *args)
        if key not in self._outputs:
            self._outputs[key], _ = self.ebmctl(run.parent, [args[0], "--run", str(run), *args[1:]])
        return self._outputs[key]

    # -------------------------------------------------------------- commands
    def ebmctl(self, runs_dir: Path, args: list[str]) -> tuple[dict[str, Any], float]:
        cmd = [sys.executable, "-m", "ebmctl", "--quiet", "--json", "--threads", str(self.threads),
               "--runs-dir", str(runs_dir), *args]
        env = {**os.environ, "OMP_NUM_THREADS": str(self.threads)}
        start = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:3])} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
        return (json.loads(done.stdout) if done.stdout.strip() else {}), seconds

    def runs_of(self, arm: Arm, seed: int) -> list[Path]:
        folder = self.runs / arm.run_key / f"s{seed}"
        return sorted(p for p in folder.iterdir() if (p / "run.json").exists()) if folder.exists() else []

    def stale(self, arm: Arm, seed: int) -> bool:
        """Whether the newest run of ``arm`` and ``seed`` was trained from another spec than the preset and
        overrides resolve to now (a preset changed since): then it is trained again and its records dropped."""
        runs = self.runs_of(arm, seed)
        if self.smoke or not runs or not (runs[-1] / "spec.json").exists():
            return False
        needed = {}
        for k, dep in arm.needs:
            if not (dep_runs := self.runs_of(dep, seed)):
                return False
            needed[k] = dep_runs[-1]
        want = resolve_spec(arm.preset, arm.overrides(needed), {"seed": seed}).model_dump(mode="json")
        have = validate_spec(json.loads((runs[-1] / "spec.json").read_text())).model_dump(mode="json")
        for section in AFTER_TRAINING:
            want.pop(section, None)
        if want.get("hat", {}).get("generator"):  # training records the named generator's architecture
            want["hat"].pop("generator_net", None)
        return _differs(want, have)

    def drop_records(self, arm: Arm, seed: int) -> None:
        """Mark every record measured on the run of ``arm`` and ``seed`` stale (kept in the file, never shown)."""
        keys = {arm.run_key} | {a.key for c in CLAIMS for a in c.arms if a.run_key == arm.run_key}
        for key, record in self.results.items():
            parts = key.split("/")
            if ((parts[0] == "train" and parts[1] == arm.run_key) or parts[1] in keys) and parts[-1] == f"s{seed}":
                record["stale"] = True
                record["at"] = round(time.time())

    def run_of(self, arm: Arm, seed: int) -> Path:
        """The completed run of ``arm`` and ``seed``, trained or resumed first where needed."""
        folder = self.runs / arm.run_key / f"s{seed}"
        runs = self.runs_of(arm, seed)
        while runs and holder(runs[-1]) is not None:  # another harness (one per core) is training it
            time.sleep(10)
        status = json.loads((runs[-1] / "run.json").read_text())["status"] if runs else None
        key = f"train/{arm.run_key}/s{seed}"
        if status == "completed" and self.stale(arm, seed):
            print(f"  {arm.run_key} seed {seed}: the preset changed since {runs[-1].name}; training again", flush=True)
            self.drop_records(arm, seed)
            self.results[key] = {"seconds": 0.0, "at": round(time.time())}
            runs, status = [], None
        if status != "completed":
            needed = {k: self.run_of(dep, seed) for k, dep in arm.needs}
            print(f"  training {arm.run_key} seed {seed}" + (" (resumed)" if runs else ""), flush=True)
            args = ["train", "--resume", str(runs[-1])] if runs else arm.train_args(seed, needed)
            if self.smoke and not runs:
                args += ["--steps", "3", "--set", "train.checkpoint_every=3", "--set", "train.log_every=1"]
            _, seconds = self.ebmctl(folder, args)
            runs = sorted(p for p in folder.iterdir() if (p / "run.json").exists())
            record = self.results.setdefault(key, {"seconds": 0.0})
            record["seconds"] = round(max(record["seconds"] + seconds, loop_seconds(runs[-1])), 1)
            record["at"] = round(time.time())
            self.save()
        elif not self.smoke and (logged := loop_seconds(runs[-1])) > self.results.get(key, {}).get("seconds", 0.0):
            # a harness stopped while training (or a run trained beside it) never recorded that part: the run's log has it
            self.results[key] = {**self.results.get(key, {}), "seconds": round(logged, 1), "at": round(time.time())}
            self.save()
        return runs[-1]

    # -------------------------------------------------------------- records
    def measured(self, claim: Claim, arm: Arm, seed: int) -> float:
        key = f"{claim.name}/{arm.key}/s{seed}"
        record = self.results.get(key)
        if record and not record.get("stale") and claim.name not in self.redo and not self.stale(arm, seed):
            return record["value"]
        start = time.perf_counter()
        value = float(claim.measure(self, arm, seed))
        self.results[key] = {"value": value, "eval_seconds": round(time.perf_counter() - start, 1),
                             "commit": _commit(), "torch": _torch_version(), "at": round(time.time())}
        self.save()
        return value

    def save(self) -> None:
        """Merge this process's records into RESULTS under a lock, so two harnesses (one per core) can run."""
        if self.smoke:
            return
        with open(RESULTS.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            merged = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
            for key, record in self.results.items():  # the newer of two records of one key wins
                if record.get("at", 0) >= merged.get(key, {}).get("at", 0):
                    merged[key] = record
            self.results.update(merged)
            tmp = RESULTS.with_suffix(".tmp")
            tmp.write_text(json.dumps(merged, indent=1, sort_keys=True) + "\n")
            tmp.replace(RESULTS)


def loop_seconds(run: Path) -> float:
    """Seconds the training loop of ``run`` took over all the processes that trained it, from its metrics.jsonl:
    each resumed process counts ``elapsed_s`` from zero again, so every drop starts a new part."""
    path = run / "metrics.jsonl"
    total = last = 0.0
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            elapsed = json.loads(line).get("elapsed_s")
        except json.JSONDecodeError:
            continue
        if isinstance(elapsed, (int, float)):
            if elapsed < last:
                total += last
            last = elapsed
    return total + last


def _differs(want: Any, have: Any) -> bool:
    """Spec trees differ, a None in ``want`` matching anything (train fills some keys in, e.g. from a generator)."""
    if want is None:
        return False
    if isinstance(want, dict) and isinstance(have, dict):
        return any(_differs(v, have.get(k)) for k, v in want.items())
    return want != have


def _commit() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    return out.stdout.strip() or "unknown"


def _torch_version() -> str:
    import torch

    return torch.__version__


# ------------------------------------------------------------------ measurements


def sample_metric(name: str, *extra: str, n: int = 500) -> Callable[[Harness, Arm, int], float]:
    """A metric of ``ebmctl sample --fid`` on the arm's run (500 samples against 500 test images)."""

    def measure(h: Harness, arm: Arm, seed: int) -> float:
        run = h.run_of(arm, seed)
        out = h.evaluate(run, ["sample", "--n", str(n), "--fid", "--seed", "0", *extra])
        return float(out["metrics"][name])

    return measure


def class_agreement(classes: tuple[str, ...], n: int = 100) -> Callable[[Harness, Arm, int], float]:
    """The mean over ``classes`` of the share of ``ebmctl sample --class C`` samples the class judge assigns to C."""

    def measure(h: Harness, arm: Arm, seed: int) -> float:
        run = h.run_of(arm, seed)
        shares = []
        for name in classes:
            out = h.evaluate(run, ["sample", "--class", name, "--n", str(n), "--seed", "0"])
            shares.append(float(out["metrics"]["class_accuracy"]))
        return statistics.mean(shares)

    return measure


def composed_share(attrs: str, column: str, n: int = 200) -> Callable[[Harness, Arm, int], float]:
    """The share of ``ebmctl compose --attrs A`` samples that the attribute judge finds to have every attribute
    (``column`` composed), or of the unconditional samples drawn beside them (``column`` unconditional)."""

    def measure(h: Harness, arm: Arm, seed: int) -> float:
        run = h.run_of(arm, seed)
        out = h.evaluate(run, ["compose", "--attrs", attrs, "--n", str(n), "--seed", "0"])
        (row,) = [r for r in out["results"] if r["attribute"] == "all"]
        return float(row[column])

    return measure


def refine_metric(side: str, name: str, n: int = 500) -> Callable[[Harness, Arm, int], float]:
    """A metric of ``ebmctl refine`` samples (500, against 500 test images): the generator's G(z) (``side``
    before) or G(z) + y after the Hat EBM's Langevin chains (after); ``name`` fid or judge_confident."""

    def measure(h: Harness, arm: Arm, seed: int) -> float:
        run = h.run_of(arm, seed)
        out = h.evaluate(run, ["refine", "--n", str(n), "--seed", "0"])
        return float(out[side][name])

    return measure


def probe_accuracy(features: str, shots: int | str, dataset: str) -> Callable[[Harness, Arm, int], float]:
    """Mean linear-probe accuracy (the run's paper protocol, 10 draws of the shots) on the test split:
    ``features`` model (the run's representation) or pixels (``--pixels`` beside it)."""

    def measure(h: Harness, arm: Arm, seed: int) -> float:
        run = h.run_of(arm, seed)
        out = h.evaluate(run, ["probe", "--dataset", dataset, "--pixels", "--knn", "0"])
        (row,) = [r for r in out["results"] if r["features"] == features and r["probe"] == "linear"
                  and r["shots"] == shots]
        return float(row["mean"])

    return measure


def probe_full(dataset: str) -> Callable[[Harness, Arm, int], float]:
    """Test accuracy of the run's paper-protocol linear probe with every training label."""

    def measure(h: Harness, arm: Arm, seed: int) -> float:
        run = h.run_of(arm, seed)
        out = h.evaluate(run, ["probe", "--dataset", dataset, "--shots", "full", "--knn", "0"])
        (row,) = [r for r in out["results"] if r["features"] == "model" and r["probe"] == "linear"]
        return float(row["mean"])

    return measure


def ood_auroc(in_set: str, outs: tuple[str, ...], scores: tuple[str, ...], score: str,
              n: int = 1000) -> Callable[[Harness, Arm, int], float]:
    """Mean AUROC of ``score`` over the OOD sets ``outs`` against ``in_set``'s test split (``n`` images a set):
    one ``ebmctl ood`` call per run computes every score in ``scores``, shared by the arms that read it."""

    def measure(h: Harness, arm: Arm, seed: int) -> float:
        run = h.run_of(arm, seed)
        out = h.evaluate(run, ["ood", "--in", in_set, "--out", ",".join(outs), "--score", ",".join(scores),
                               "--n", str(n)])
        return statistics.mean(float(r["auroc"]) for r in out["results"] if r["score"] == score)

    return measure


def gap_drift(h: Harness, arm: Arm, seed: int) -> float:
    """How far the energy gap E+ - E- wanders over the second half of training: its largest absolute value there
    over its median absolute value in the first half (1 for a steady gap; the ratio grows as training drifts)."""
    run = h.run_of(arm, seed)
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    gaps = [abs(r["gap"]) for r in lines if "gap" in r]
    if not gaps or any(g != g or g == float("inf") for g in gaps):
        return float("inf")
    half = len(gaps) // 2
    return max(gaps[half:]) / max(statistics.median(gaps[:half]), 1e-12)


def lower(better: Arm, worse: Arm) -> Callable[[dict[str, list[float]]], bool]:
    """The rule "``better``'s mean is lower than ``worse``'s"."""
    return lambda v: statistics.mean(v[better.key]) < statistics.mean(v[worse.key])


def higher(better: Arm, worse: Arm, *, or_equal: bool = False) -> Callable[[dict[str, list[float]]], bool]:
    """The rule "``better``'s mean is higher than ``worse``'s" (or at least as high)."""
    def decide(v: dict[str, list[float]]) -> bool:
        a, b = statistics.mean(v[better.key]), statistics.mean(v[worse.key])
        return a >= b if or_equal else a > b

    return decide


def scored(in_set: str, outs: tuple[str, ...], scores: tuple[str, str], first: Arm,
           first_score: str) -> Callable[[Harness, Arm, int], float]:
    """OOD measurement for a claim whose two arms read the two ``scores`` of one run: ``first`` reads
    ``first_score``, the other arm the other score."""
    other = next(x for x in scores if x != first_score)
    return lambda h, arm, seed: ood_auroc(in_set, outs, scores, first_score if arm is first else other)(h, arm, seed)


# ------------------------------------------------------------------ the claims

QUICKSTART_ICD = Arm("quickstart-icd", "quickstart", GUARD_OFF, "ICD (KL, entropy, augmented buffer)")
QUICKSTART_IGEBM = Arm("quickstart-igebm", "quickstart",
                       (*GUARD_OFF, "method.kl=false", "method.entropy=false", "buffer.augment=false"),
                       "IGEBM (no KL, no entropy, no augmentation)")
QUICKSTART_NO_KL = Arm("quickstart-no-kl", "quickstart", (*GUARD_OFF, "method.kl=false"),
                       "ICD without the KL term")

CLEL_SHAPES = Arm("clel-shapes", "clel-shapes", label="CLEL, class-conditional samples")
CLEL_FID = Arm("clel-shapes-fid", "clel-shapes", label="CLEL (clel-shapes, 1200 iterations)", run="clel-shapes")
ICD_FID = Arm("quickstart-icd-fid", "quickstart", GUARD_OFF, "ICD (quickstart, 1300 steps)", run="quickstart-icd")
IGEBM_FID = Arm("quickstart-igebm-fid", "quickstart", QUICKSTART_IGEBM.sets, "IGEBM (the quickstart ablation)",
                run="quickstart-igebm")
CLEL_MNIST5K = Arm("clel-mnist5k", "clel-mnist5k", label="CLEL, class-conditional samples")
CLEL_COMPOSED = Arm("clel-compose", "clel-shapes", label="CLEL, circle and red composed", run="clel-shapes")
CLEL_UNCOND = Arm("clel-uncond", "clel-shapes", label="CLEL, unconditional samples", run="clel-shapes")
SNGAN_SHAPES = Arm("sngan-shapes", "sngan-shapes", label="SN-GAN generator")
HAT_BEFORE = Arm("hat-refine-before", "hat-refine-shapes", label="SN-GAN samples G(z)", run="hat-refine-shapes",
                 needs=(("hat.generator", SNGAN_SHAPES),))
HAT_AFTER = Arm("hat-refine-after", "hat-refine-shapes", label="refined G(z) + y", run="hat-refine-shapes",
                needs=(("hat.generator", SNGAN_SHAPES),))
AE_SHAPES = Arm("ae-shapes", "ae-shapes", label="autoencoder")
RETRO = dict(preset="hat-retrofit-shapes", run="hat-retrofit-shapes", needs=(("hat.generator", AE_SHAPES),))
RETRO_BEFORE = Arm("hat-retrofit-before", label="judge-FID of the decoder's G(z), z ~ N(0, I)", **RETRO)
RETRO_AFTER = Arm("hat-retrofit-after", label="judge-FID of G(z) + y after 20 joint steps", **RETRO)
RETRO_CONFIDENT = Arm("hat-retrofit-confident", label="share of G(z) + y judged with confidence >= 0.9", **RETRO)
SYNTH = dict(preset="hat-synth-shapes", run="hat-synth-shapes")
SYNTH_BEFORE = Arm("hat-synth-before", label="judge-FID of its generator's G(z)", **SYNTH)
SYNTH_AFTER = Arm("hat-synth-after", label="judge-FID of G(z) + y after 10 steps on y", **SYNTH)
SYNTH_CONFIDENT = Arm("hat-synth-confident", label="share of G(z) + y judged with confidence >= 0.9", **SYNTH)
SHAPES = ("circle", "square", "triangle", "diamond")
EBCLR_B64 = Arm("ebclr-mnist5k", "ebclr-mnist5k", label="EBCLR, batch 64")
EBCLR_B16 = Arm("ebclr-mnist5k-b16", "ebclr-mnist5k-b16", label="EBCLR, batch 16")
SIMCLR_B64 = Arm("simclr-mnist5k", "simclr-mnist5k", label="SimCLR, batch 64")
SIMCLR_B16 = Arm("simclr-mnist5k-b16", "simclr-mnist5k-b16", label="SimCLR, batch 16")
CEBM = Arm("cebm-mnist5k", "cebm-mnist5k", label="CEBM posterior mean")
CEBMM = Arm("cebmm-mnist5k", "cebmm-mnist5k", label="CEBMM posterior mean")
PIXELS = Arm("cebm-mnist5k-pixels", "cebm-mnist5k", label="pixels", run="cebm-mnist5k")


FAR_OOD = ("textures", "photos", "constant")
OOD_ICD = Arm("quickstart-icd-ood", "quickstart", GUARD_OFF, "ICD, -E(x)", run="quickstart-icd")
OOD_IGEBM = Arm("quickstart-igebm-ood", "quickstart", QUICKSTART_IGEBM.sets, "IGEBM, -E(x)", run="quickstart-igebm")
NO_DIAMOND = ('data.classes=["circle","square","triangle"]',)
NEAR_ICD = Arm("quickstart-icd-3", "quickstart", (*GUARD_OFF, *NO_DIAMOND), "ICD, -E(x)")
NEAR_IGEBM = Arm("quickstart-igebm-3", "quickstart", (*QUICKSTART_IGEBM.sets, *NO_DIAMOND), "IGEBM, -E(x)")
NEAR_CLEL_ENERGY = Arm("clel-shapes-3-energy", "clel-shapes", NO_DIAMOND, "CLEL, marginal -E(x)", run="clel-shapes-3")
NEAR_CLEL_JOINT = Arm("clel-shapes-3-joint", "clel-shapes", NO_DIAMOND, "CLEL, joint score (eq. 14)",
                      run="clel-shapes-3")
NO_NINE = ('data.classes=["0","1","2","3","4","5","6","7","8"]',)
NEAR_CEBM_ENERGY = Arm("cebm-mnist5k-9-energy", "cebm-mnist5k", NO_NINE, "CEBM, log p(x)", run="cebm-mnist5k-9")
NEAR_CEBM_GRAD = Arm("cebm-mnist5k-9-grad", "cebm-mnist5k", NO_NINE, "CEBM, gradient norm", run="cebm-mnist5k-9")
CLEL_OOD_ENERGY = Arm("clel-ood-energy", "clel-shapes", label="CLEL, marginal -E(x)", run="clel-shapes")
CLEL_OOD_JOINT = Arm("clel-ood-joint", "clel-shapes", label="CLEL, joint score (eq. 14)", run="clel-shapes")
CEBM_OOD_ENERGY = Arm("cebm-ood-energy", "cebm-mnist5k", label="CEBM, log p(x)", run="cebm-mnist5k")
CEBM_OOD_GRAD = Arm("cebm-ood-grad", "cebm-mnist5k", label="CEBM, gradient norm", run="cebm-mnist5k")


def _hat_mode_claim(name: str, paper: str, paper_value: str, experiment: str, arms: tuple[Arm, Arm, Arm],
                    generator: str) -> Claim:
    """A Hat EBM mode's claim: G(z) + y is closer to the data than G(z) and mostly judged confidently."""
    before, after, confident = arms
    return Claim(
        name=name, paper=paper, paper_value=paper_value, experiment=experiment,
        metric="judge-FID against 500 test images (lower is better) and the share of the refined samples the "
               "shapes32 judge classifies with probability >= 0.9 (higher is better)",
        rule=f"G(z) + y's mean judge-FID is lower than the {generator} and at least half its samples are judged "
             "with confidence >= 0.9",
        arms=arms,
        measure=lambda h, arm, seed: refine_metric(
            "before" if arm is before else "after", "judge_confident" if arm is confident else "fid")(h, arm, seed),
        decide=lambda v: (statistics.mean(v[after.key]) < statistics.mean(v[before.key])
                          and statistics.mean(v[confident.key]) >= 0.5),
        eval_command="ebmctl refine --n 500 --seed 0",
        lower_is_better=True,
    )


def _probe_claim(name: str, shots: int, arms: tuple[Arm, ...], paper_value: str, rule: str,
                 decide: Callable[[dict[str, list[float]]], bool]) -> Claim:
    return Claim(
        name=name, paper="001, Table 1", paper_value=paper_value,
        experiment=f"cebm-mnist5k / cebmm-mnist5k (900 updates); {shots} labels per class from the mnist5k train "
                   "split, 10 draws",
        metric=f"test accuracy of liblinear logistic regression on the raw features, {shots} labels per class",
        rule=rule, arms=arms,
        measure=lambda h, arm, seed: probe_accuracy("pixels" if arm is PIXELS else "model", shots, "mnist5k")(
            h, arm, seed),
        decide=decide, eval_command="ebmctl probe --dataset mnist5k --pixels --knn 0",
        notes=["Tried on val (docs/methods/cebm.md, mnist5k in small): 3000 updates at l2 5e-3 (diverged at 1640), "
               "the paper's l2 0.1 (its samples from noise stay noise), and standardised features. The posterior means share one offset with a spread about a "
               "tenth of it: the energy separates digits from noise through its precision term, and the "
               "penalised-intercept liblinear of the paper's protocol cannot use the small spread."])

# The schedule the quickstart runs of the ICD claims were first sampled with, named so that later preset defaults
# (the quickstart now continues its training chains) do not change the protocol between seeds.
FROM_NOISE = ("--init", "noise", "--steps", "200", "--aug-every", "20", "--plain-steps", "60")

CLAIMS: list[Claim] = [
    Claim(
        name="icd-beats-igebm",
        paper="002, Tables 1-2",
        paper_value="FID 25.1 (ICD) against 169.7 (no KL, no entropy, no augmentation, single scale)",
        experiment="quickstart (ICD on shapes32, small conv net, 1300 steps) against the same with the KL and "
                   "entropy terms and the buffer augmentation off; equal steps; guard off",
        metric="judge-FID of 500 samples from uniform noise (200 steps, augmented every 20 but the last 60) against "
               "500 test images",
        rule="ICD's mean judge-FID is lower than the ablation's",
        arms=(QUICKSTART_ICD, QUICKSTART_IGEBM),
        measure=sample_metric("fid", *FROM_NOISE),
        decide=lower(QUICKSTART_ICD, QUICKSTART_IGEBM),
        eval_command="ebmctl sample --n 500 --fid --seed 0 " + " ".join(FROM_NOISE),
        lower_is_better=True,
    ),
    Claim(
        name="kl-steadies-training",
        paper="002, Table 2 and section 3.1",
        paper_value="without the KL term training is unstable (the ablation rows)",
        experiment="quickstart against quickstart without the KL term; equal steps; guard off",
        metric="energy-gap drift: the largest |E+ - E-| of the second half of training over the median of the "
               "first half (metrics.jsonl)",
        rule="the drift without KL is larger than with it",
        arms=(QUICKSTART_ICD, QUICKSTART_NO_KL),
        measure=gap_drift,
        decide=lower(QUICKSTART_ICD, QUICKSTART_NO_KL),
        eval_command="",
        lower_is_better=True,
    ),
    _probe_claim("cebm-beats-pixels-1", 1, (CEBM, PIXELS), "MNIST, 1 label a class: CEBM 67% (VAE 42%; the paper has no pixel row)",
                 "CEBM's mean accuracy is higher than the pixels'",
                 higher(CEBM, PIXELS)),
    _probe_claim("cebm-beats-pixels-10", 10, (CEBM, PIXELS), "MNIST, 10 labels a class: CEBM 89% (VAE 85%)",
                 "CEBM's mean accuracy is higher than the pixels'",
                 higher(CEBM, PIXELS)),
    _probe_claim("cebmm-at-least-cebm-10", 10, (CEBMM, CEBM), "MNIST, 10 labels a class: CEBMM 91%, CEBM 89%",
                 "CEBMM's mean accuracy is at least CEBM's",
                 higher(CEBMM, CEBM, or_equal=True)),
    _probe_claim("cebmm-at-least-cebm-100", 100, (CEBMM, CEBM), "MNIST, 100 labels a class: CEBMM 97%, CEBM 95%",
                 "CEBMM's mean accuracy is at least CEBM's",
                 higher(CEBMM, CEBM, or_equal=True)),
    Claim(
        name="cebm-samples-are-digits",
        paper="001, Figure 2",
        paper_value="samples from uniform noise after 500 SGLD steps look like digits",
        experiment="cebm-mnist5k and cebmm-mnist5k; 500 samples, 500 SGLD steps from uniform noise",
        metric="share of samples the mnist5k judge classifies with confidence >= 0.9",
        rule="the share is at least 0.5 for both",
        arms=(CEBM, CEBMM),
        measure=sample_metric("judge_confident"),
        decide=lambda v: min(statistics.mean(v[CEBM.key]), statistics.mean(v[CEBMM.key])) >= 0.5,
        eval_command="ebmctl sample --n 500 --fid --seed 0",
        notes=["The judge's confidence is not a proof: the mnist5k class judge does not abstain on images it does "
               "not recognise, and it classifies noise as '8' with confidence 1.0 (500 samples of the same presets "
               "at l2 0.1, still uniform noise after 500 steps in four runs, read a share of 1.0 and judge-FID "
               "129-130). Look at the "
               "grid too: the share judged '8' was high in these runs as well."],
    ),
    Claim(
        name="ebclr-beats-simclr",
        paper="004, Table 1 and Figure 1",
        paper_value="MNIST, 100 epochs: EBCLR 99.3 against SimCLR 99.0; EBCLR reaches SimCLR's final accuracy in "
                    "10 epochs (relative efficiency 0.1)",
        experiment="ebclr-mnist5k against simclr-mnist5k, 10 epochs each at batch 64",
        metric="test accuracy of the paper's linear evaluation (Adam head on raw features), all 3500 labels",
        rule="EBCLR's mean accuracy is higher than SimCLR's",
        arms=(EBCLR_B64, SIMCLR_B64),
        measure=probe_full("mnist5k"),
        decide=higher(EBCLR_B64, SIMCLR_B64),
        eval_command="ebmctl probe --dataset mnist5k --shots full --knn 0",
    ),
    Claim(
        name="ebclr-small-batch",
        paper="004, Table 3",
        paper_value="MNIST at batch 16 / 64 / 128: EBCLR 99.4 / 99.3 / 99.3, SimCLR 98.7 / 99.1 / 99.1",
        experiment="ebclr-mnist5k and simclr-mnist5k at batch 64 and at batch 16 (the -b16 presets), equal epochs",
        metric="test accuracy of the paper's linear evaluation, all labels",
        rule="EBCLR at batch 16 is within 0.01 of batch 64, and SimCLR's drop is larger than EBCLR's",
        arms=(EBCLR_B64, EBCLR_B16, SIMCLR_B64, SIMCLR_B16),
        measure=probe_full("mnist5k"),
        decide=lambda v: (abs(statistics.mean(v[EBCLR_B64.key]) - statistics.mean(v[EBCLR_B16.key])) <= 0.01
                          and statistics.mean(v[SIMCLR_B64.key]) - statistics.mean(v[SIMCLR_B16.key])
                          > statistics.mean(v[EBCLR_B64.key]) - statistics.mean(v[EBCLR_B16.key])),
        eval_command="ebmctl probe --dataset mnist5k --shots full --knn 0",
    ),
    Claim(
        name="clel-beats-icd",
        paper="000, Table 1",
        paper_value="CIFAR-10 FID: CLEL 8.61 (large) / 15.27 (base), ICD 25.1, IGEBM 40.6",
        experiment="the clel-shapes runs of the CLEL claims against the quickstart ICD and IGEBM runs of "
                   "icd-beats-igebm, each at its own budget: CLEL trains about twice as long as ICD (see the "
                   "train times), so the comparison favours CLEL over equal wall time",
        metric="judge-FID of 500 samples from uniform noise (each run's test-time chains: CLEL 600 SGLD steps; "
               "ICD and IGEBM 200 steps augmented every 20 but the last 60) against 500 test images",
        rule="CLEL's mean judge-FID is lower than ICD's and IGEBM's",
        arms=(CLEL_FID, ICD_FID, IGEBM_FID),
        measure=lambda h, arm, seed: (sample_metric("fid") if arm is CLEL_FID
                                      else sample_metric("fid", *FROM_NOISE))(h, arm, seed),
        decide=lambda v: statistics.mean(v[CLEL_FID.key]) < min(statistics.mean(v[ICD_FID.key]),
                                                                statistics.mean(v[IGEBM_FID.key])),
        eval_command="ebmctl sample --n 500 --fid --seed 0 (ICD and IGEBM: " + " ".join(FROM_NOISE) + ")",
        lower_is_better=True,
    ),
    Claim(
        name="clel-class-conditional",
        paper="000, section 4.3",
        paper_value="class-conditional samples from the class's encoder latent (qualitative figures)",
        experiment="clel-shapes (1200 iterations); 100 samples of each of the 4 shape classes, `--class C`",
        metric="share of samples the shapes32 class judge assigns to the class asked for, averaged over classes "
               "(unconditional samples: 0.25 for a uniform model)",
        rule="the mean share is at least 0.7",
        arms=(CLEL_SHAPES,),
        measure=class_agreement(SHAPES),
        decide=lambda v: statistics.mean(v[CLEL_SHAPES.key]) >= 0.7,
        eval_command="ebmctl sample --class C --n 100 --seed 0, for C in circle, square, triangle, diamond",
    ),
    Claim(
        name="clel-class-conditional-mnist5k",
        paper="000, section 4.3",
        paper_value="class-conditional samples from the class's encoder latent (qualitative figures)",
        experiment="clel-mnist5k (1200 iterations, beta 0.01, guidance 0.5); 50 samples of each of the 10 digits, "
                   "`--class C`, 600 SGLD steps from noise; seeds 1-3 (the guidance was chosen on seed 0)",
        metric="share of samples the mnist5k class judge assigns to the digit asked for, averaged over the 10 "
               "digits (0.1 for samples that ignore the class)",
        rule="the mean share is at least 0.7",
        arms=(CLEL_MNIST5K,),
        measure=class_agreement(tuple(str(d) for d in range(10)), n=50),
        decide=lambda v: statistics.mean(v[CLEL_MNIST5K.key]) >= 0.7,
        eval_command="ebmctl sample --class C --n 50 --seed 0, for C in 0..9",
        first_seed=1,
    ),
    Claim(
        name="clel-composition",
        paper="000, section 4.4",
        paper_value="attribute composition by summing attribute latents (qualitative figures)",
        experiment="clel-shapes; 200 samples composed for circle and red, and 200 unconditional samples beside them",
        metric="share of samples the attribute judge finds both circle and red",
        rule="the composed share is at least 3x the unconditional one and at least 0.5",
        arms=(CLEL_COMPOSED, CLEL_UNCOND),
        measure=lambda h, arm, seed: composed_share(
            "circle,red", "composed" if arm is CLEL_COMPOSED else "unconditional")(h, arm, seed),
        decide=lambda v: (statistics.mean(v[CLEL_COMPOSED.key]) >= 3 * statistics.mean(v[CLEL_UNCOND.key])
                          and statistics.mean(v[CLEL_COMPOSED.key]) >= 0.5),
        eval_command="ebmctl compose --attrs circle,red --n 200 --seed 0",
    ),
    Claim(
        name="hat-refines-its-generator",
        paper="003, Table 1",
        paper_value="SN-GAN 18.58 -> Hat EBM 14.04 FID (CIFAR-10)",
        experiment="sngan-shapes, then hat-refine-shapes on that generator (same seed); 500 samples before and "
                   "after refinement from the same latents",
        metric="judge-FID of G(z) and of G(z) + y against 500 test images",
        rule="the refined samples' mean judge-FID is lower than the generator's",
        arms=(HAT_BEFORE, HAT_AFTER),
        measure=lambda h, arm, seed: refine_metric("before" if arm is HAT_BEFORE else "after", "fid")(h, arm, seed),
        decide=lower(HAT_AFTER, HAT_BEFORE),
        eval_command="ebmctl refine --n 500 --seed 0",
        lower_is_better=True,
    ),
    _hat_mode_claim(
        "hat-retrofit", "003, section 4.2",
        "CIFAR-10: the joint Hat EBM on an MSE autoencoder's decoder samples at FID 26.01 (100 joint steps from "
        "z ~ N(0, I), y = 0)",
        "ae-shapes, then hat-retrofit-shapes on its decoder (same seed); 500 chains from z ~ N(0, I), y = 0, the "
        "decoder's G(z) at the start and G(z) + y at the end",
        (RETRO_BEFORE, RETRO_AFTER, RETRO_CONFIDENT), "decoder's"),
    _hat_mode_claim(
        "hat-synthesis", "003, Table 2",
        "CIFAR-10: FID 19.30 for the conditional Hat EBM trained in tandem with its generator",
        "hat-synth-shapes (300 updates); 500 latents, the generator's G(z) and G(z) + y after the residual's "
        "Langevin chains",
        (SYNTH_BEFORE, SYNTH_AFTER, SYNTH_CONFIDENT), "generator's"),
    Claim(
        name="ood-icd-beats-igebm",
        paper="002, Table 3",
        paper_value="CIFAR-10, AUROC of log p(x) averaged over SVHN, Textures, CIFAR-10 interpolations and "
                    "CIFAR-100: ICD 0.82 against IGEBM 0.57",
        experiment="the quickstart ICD and IGEBM runs of icd-beats-igebm; shapes32 test images against textures, "
                   "photos and constant (1000 images each)",
        metric="AUROC of -E(x), averaged over the three OOD sets",
        rule="ICD's mean AUROC is higher than IGEBM's",
        arms=(OOD_ICD, OOD_IGEBM),
        measure=ood_auroc("shapes32", FAR_OOD, ("energy",), "energy"),
        decide=higher(OOD_ICD, OOD_IGEBM),
        eval_command="ebmctl ood --in shapes32 --out textures,photos,constant --score energy --n 1000",
        notes=["These OOD sets differ from shapes32 in kind, not in detail: both arms sit near 1.0, so the "
               "comparison says little; a held-out-class pair is the near-OOD test this table still lacks."],
    ),
    Claim(
        name="ood-clel-joint",
        paper="000, eq. 14 and Table 4",
        paper_value="CIFAR-10 against SVHN, Texture, CIFAR-10 interpolations and CIFAR-100: the joint score of "
                    "eq. 14 is CLEL's proposed score, its latent term added to detect semantic differences",
        experiment="the clel-shapes runs; shapes32 test images against textures, photos and constant (1000 each)",
        metric="AUROC averaged over the three OOD sets, of the marginal -E(x) and of the joint score at beta 0.1",
        rule="the joint score's mean AUROC is at least the marginal's",
        arms=(CLEL_OOD_JOINT, CLEL_OOD_ENERGY),
        measure=scored("shapes32", FAR_OOD, ("energy", "joint"), CLEL_OOD_JOINT, "joint"),
        decide=higher(CLEL_OOD_JOINT, CLEL_OOD_ENERGY, or_equal=True),
        eval_command="ebmctl ood --in shapes32 --out textures,photos,constant --score energy,joint --n 1000",
    ),
    Claim(
        name="ood-cebm-scores",
        paper="001, section 5.3 and Table 5",
        paper_value="F-MNIST against MNIST, E-MNIST and constant, CIFAR-10 against SVHN, Texture and constant: "
                    "log p(x) and the gradient norm each improve on IGEBM in most cases; neither score wins "
                    "everywhere",
        experiment="the cebm-mnist5k runs; mnist5k test images against digits (sklearn's 8x8 digits at 28 px) "
                   "and constant (1000 each), inputs with N(0, 0.03^2) noise as the released evaluation",
        metric="AUROC averaged over the two OOD sets, of log p(x) (-E(x)) and of the gradient norm",
        rule="both scores detect the OOD sets (mean AUROC at least 0.9); the paper orders neither above the other",
        arms=(CEBM_OOD_ENERGY, CEBM_OOD_GRAD),
        measure=scored("mnist5k", ("digits", "constant"), ("energy", "grad_norm"), CEBM_OOD_ENERGY, "energy"),
        decide=lambda v: min(statistics.mean(v[CEBM_OOD_ENERGY.key]), statistics.mean(v[CEBM_OOD_GRAD.key])) >= 0.9,
        eval_command="ebmctl ood --in mnist5k --out digits,constant --score energy,grad_norm --n 1000",
    ),
    Claim(
        name="near-ood-icd-beats-igebm",
        paper="002, Table 3",
        paper_value="CIFAR-10 against CIFAR-100 (the near set), AUROC of log p(x): ICD 0.83 against IGEBM 0.50",
        experiment="quickstart ICD and IGEBM (as icd-beats-igebm) trained on circles, squares and triangles only "
                   "(`data.classes`); the test circles, squares and triangles against the test diamonds",
        metric="AUROC of -E(x), held-out class shapes32@diamond",
        rule="ICD's mean AUROC is higher than IGEBM's",
        arms=(NEAR_ICD, NEAR_IGEBM),
        measure=ood_auroc("shapes32", ("shapes32@diamond",), ("energy",), "energy"),
        decide=higher(NEAR_ICD, NEAR_IGEBM),
        eval_command="ebmctl ood --in shapes32 --out shapes32@diamond --score energy --n 1000",
    ),
    Claim(
        name="near-ood-clel-joint",
        paper="000, eq. 14 and Table 4",
        paper_value="the latent term of eq. 14 'helps to detect the semantic difference between in- and "
                    "out-of-distribution samples'",
        experiment="clel-shapes trained on circles, squares and triangles only; their test images against the "
                   "test diamonds",
        metric="AUROC on the held-out class, of the marginal -E(x) and of the joint score at beta 0.1",
        rule="the joint score's mean AUROC is at least the marginal's",
        arms=(NEAR_CLEL_JOINT, NEAR_CLEL_ENERGY),
        measure=scored("shapes32", ("shapes32@diamond",), ("energy", "joint"), NEAR_CLEL_JOINT, "joint"),
        decide=higher(NEAR_CLEL_JOINT, NEAR_CLEL_ENERGY, or_equal=True),
        eval_command="ebmctl ood --in shapes32 --out shapes32@diamond --score energy,joint --n 1000",
    ),
    Claim(
        name="near-ood-cebm-scores",
        paper="001, section 5.3 and Table 5",
        paper_value="log p(x) and the gradient norm each improve on IGEBM in most cases; neither score wins "
                    "everywhere (the paper has no held-out-class pair)",
        experiment="cebm-mnist5k trained on the digits 0-8 only (`data.classes`); their test images against the "
                   "test nines, inputs with N(0, 0.03^2) noise as the released evaluation",
        metric="AUROC on the held-out digit, of log p(x) (-E(x)) and of the gradient norm",
        rule="both scores tell the held-out digit apart better than chance (mean AUROC above 0.5); the paper "
             "orders neither above the other",
        arms=(NEAR_CEBM_ENERGY, NEAR_CEBM_GRAD),
        measure=scored("mnist5k", ("mnist5k@9",), ("energy", "grad_norm"), NEAR_CEBM_ENERGY, "energy"),
        decide=lambda v: min(statistics.mean(v[NEAR_CEBM_ENERGY.key]), statistics.mean(v[NEAR_CEBM_GRAD.key])) > 0.5,
        eval_command="ebmctl ood --in mnist5k --out mnist5k@9 --score energy,grad_norm --n 1000",
    ),
]


# ------------------------------------------------------------------ running and writing


def run_claim(h: Harness, claim: Claim, seeds: int) -> None:
    print(f"{claim.name}: {claim.paper}", flush=True)
    for seed in range(claim.first_seed, claim.first_seed + seeds):
        for arm in claim.arms:
            value = h.measured(claim, arm, seed)
            print(f"  {arm.key} seed {seed}: {value:.4g}", flush=True)


def _values(results: dict[str, Any], claim: Claim) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for arm in claim.arms:
        prefix = f"{claim.name}/{arm.key}/s"
        seeds = sorted(k for k in results if k.startswith(prefix) and not results[k].get("stale")
                       and int(k[len(prefix):]) >= claim.first_seed)  # seed 0 of a claim tuned on it is not shown
        out[arm.key] = [results[k]["value"] for k in seeds]
    return out


def _fmt(values: list[float]) -> str:
    if not values:
        return "not measured"
    mean = statistics.mean(values)
    sd = statistics.stdev(values) if len(values) > 1 else float("nan")
    return f"{mean:.3g} ± {sd:.2g} (n={len(values)})" if len(values) > 1 else f"{mean:.3g} (n=1)"


def _train_minutes(results: dict[str, Any], arm: Arm) -> str:
    times = [v["seconds"] for k, v in results.items() if k.startswith(f"train/{arm.run_key}/") and v["seconds"]]
    return f"{statistics.mean(times) / 60:.1f} min" if times else "-"


def _verdict(claim: Claim, values: dict[str, list[float]]) -> str:
    """holds / does not hold by the claim's rule; a comparison of two arms whose means lie less than two standard
    deviations (the larger arm's) apart says so, since more seeds could turn it."""
    if not all(values.values()):
        return "not yet run"
    verdict = "holds" if claim.decide(values) else "does not hold"
    if min(len(v) for v in values.values()) < 2:
        return verdict + " (one seed)"
    if len(claim.arms) >= 2:
        a, b = (values[arm.key] for arm in claim.arms[:2])
        spread = max(statistics.stdev(x) if len(x) > 1 else 0.0 for x in (a, b))
        if spread and abs(statistics.mean(a) - statistics.mean(b)) < 2 * spread:
            verdict += " (within 2 sd)"
    return verdict


def write_doc(results: dict[str, Any]) -> None:
    lines = [
        "# Claims",
        "",
        "Each paper's headline claim, reproduced in small with this code: the paper's number, the small",
        "experiment, ebmctl's value as mean ± sd over seeds, and whether the claim holds in direction. Written",
        "by `python bench/claims.py` from `bench/claims-results.json`; every number below was measured by it.",
        "Training runs use one thread on a 2-core x86 CPU; train time is the mean per seed, measured while other",
        "runs and tests shared the two cores (up to four processes at once), so it overstates a quiet machine's by",
        "up to about 2x; a run the harness was stopped in counts its training loop's time from its own log.",
        "\"Within 2 sd\" marks a comparison whose arms' means lie less than two standard deviations apart: it",
        "holds in direction only.",
        "",
        "| claim | paper | paper's value | arm | ebmctl (mean ± sd) | train time | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    details = []
    for claim in CLAIMS:
        values = _values(results, claim)
        verdict = _verdict(claim, values)
        for i, arm in enumerate(claim.arms):
            head = [f"[{claim.name}](#{claim.name})", claim.paper, claim.paper_value] if i == 0 else ["", "", ""]
            lines.append(f"| {' | '.join(head)} | {arm.label or arm.key} | {_fmt(values[arm.key])} | "
                         f"{_train_minutes(results, arm)} | {verdict if i == 0 else ''} |")
        details += [
            f"\n## {claim.name}\n",
            f"- **Experiment:** {claim.experiment}.",
            f"- **Metric:** {claim.metric}" + ("." if "is better" in claim.metric
                                                else f" ({'lower' if claim.lower_is_better else 'higher'} is better)."),
            f"- **Rule:** {claim.rule}.",
            "- **Commands:**",
            *[f"  - {arm.label or arm.key}: `{arm.command()}`, then "
              + (f"`{claim.eval_command}`" if claim.eval_command else "the run's metrics.jsonl") for arm in claim.arms],
            *[f"- {note}" for note in claim.notes],
        ]
    meta = {(v.get("commit"), v.get("torch")) for v in results.values() if "commit" in v}
    lines += ["", "Measured at commit(s) " + ", ".join(sorted(f"{c} (torch {t})" for c, t in meta)) + "."
              if meta else "", *details]
    DOC.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated claim names")
    parser.add_argument("--seeds", type=int, default=None, help="seeds an arm (default: each claim's)")
    parser.add_argument("--redo", default="", help="comma-separated claims to measure again")
    parser.add_argument("--list", action="store_true", help="list the claims and exit")
    parser.add_argument("--write", action="store_true", help="only write docs/claims.md from the results")
    parser.add_argument("--smoke", action="store_true", help="3 training steps a run and one seed, to check the "
                        "commands; records nothing and writes no doc")
    args = parser.parse_args(argv)
    names = {c.name for c in CLAIMS}
    only = set(filter(None, args.only.split(","))) or names
    if unknown := only - names:
        parser.error(f"unknown claim(s) {', '.join(sorted(unknown))}; choose from {', '.join(sorted(names))}")
    if args.list:
        for c in CLAIMS:
            print(f"{c.name} ({c.paper}): {c.rule}")
            for arm in c.arms:
                print(f"    {arm.command()}")
        return
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() and not args.smoke else {}
    if not args.write:
        h = Harness(results, set(filter(None, args.redo.split(","))), smoke=args.smoke)
        for claim in CLAIMS:
            if claim.name in only:
                run_claim(h, claim, 1 if args.smoke else args.seeds or claim.seeds)
    if args.smoke:
        return
    write_doc(results)
    print(f"wrote {DOC.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
