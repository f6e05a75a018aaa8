"""Fuzzing the checkpoint loaders: truncated, corrupted, garbled and foreign files, through the CLI and the Python
loaders. Every bad input must give one ``error: ... (hint: ...)`` line, exit 1 or 2, no traceback, and leave the
runs directory as it was; the Python loaders raise EbmctlError subclasses and nothing else."""

from __future__ import annotations

import json
import math
import pickle
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import torch
from fuzz_outcome import assert_one_line_failure, runs_tree, tidy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from ebmctl.checkpoints import META_KEY, load_tensors, read_meta
from ebmctl.cli.main import main_entry
from ebmctl.errors import EbmctlError
from ebmctl.runs import MODEL_CKPT, STATE_CKPT, RunRef
from ebmctl.services.runtime.loading import load_run

INPUTS: Counter[str] = Counter()  # generated inputs fed through, by category
MIN_INPUTS = 500


def fuzz(n: int) -> settings:
    """``n`` reproducible examples (derandomized), no deadline; capsys is shared by the examples of a test."""
    return settings(max_examples=n, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.data_too_large])


TRAIN = {  # tiny runs, one per method family (and two shapes of one net)
    "toy": ("igebm-toy", ["train.batch_size=8", "sampler.steps=1", "buffer.size=16", "net.hidden=8"]),
    "qs4": ("quickstart", ["train.batch_size=4", "sampler.steps=1", "buffer.size=8", "net.width=4",
                           "method.kl_chains=2", "method.entropy_min_buffer=4", "method.entropy_refs=2"]),
    "qs6": ("quickstart", ["train.batch_size=4", "sampler.steps=1", "buffer.size=8", "net.width=6",
                           "method.kl_chains=2", "method.entropy_min_buffer=4", "method.entropy_refs=2"]),
    "cebm": ("cebm-digits", ["train.batch_size=4", "sampler.steps=1", "buffer.size=8", "net.channels=[4,4,4,4]"]),
    "sngan": ("sngan-shapes", ["net.ngf=16", "net.ndf=16", "net.nz=8", "train.batch_size=4", "method.n_dis=1"]),
}
HAT = ("hat-refine-shapes", ["net.ndf=16", "train.batch_size=4", "sampler.steps=1", "sample.steps=1"])

COMMANDS = {  # cheap invocations of every command that loads a model checkpoint
    "sample": ["sample", "--n", "2", "--steps", "1"],
    "ood": ["ood", "--in", "shapes32", "--out", "textures", "--n", "2"],
    "probe": ["probe", "--dataset", "digits", "--shots", "1", "--seeds", "1", "--knn", "0", "--train-n", "20",
              "--test-n", "10"],
    "refine": ["refine", "--n", "2", "--steps", "1", "--no-fid"],
}


