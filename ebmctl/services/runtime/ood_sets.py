"""The sets `ebmctl ood` scores: datasets, or some classes of one (``DATASET@CLASS+CLASS``), checked against the run.

``--in`` naming the run's own dataset means the classes the run was trained on (``data.classes``); an OOD set
may hold no class the run was trained on, nor share one with the in-distribution set.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ebmctl.data import EbmDataset
from ebmctl.data.classes import CLASS_JOIN, CLASS_MARK, class_indices, class_name, parse_class_set, set_label
from ebmctl.errors import SpecError, UsageError
from ebmctl.services.runtime.conditioning import trained_classes
from ebmctl.services.runtime.datasets import dataset_from
from ebmctl.services.runtime.loading import LoadedRun
from ebmctl.specs import DataSpec


@dataclass(frozen=True)
class ScoredSet:
    """A dataset, or some of its classes, at the run's image shape."""

    key: str  # as written, classes spelled out: shapes32, shapes32@diamond (the keys of scores.npz)
    label: str  # in words: shapes32, shapes32 (diamond)
    data: DataSpec
    dataset: EbmDataset
    class_names: list[str] | None  # None: every class

    def describe(self, split: str, n: int) -> dict[str, object]:
        return {"label": self.label, "dataset": self.data.name, "classes": self.class_names, "split": split, "n": n}


def ood_sets(run: LoadedRun, in_text: str, out_texts: list[str], *, split: str, root: Path | None,
             verify: bool) -> tuple[ScoredSet, list[ScoredSet]]:
    """The in-distribution set of ``--in`` and the OOD sets of ``--out``, loaded: every mistake before any work."""
    in_name, in_classes = _parse("--in", in_text)
    if in_classes is None and in_name == run.spec.data.name and run.spec.data.classes is not None:
        in_classes = tuple(str(c) for c in run.spec.data.classes)
    in_set = _load(run, "--in", in_name, in_classes, split, root, verify)
    out_sets = []
    for text in out_texts:
        name, classes = _parse("--out", text)
        if name == run.spec.data.name:
            _check_held_out(run, text, classes)
        out_set = _load(run, "--out", name, classes, split, root, verify)
        if name == in_name and _overlap(in_set, out_set):
            raise UsageError(f"--out {text} shares images with --in {in_text}",
                             f"name classes --in leaves out, e.g. ebmctl ood --in {name}{CLASS_MARK}A --out "
                             f"{name}{CLASS_MARK}B")
        out_sets.append(out_set)
    return in_set, out_sets


def _parse(option: str, text: str) -> tuple[str, tuple[str, ...] | None]:
    try:
        return parse_class_set(text)
    except SpecError as exc:
        raise UsageError(f"{option}: {exc.message}", exc.hint) from None


def _load(run: LoadedRun, option: str, name: str, classes: tuple[str, ...] | None, split: str, root: Path | None,
          verify: bool) -> ScoredSet:
    shape = run.info.shape
    data = DataSpec(name=name, verify_checksums=verify, classes=classes)
    try:
        ds = dataset_from(data, split=split, root=root, image_size=shape[-1], channels=shape[0])
    except SpecError as exc:
        if classes is None:
            raise
        raise UsageError(f"{option} {name}{CLASS_MARK}{CLASS_JOIN.join(classes)}: {exc.message}", exc.hint) from None
    names = ds.info.extra.get("classes")  # as the dataset spells them
    key = name if names is None else f"{name}{CLASS_MARK}{CLASS_JOIN.join(names)}"
    return ScoredSet(key, set_label(ds.info), data, ds, names)


def _overlap(a: ScoredSet, b: ScoredSet) -> bool:
    """Whether two sets of one dataset share a class. A whole dataset against itself stays allowed: its AUROC
    of about 0.5 checks that the scores rank no image by its set."""
    if a.class_names is None or b.class_names is None:
        return a.class_names != b.class_names
    return bool(set(a.class_names) & set(b.class_names))


def _check_held_out(run: LoadedRun, text: str, classes: tuple[str, ...] | None) -> None:
    """An OOD set of the run's own dataset holds only classes the run never saw."""
    info, name, run_name = run.info, run.spec.data.name, run.ref.run_dir.name
    trained = trained_classes(run)
    if classes is None and trained is None:
        return  # the whole dataset, checked against --in by the caller
    try:
        named = class_indices(info, classes) if classes else tuple(range(info.num_classes))
    except SpecError as exc:
        raise UsageError(f"--out {text}: {exc.message}", exc.hint) from None
    seen = [k for k in named if trained is None or k in trained]
    if not seen:
        return
    what = f"holds class {class_name(info, seen[0])!r}, which" if classes else "holds the classes"
    held_out = [k for k in range(info.num_classes) if trained is not None and k not in trained]
    if held_out:
        raise UsageError(f"--out {text} {what} run {run_name} was trained on", f"name the held-out classes: ebmctl "
                         f"ood --in {name} --out {name}{CLASS_MARK}{CLASS_JOIN.join(class_name(info, k) for k in held_out)}")
    kept = ", ".join(f'"{class_name(info, k)}"' for k in range(info.num_classes) if k not in seen) or '"..."'
    preset = f" --preset {run.spec.preset}" if run.spec.preset else ""
    raise UsageError(f"--out {text} {what} run {run_name} was trained on (every class of {name})",
                     f"hold it out in training: ebmctl train{preset} --set 'data.classes=[{kept}]'")
