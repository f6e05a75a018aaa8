"""Nothing unsafe on load: no pickle is ever unpickled from a checkpoint or from ebmctl's own files.

A static scan of the package's source (its syntax trees, not text) and a run of train, sample and resume
with every unpickler replaced by one that fails.
"""

from __future__ import annotations

import _pickle
import ast
import json
import pickle
from pathlib import Path

import pytest

import ebmctl

PACKAGE = Path(ebmctl.__file__).parent
FORBIDDEN_MODULES = {"pickle", "cPickle", "_pickle", "cloudpickle", "dill", "shelve"}
# CIFAR-10/100's official "python version" batches are pickles. torchvision's classes would read them with
# pickle.load, so ebmctl never instantiates those classes (it reads only their file lists); one module reads the
# batches with an unpickler that builds nothing but arrays. It is the one module that may import pickle.
UNPICKLING_DATASET_CLASSES = {"CIFAR10", "CIFAR100"}
RESTRICTED_READER = PACKAGE / "data" / "real" / "cifar_files.py"


def _sources() -> list[Path]:
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 20 and RESTRICTED_READER in files
    return files


def _aliases(tree: ast.Module) -> dict[str, str]:
    """Local names bound by imports -> the dotted names they stand for (``np`` -> ``numpy``)."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                names[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                names[a.asname or a.name] = f"{node.module}.{a.name}"
    return names


def _dotted(node: ast.AST, aliases: dict[str, str]) -> str | None:
    """The dotted name an expression like ``np.load`` or ``torch.serialization.load`` refers to."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(aliases.get(node.id, node.id))
    return ".".join(reversed(parts))


def _keyword_is(call: ast.Call, name: str, value: object) -> bool:
    return any(k.arg == name and isinstance(k.value, ast.Constant) and k.value.value is value for k in call.keywords)


def _violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    aliases = _aliases(tree)
    where = path.relative_to(PACKAGE.parent) if path.is_relative_to(PACKAGE.parent) else path
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [f"{where}:{node.lineno}: import {a.name}" for a in node.names
                      if a.name.split(".")[0] in FORBIDDEN_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.module:
            root = node.module.split(".")[0]
            if root in FORBIDDEN_MODULES or (root == "joblib" and any(a.name == "load" for a in node.names)):
                found.append(f"{where}:{node.lineno}: from {node.module} import ...")
        elif isinstance(node, ast.Call):
            name = _dotted(node.func, aliases) or ""
            if name in ("torch.load", "torch.serialization.load") and not _keyword_is(node, "weights_only", True):
                found.append(f"{where}:{node.lineno}: {name} without weights_only=True")
            elif name in ("numpy.load", "np.load") and not _keyword_is(node, "allow_pickle", False):
                found.append(f"{where}:{node.lineno}: {name} without allow_pickle=False")
            elif name.endswith("read_pickle") or name in ("joblib.load", "marshal.load", "marshal.loads"):
                found.append(f"{where}:{node.lineno}: {name}")
    return found


def _cifar_instantiations(path: Path) -> list[str]:
    """Where a file calls torchvision's CIFAR classes (``tvd.CIFAR10(...)``), which would unpickle."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    aliases = _aliases(tree)
    calls = []
    for node in ast.walk(tree):
        name = _dotted(node.func, aliases) if isinstance(node, ast.Call) else None
        if name and name.startswith("torchvision") and name.split(".")[-1] in UNPICKLING_DATASET_CLASSES:
            calls.append(f"{path.name}:{node.lineno}")
    return calls


def test_the_package_never_unpickles():
    found = [v for path in _sources() if path != RESTRICTED_READER for v in _violations(path)]
    assert found == [], "\n".join(found)
    assert [c for path in _sources() for c in _cifar_instantiations(path)] == []


def test_the_scan_catches_what_it_forbids(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import pickle\nimport numpy as np\nimport torch\nfrom torch import load\nimport pandas as pd\n"
                   "np.load('a')\nnp.load('a', allow_pickle=True)\ntorch.load('a')\ntorch.load('a', weights_only=False)\n"
                   "load('a')\npd.read_pickle('a')\nfrom joblib import load as jl\n")
    good = tmp_path / "good.py"
    good.write_text("import numpy\nimport torch as t\nnumpy.load('a', allow_pickle=False)\n"
                    "t.load('a', map_location='cpu', weights_only=True)\n")
    assert len(_violations(bad)) == 8, _violations(bad)
    assert _violations(good) == []
    tv = tmp_path / "tv.py"
    tv.write_text("from torchvision import datasets as tvd\nfiles = tvd.CIFAR10.train_list\nds = tvd.CIFAR100('r')\n")
    assert _cifar_instantiations(tv) == ["tv.py:3"]


def test_the_cifar_reader_builds_only_arrays(tmp_path):
    """The restricted reader never calls pickle.load(s) and refuses a batch that names anything but arrays."""
    tree = ast.parse(RESTRICTED_READER.read_text(encoding="utf-8"))
    aliases = _aliases(tree)
    called = {_dotted(n.func, aliases) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    assert not called & {"pickle.load", "pickle.loads", "pickle.Unpickler"}
    from ebmctl.data.real.cifar_files import read_batch

    marker = tmp_path / "ran"

    class Trap:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    import numpy as np

    (tmp_path / "good").write_bytes(pickle.dumps({"data": np.arange(6, dtype=np.uint8), "labels": [1, 2]}, protocol=2))
    (tmp_path / "bad").write_bytes(pickle.dumps({"data": Trap()}, protocol=2))
    assert read_batch(tmp_path / "good")["labels"] == [1, 2]
    with pytest.raises(pickle.UnpicklingError, match="refused to build"):
        read_batch(tmp_path / "bad")
    assert not marker.exists()


# --------------------------------------------------------------------------------------------- at run time

SMALL = ["--set", "train.batch_size=8", "--set", "sampler.steps=3", "--set", "train.log_every=1",
         "--set", "train.checkpoint_every=2", "--set", "train.sample_every=100", "--set", "buffer.size=20",
         "--set", "method.kl_chains=4", "--set", "method.entropy_min_buffer=10", "--set", "method.entropy_refs=5"]


@pytest.fixture
def no_unpickling(monkeypatch):
    calls: list[str] = []

    def refuse(name):
        def unpickle(*args, **kwargs):
            calls.append(name)
            raise AssertionError(f"{name} called: ebmctl must never unpickle")
        return unpickle

    for module in (pickle, _pickle):
        for name in ("load", "loads", "Unpickler"):
            monkeypatch.setattr(module, name, refuse(f"{module.__name__}.{name}"))
    return calls


def test_train_sample_and_resume_never_unpickle(cli, no_unpickling):
    first = cli("--quiet", "--json", "train", "--preset", "quickstart", "--steps", "2", *SMALL)
    assert first.code == 0, first.err
    run = Path(json.loads(first.out)["run"])
    sampled = cli("--quiet", "--json", "sample", "--steps", "2", "--n", "4")
    assert sampled.code == 0, sampled.err
    resumed = cli("--quiet", "--json", "train", "--resume", str(run), "--steps", "4")
    assert resumed.code == 0, resumed.err
    again = cli("--quiet", "--json", "sample", "--run", run.name, "--init", "buffer", "--steps", "2", "--n", "4")
    assert again.code == 0, again.err
    assert json.loads(resumed.out)["step"] == 4
    assert no_unpickling == []