class Trap:
    """Pickles to a call of ``open(marker, "w")``: unpickling it leaves the marker file behind."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.marker, "w"))


class Bank:
    """The trained runs and their original checkpoint bytes (model, state, and generator and sample files)."""

    def __init__(self, root: Path, runs: Path, dirs: dict[str, Path], model: dict[str, bytes],
                 state: dict[str, bytes], extra: dict[str, bytes]) -> None:
        self.root, self.runs, self.dirs = root, runs, dirs
        self.model, self.state, self.extra = model, state, extra

    def __repr__(self) -> str:
        return f"Bank({self.root})"

    @property
    def loose(self) -> Path:
        return self.runs / "loose"

    @property
    def marker(self) -> Path:
        return self.root / "unpickled"


def _train(runs: Path, preset: str, sets: list[str]) -> Path:
    argv = ["--runs-dir", str(runs), "--device", "cpu", "--json", "-q", "train", "--preset", preset,
            "--set", "train.steps=1", "--set", "train.log_every=1"]
    for item in sets:
        argv += ["--set", item]
    code = main_entry(argv)
    assert code == 0, argv
    return max((p for p in runs.iterdir() if p.name.startswith(preset)), key=lambda p: p.stat().st_mtime_ns)


@pytest.fixture(scope="module")
def bank(tmp_path_factory) -> Bank:
    root = tmp_path_factory.mktemp("fuzz-ckpt")
    runs = root / "runs"
    dirs = {}
    for name, (preset, sets) in TRAIN.items():
        dirs[name] = _train(runs, preset, sets)
    dirs["hat"] = _train(runs, HAT[0], [*HAT[1], f"hat.generator={dirs['sngan']}"])
    model = {k: (d / MODEL_CKPT).read_bytes() for k, d in dirs.items()}
    state = {k: (d / STATE_CKPT).read_bytes() for k, d in dirs.items()}
    assert main_entry(["--runs-dir", str(runs), "--device", "cpu", "-q", "sample", "--run", str(dirs["qs4"]),
                       "--n", "2", "--steps", "1", "--out", "sampled"]) == 0
    out = dirs["qs4"] / "sampled"
    extra = {"samples": (out / "samples.safetensors").read_bytes(),
             "generator": (dirs["sngan"] / "checkpoints" / "generator.safetensors").read_bytes()}
    (runs / "loose").mkdir()
    return Bank(root, runs, dirs, model, state, extra)


# ------------------------------------------------------------------------------------------------ checks


def run_cli(capsys: Any, bank: Bank, argv: list[str], *, expect: str, what: str) -> None:
    """Run ``ebmctl argv`` in-process and check the outcome: ``expect`` is "error" (a bad input: a one-line error)
    or "any" (an input that may still be readable: success, or a one-line error)."""
    capsys.readouterr()
    before = runs_tree(bank.runs)
    code = main_entry(["--runs-dir", str(bank.runs), "--device", "cpu", "-q", *argv])
    out, err = capsys.readouterr()
    assert not bank.marker.exists(), f"{what}: a pickle was unpickled"
    if code == 0 and expect == "any":
        tidy(bank.runs, before)
        return
    context = f"{what}: {argv} -> exit {code}\nstderr: {err!r}"
    assert_one_line_failure(code, out, err, context, argv)
    after = runs_tree(bank.runs)
    assert after == before, f"{context}\nchanged: {sorted(set(after.items()) ^ set(before.items()))[:6]}"


def check_loaders(bank: Bank, path: Path, *, expect: str, what: str, run_dir: Path | None = None) -> None:
    """The Python loaders on ``path``: EbmctlError or success, and load_run fails on a bad input."""
    loaders = {
        "load_tensors": load_tensors,
        "read_meta": read_meta,
        "load_run": lambda p: load_run(RunRef(run_dir or p.parent, p), torch.device("cpu")),
    }
    for name, loader in loaders.items():
        try:
            result = loader(path)
        except EbmctlError as exc:
            assert "\n" not in exc.message and exc.hint, f"{what}: {name}: {exc!r}"
            continue
        except Exception as exc:
            pytest.fail(f"{what}: {name} raised {type(exc).__name__}: {exc}")
        if name == "read_meta":
            assert isinstance(result, dict), f"{what}: read_meta gave {type(result).__name__}"
        if name == "load_run":
            assert expect == "any", f"{what}: load_run accepted a bad checkpoint"
    assert not bank.marker.exists(), f"{what}: a pickle was unpickled"


def _command(draw: Any) -> list[str]:
    return list(COMMANDS[draw(st.sampled_from(sorted(COMMANDS)))])


def feed(capsys: Any, bank: Bank, victim: str, blob: bytes, *, expect: str, what: str, category: str,
         command: list[str], as_file: bool, which: str = "model") -> None:
    """Put ``blob`` in place of a run's checkpoint (or as a loose file) and feed it to the CLI and the loaders."""
    INPUTS[category] += 1
    if as_file:
        path = bank.loose / "bad.safetensors"
        path.write_bytes(blob)
        try:
            check_loaders(bank, path, expect=expect, what=what)
            run_cli(capsys, bank, [*command, "--run", str(path)], expect=expect, what=what)
        finally:
            path.unlink()
        return
    run_dir = bank.dirs[victim]
    path = run_dir / (MODEL_CKPT if which == "model" else STATE_CKPT)
    original = path.read_bytes()
    path.write_bytes(blob)
    try:
        if which == "model":
            check_loaders(bank, path, expect=expect, what=what, run_dir=run_dir)
            run_cli(capsys, bank, [*command, "--run", str(run_dir)], expect=expect, what=what)
        else:
            run_cli(capsys, bank, ["train", "--resume", str(run_dir)], expect=expect, what=what)
    finally:
        path.write_bytes(original)


def header_size(blob: bytes) -> int:
    return int.from_bytes(blob[:8], "little")


def raw_file(header: Any, body: bytes = b"") -> bytes:
    text = json.dumps(header).encode()
    return len(text).to_bytes(8, "little") + text + body


VICTIMS = st.sampled_from(["toy", "qs4", "qs6", "cebm", "sngan", "hat"])


# ------------------------------------------------------------------------------------------- byte damage


@fuzz(70)
@given(data=st.data())
def test_truncated_checkpoints(bank, capsys, data):
    victim = data.draw(VICTIMS)
    which = data.draw(st.sampled_from(["model", "model", "state"]))
    blob = (bank.model if which == "model" else bank.state)[victim]
    cut = data.draw(st.one_of(st.integers(0, 8 + header_size(blob)), st.integers(0, len(blob) - 1)))
    command = _command(data.draw)
    feed(capsys, bank, victim, blob[:cut], expect="error", what=f"{which} of {victim} cut at {cut}",
         category="truncated checkpoint", command=command, as_file=data.draw(st.booleans()), which=which)


@fuzz(90)
@given(data=st.data())
def test_flipped_bytes(bank, capsys, data):
    victim = data.draw(VICTIMS)
    blob = bytearray(bank.model[victim])
    n = header_size(blob)
    region = data.draw(st.sampled_from(["length", "header", "header", "data"]))
    span = {"length": (0, 7), "header": (8, 7 + n), "data": (8 + n, len(blob) - 1)}[region]
    flips = data.draw(st.lists(st.tuples(st.integers(*span), st.integers(1, 255)), min_size=1, max_size=4,
                               unique_by=lambda flip: flip[0]))
    for pos, mask in flips:
        blob[pos] ^= mask
    # A flip in the length or the JSON structure breaks the file; one inside a string or a number of the header,
    # or in the tensor data, may leave a readable (if different) checkpoint.
    expect = "error" if region == "length" else "any"
    feed(capsys, bank, victim, bytes(blob), expect=expect, what=f"{victim} {region} flips {flips}",
         category="flipped bytes", command=_command(data.draw), as_file=data.draw(st.booleans()))


@fuzz(25)
@given(data=st.data())
def test_absurd_header_lengths(bank, capsys, data):
    victim = data.draw(VICTIMS)
    blob = bank.model[victim]
    n = header_size(blob)
    bad = data.draw(st.one_of(st.integers(len(blob), 2**64 - 1), st.sampled_from([0, 1, 2**63, 2**64 - 1]),
                              st.integers(max(0, n - 40), n + 40).filter(lambda v: v != n)))
    expect = "error"
    feed(capsys, bank, victim, bad.to_bytes(8, "little") + blob[8:], expect=expect, what=f"{victim} length {bad}",
         category="bad header length", command=_command(data.draw), as_file=data.draw(st.booleans()))


# ------------------------------------------------------------------------------------------ bad metadata

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


def _meta_of(blob: bytes) -> dict[str, Any]:
    n = header_size(blob)
    return json.loads(json.loads(blob[8 : 8 + n])["__metadata__"][META_KEY])


def _paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


def _set(doc: Any, path: tuple, value: Any, *, delete: bool = False) -> None:
    for key in path[:-1]:
        doc = doc[key]
    if delete:
        del doc[path[-1]]
    else:
        doc[path[-1]] = value


# Edits that always make a model checkpoint unreadable.
BROKEN_META = [
    ("kind", "state"), ("kind", None), ("kind", 3), ("spec", None), ("spec", []), ("spec", "quickstart"),
    ("spec", 7), ("spec", {}), ("data", None), ("data", []), ("data", "shapes32"), ("data", {}),
    (("data", "shape"), ["3", "32", "32"]), (("data", "shape"), []), (("data", "shape"), [0, 0, 0]),
    (("data", "shape"), [-3, 32, 32]), (("data", "shape"), "3x32x32"), (("data", "shape"), None),
    (("data", "shape"), [3.5, 32, 32]), (("data", "shape"), [True, 32, 32]), (("data", "shape"), [[3], 32, 32]),
    (("data", "shape"), [10**30, 32, 32]), (("data", "name"), None), (("data", "name"), ["x"]),
    (("data", "num_classes"), "ten"), (("data", "num_classes"), -4), (("data", "num_classes"), [1]),
    (("data", "class_names"), 5), (("data", "attribute_names"), {"a": 1}), ("step", "abc"), ("step", [1]),
    ("step", {"a": 1}), ("step", -5), ("step", float("nan")), (("spec", "method"), None),
    (("spec", "method"), {"name": "nope"}), (("spec", "net"), "small_conv"), (("spec", "data"), 5),
    (("spec", "seed"), "x"), (("spec", "method", "name"), "simclr"), (("spec", "net", "name"), "mlp"),
]


@fuzz(60)
@given(data=st.data())
def test_broken_metadata(bank, capsys, data):
    victim = data.draw(VICTIMS)
    blob = bank.model[victim]
    tensors = st_load(blob)
    meta = _meta_of(blob)
    edit = data.draw(st.sampled_from(
        [("drop", k) for k in ("kind", "spec", "data")] + [("set", e) for e in BROKEN_META]
        + [("text", t) for t in ("", "{", "not json", "[1, 2]", "3", "null", '"model"', "true", "NaN", "{}")]
        + [("nometa", None), ("otherkey", None)]))
    if edit[0] == "drop":
        del meta[edit[1]]
        metadata = {META_KEY: json.dumps(meta)}
    elif edit[0] == "set":
        key, value = edit[1]
        path = key if isinstance(key, tuple) else (key,)
        _set(meta, path, value)
        metadata = {META_KEY: json.dumps(meta)}
    elif edit[0] == "text":
        metadata = {META_KEY: edit[1]}
    elif edit[0] == "nometa":
        metadata = None
    else:
        metadata = {"other": json.dumps(meta)}
    feed(capsys, bank, victim, st_save(tensors, metadata=metadata), expect="error", what=f"{victim} meta {edit}",
         category="broken metadata", command=_command(data.draw), as_file=data.draw(st.booleans()))


@fuzz(60)
@given(data=st.data())
def test_random_metadata_values(bank, capsys, data):
    """Any value of the metadata replaced by random JSON: the checkpoint may still load, or fail in one line."""
    victim = data.draw(VICTIMS)
    blob = bank.model[victim]
    meta = _meta_of(blob)
    path = data.draw(st.sampled_from(_paths(meta)))
    if data.draw(st.booleans()) and isinstance(path[-1], str):
        _set(meta, path, None, delete=True)
        what = f"{victim} meta without {path}"
    else:
        value = data.draw(JSON)
        _set(meta, path, value)
        what = f"{victim} meta {path} = {value!r}"
    text = json.dumps(meta, allow_nan=True)
    feed(capsys, bank, victim, st_save(st_load(blob), metadata={META_KEY: text}), expect="any", what=what,
         category="random metadata", command=_command(data.draw), as_file=data.draw(st.booleans()))


@fuzz(30)
@given(data=st.data())
def test_raw_headers(bank, capsys, data):
    """Headers safetensors' own writer never produces: not a JSON object, metadata of the wrong type, bad offsets."""
    victim = data.draw(VICTIMS)
    blob = bank.model[victim]
    n = header_size(blob)
    header = json.loads(blob[8 : 8 + n])
    body = blob[8 + n :]
    name = data.draw(st.sampled_from(sorted(k for k in header if k != "__metadata__")))
    choice = data.draw(st.sampled_from(["list", "number", "meta-list", "meta-number", "meta-nested", "offsets",
                                        "dtype", "shape", "no-tensor-fields", "random"]))
    if choice == "list":
        raw = raw_file([header], body)
    elif choice == "number":
        raw = raw_file(12, body)
    elif choice == "meta-list":
        raw = raw_file({**header, "__metadata__": [1, 2]}, body)
    elif choice == "meta-number":
        raw = raw_file({**header, "__metadata__": {META_KEY: 5}}, body)
    elif choice == "meta-nested":
        raw = raw_file({**header, "__metadata__": {META_KEY: _meta_of(blob)}}, body)
    elif choice == "offsets":
        lo, hi = data.draw(st.tuples(st.integers(-5, 2**40), st.integers(-5, 2**40)))
        raw = raw_file({**header, name: {**header[name], "data_offsets": [lo, hi]}}, body)
    elif choice == "dtype":
        raw = raw_file({**header, name: {**header[name], "dtype": data.draw(st.sampled_from(["F99", "", "U8", 3]))}},
                       body)
    elif choice == "shape":
        shape = data.draw(st.lists(st.integers(-3, 2**33), max_size=5))
        raw = raw_file({**header, name: {**header[name], "shape": shape}}, body)
    elif choice == "no-tensor-fields":
        raw = raw_file({**header, name: {}}, body)
    else:
        raw = raw_file(data.draw(JSON), body)
    feed(capsys, bank, victim, raw, expect="error", what=f"{victim} raw header {choice}", category="raw header",
         command=_command(data.draw), as_file=data.draw(st.booleans()))


# -------------------------------------------------------------------------------------------- bad tensors


@fuzz(70)
@given(data=st.data())
def test_wrong_tensors(bank, capsys, data):
    victim = data.draw(VICTIMS)
    blob = bank.model[victim]
    tensors = st_load(blob)
    meta_text = json.dumps(_meta_of(blob))
    key = data.draw(st.sampled_from(sorted(tensors)))
    t = tensors[key]
    edit = data.draw(st.sampled_from(["drop", "shape", "dtype", "nan", "inf", "extra", "rename", "empty", "junk"]))
    expect = "error"
    if edit == "drop":
        del tensors[key]
    elif edit == "shape":
        shape = data.draw(st.lists(st.integers(0, 5), max_size=4).filter(lambda s: tuple(s) != tuple(t.shape)))
        tensors[key] = torch.zeros(shape, dtype=t.dtype)
    elif edit == "dtype":
        dtype = data.draw(st.sampled_from([torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.int32,
                                           torch.uint8, torch.bool, torch.float32]).filter(lambda d: d != t.dtype))
        tensors[key] = t.to(dtype)
    elif edit in ("nan", "inf"):
        if not t.is_floating_point() or t.numel() == 0:
            return
        t = t.clone()
        t.view(-1)[data.draw(st.integers(0, t.numel() - 1))] = math.nan if edit == "nan" else -math.inf
        tensors[key] = t
    elif edit == "extra":
        tensors[f"{key.split('.')[0]}.bogus_weight"] = torch.zeros(3)
    elif edit == "rename":
        tensors[key + "_renamed"] = tensors.pop(key)
    elif edit == "empty":
        tensors = {}
    else:
        tensors["junk"] = torch.zeros(2)  # a key no part of the method reads
        expect = "any"
    feed(capsys, bank, victim, st_save(tensors, metadata={META_KEY: meta_text}), expect=expect,
         what=f"{victim} tensors: {edit} {key}", category="wrong tensors", command=_command(data.draw),
         as_file=data.draw(st.booleans()))


# ------------------------------------------------------------------------------------- foreign files

FOREIGN_PAIRS = [(a, b) for a in ["toy", "qs4", "qs6", "cebm", "sngan", "hat"]
                 for b in ["toy", "qs4", "qs6", "cebm", "sngan", "hat"] if a != b]


@pytest.mark.parametrize(("source", "victim"), FOREIGN_PAIRS)
def test_model_of_another_run_copied_over(bank, capsys, source, victim):
    """A run's model.safetensors replaced by another run's (another method, net or shape)."""
    command = COMMANDS["sample"] if victim != "hat" else COMMANDS["refine"]
    feed(capsys, bank, victim, bank.model[source], expect="error", what=f"{source} model in {victim}",
         category="foreign checkpoint", command=command, as_file=False)


@pytest.mark.parametrize("victim", ["toy", "qs4", "qs6", "cebm", "sngan", "hat"])
@pytest.mark.parametrize("kind", ["state", "samples", "generator"])
def test_other_kinds_of_file_as_the_model(bank, capsys, kind, victim):
    blob = bank.state[victim] if kind == "state" else bank.extra[kind]
    for as_file in (True, False):
        feed(capsys, bank, victim, blob, expect="error", what=f"{kind} file as the {victim} model",
             category="foreign checkpoint", command=COMMANDS["sample"], as_file=as_file)


@pytest.mark.parametrize("victim", ["toy", "qs4", "cebm", "sngan"])
def test_state_file_as_run(bank, capsys, victim):
    """--run pointing at a run's state.safetensors inside its checkpoints folder."""
    INPUTS["foreign checkpoint"] += 1
    run_cli(capsys, bank, [*COMMANDS["sample"], "--run", str(bank.dirs[victim] / STATE_CKPT)], expect="error",
            what=f"state of {victim} as --run")


@pytest.mark.parametrize("victim", ["toy", "qs4", "cebm", "sngan"])
@pytest.mark.parametrize("kind", ["model", "empty", "no-method", "no-rng", "no-tensors", "step", "other-run"])
def test_readable_foreign_state_on_resume(bank, capsys, victim, kind):
    """A readable safetensors file that is not this run's training state, as its state.safetensors."""
    run_dir = bank.dirs[victim]
    tensors, meta = load_tensors(run_dir / STATE_CKPT)

    def state(t: dict, m: dict) -> bytes:
        return st_save(t, metadata={META_KEY: json.dumps(m)})

    blob = {
        "model": lambda: (run_dir / MODEL_CKPT).read_bytes(),
        "empty": lambda: state({}, {"kind": "state"}),
        "no-method": lambda: state(tensors, {k: v for k, v in meta.items() if k != "method"}),
        "no-rng": lambda: state(tensors, {k: v for k, v in meta.items() if k != "rng"}),
        "no-tensors": lambda: state({}, meta),
        "step": lambda: state(tensors, {**meta, "step": -3}),
        "other-run": lambda: (bank.dirs["toy" if victim != "toy" else "sngan"] / STATE_CKPT).read_bytes(),
    }[kind]()
    feed(capsys, bank, victim, blob, expect="error", what=f"{kind} as the {victim} state", category="foreign checkpoint",
         command=[], as_file=False, which="state")


# -------------------------------------------------------------------------------------- not safetensors


def _not_safetensors(bank: Bank) -> dict[str, bytes]:
    from io import BytesIO

    from ebmctl.services.runtime.pictures import image_grid_png

    buf = BytesIO()
    torch.save({"model.weight": torch.zeros(3), "trap": Trap(bank.marker)}, buf)
    return {
        "empty": b"",
        "png": image_grid_png(torch.rand(4, 3, 8, 8)),
        "text": b"model weights go here\n",
        "json": json.dumps({"kind": "model"}).encode(),
        "pickle": pickle.dumps(Trap(bank.marker)),
        "pickle-protocol-2": pickle.dumps({"model.weight": [0.0, 1.0], "trap": Trap(bank.marker)}, protocol=2),
        "torch-save": buf.getvalue(),
        "zeros": bytes(64),
        "one-byte": b"\x00",
        "eight-bytes": (0).to_bytes(8, "little"),
        "header-only": raw_file({}),
        "header-no-body": raw_file({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}),
    }


@pytest.mark.parametrize("name", ["empty", "png", "text", "json", "pickle", "pickle-protocol-2", "torch-save",
                                  "zeros", "one-byte", "eight-bytes", "header-only", "header-no-body"])
def test_files_that_are_not_safetensors(bank, capsys, name):
    blob = _not_safetensors(bank)[name]
    for command in ("sample", "probe"):
        for as_file in (True, False):
            feed(capsys, bank, "qs4", blob, expect="error", what=f"{name} file", category="not safetensors",
                 command=COMMANDS[command], as_file=as_file)
    if name != "header-only":  # a readable, empty safetensors file: see test_state_file_as_run
        feed(capsys, bank, "qs4", blob, expect="error", what=f"{name} as state", category="not safetensors",
             command=[], as_file=False, which="state")


@fuzz(30)
@given(data=st.data(), blob=st.binary(max_size=300))
def test_random_bytes(bank, capsys, data, blob):
    feed(capsys, bank, data.draw(VICTIMS), blob, expect="error", what=f"random bytes {blob[:20]!r}",
         category="not safetensors", command=_command(data.draw), as_file=data.draw(st.booleans()))


def test_directories_and_missing_files(bank, capsys):
    """A directory named *.safetensors as --run, and a run whose checkpoint is a directory or missing."""
    folder = bank.loose / "folder.safetensors"
    folder.mkdir()
    try:
        INPUTS["not safetensors"] += 1
        check_loaders(bank, folder, expect="error", what="directory")
        run_cli(capsys, bank, [*COMMANDS["sample"], "--run", str(folder)], expect="error", what="directory")
    finally:
        folder.rmdir()
    for victim in ("qs4", "sngan"):
        run_dir = bank.dirs[victim]
        for which in (MODEL_CKPT, STATE_CKPT):
            path = run_dir / which
            original = path.read_bytes()
            for replace_with in ("directory", "missing"):
                INPUTS["not safetensors"] += 1
                path.unlink()
                if replace_with == "directory":
                    path.mkdir()
                try:
                    if which == MODEL_CKPT:
                        check_loaders(bank, path, expect="error", what=f"{which} {replace_with}", run_dir=run_dir)
                        run_cli(capsys, bank, [*COMMANDS["sample"], "--run", str(run_dir)], expect="error",
                                what=f"{victim} {which} {replace_with}")
                        continue
                    # The state file serves --init buffer, and resuming (which starts afresh without one).
                    run_cli(capsys, bank, [*COMMANDS["sample"], "--init", "buffer", "--run", str(run_dir)],
                            expect="error", what=f"{victim} {which} {replace_with}")
                    if replace_with == "directory":
                        run_cli(capsys, bank, ["train", "--resume", str(run_dir)], expect="error",
                                what=f"{victim} {which} {replace_with} on resume")
                finally:
                    if path.is_dir():
                        path.rmdir()
                    path.write_bytes(original)


# -------------------------------------------------------------------------------------- generator files


@fuzz(40)
@given(data=st.data())
def test_damaged_generator_files(bank, capsys, data):
    """A damaged or foreign file given to a Hat EBM as its generator (hat.generator=FILE) fails before any run
    directory is made."""
    blob = bank.extra["generator"]
    meta = json.loads(json.loads(blob[8 : 8 + header_size(blob)])["__metadata__"][META_KEY])
    tensors = st_load(blob)
    edit = data.draw(st.sampled_from(["cut", "arch", "shape", "kind", "drop", "reshape", "model", "state", "junk"]))
    if edit == "cut":
        bad = blob[: data.draw(st.integers(0, len(blob) - 1))]
    elif edit in ("arch", "shape", "kind"):
        meta[edit] = data.draw(JSON)
        bad = st_save(tensors, metadata={META_KEY: json.dumps(meta)})
    elif edit == "drop":
        del tensors[data.draw(st.sampled_from(sorted(tensors)))]
        bad = st_save(tensors, metadata={META_KEY: json.dumps(meta)})
    elif edit == "reshape":
        key = data.draw(st.sampled_from(sorted(k for k, v in tensors.items() if v.dim() > 0)))
        tensors[key] = torch.zeros(tensors[key].numel() + 1, dtype=tensors[key].dtype)
        bad = st_save(tensors, metadata={META_KEY: json.dumps(meta)})
    elif edit == "model":
        bad = bank.model[data.draw(st.sampled_from(["toy", "qs4", "cebm", "hat"]))]  # runs without a generator
    elif edit == "state":
        bad = bank.state["sngan"]
    else:
        bad = data.draw(st.binary(max_size=100))
    path = bank.loose / "generator.safetensors"
    path.write_bytes(bad)
    INPUTS["generator file"] += 1
    try:
        run_cli(capsys, bank, ["train", "--preset", HAT[0], *[a for s in HAT[1] for a in ("--set", s)],
                               "--set", "train.steps=1", "--set", f"hat.generator={path}"],
                expect="error", what=f"generator {edit}")
    finally:
        path.unlink()


# ------------------------------------------------------------------------------------------ resume state


@fuzz(40)
@given(data=st.data())
def test_damaged_state_on_resume(bank, capsys, data):
    """`train --resume` of a run whose state.safetensors is cut, has a bad length or garbage in its header. (Readable
    files with damaged metadata or tensors are left out: see test_state_file_as_run.)"""
    victim = data.draw(st.sampled_from(["toy", "qs4", "cebm", "sngan"]))
    blob = bytearray(bank.state[victim])
    choice = data.draw(st.sampled_from(["cut", "length", "header-bytes"]))
    if choice == "cut":
        bad = bytes(blob[: data.draw(st.integers(0, len(blob) - 1))])
    elif choice == "length":
        bad = data.draw(st.integers(len(blob), 2**64 - 1)).to_bytes(8, "little") + bytes(blob[8:])
    else:  # the header's opening brace or first quote replaced: no longer JSON
        pos = data.draw(st.sampled_from([8, 9]))
        blob[pos] = data.draw(st.sampled_from([0, 1, 10, 0x5D]))
        bad = bytes(blob)
    feed(capsys, bank, victim, bad, expect="error", what=f"{victim} state {choice}", category="damaged state",
         command=[], as_file=False, which="state")


def test_zzz_enough_inputs(request):
    """Runs last in this file (tests/data/test_fuzz_datasets.py counts the dataset inputs on its own)."""
    selected = {item.originalname for item in request.session.items if item.module is request.module}
    if selected != {name for name in globals() if name.startswith("test_")}:
        pytest.skip("only part of this file ran")
    total = sum(INPUTS.values())
    print(f"checkpoint inputs: {total} {dict(INPUTS)}")
    assert total >= MIN_INPUTS, dict(INPUTS)
