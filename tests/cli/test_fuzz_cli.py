"""Fuzzing the command line: malformed and mistyped presets, ``--set`` items, option values, ``--run`` targets and
global options. Every input is bad by construction; each must end in one ``error: ... (hint: ...)`` line on
stderr, exit 1 or 2, no traceback, no "internal error", nothing on stdout, and leave the runs directory (which
holds one completed run) exactly as it was."""

from __future__ import annotations

import json
import math
import signal
import types
import typing
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest
from hints import assert_hint_works
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from ebmctl.cli.main import main_entry
from ebmctl.data.registry import dataset_names
from ebmctl.recipes import RunSpec, method_names, resolve_spec
from ebmctl.specs import preset_names, union_names

INPUTS: Counter[str] = Counter()  # generated inputs fed through, by category
MIN_INPUTS = 600
CATEGORIES = ("set_syntax", "set_unknown_key", "set_bad_value", "preset_file", "preset_tree", "option", "run_ref",
              "global")


def fuzz(n: int) -> settings:
    """``n`` reproducible examples (derandomized), no deadline; capsys is shared by the examples of a test."""
    return settings(max_examples=n, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.filter_too_much, HealthCheck.data_too_large])


# Presets on embedded data (a bad value must not hide behind a missing real dataset), one per method family.
EMBEDDED = ("quickstart", "igebm-toy", "icd-toy", "icd-shapes", "clel-shapes", "cebm-digits", "ebclr-shapes",
            "simclr-shapes", "sngan-shapes", "hat-synth-shapes", "ae-shapes")
# The completed run every command finds as `latest`: a tiny igebm run on 2D points.
TINY_RUN = ["train", "--preset", "igebm-toy", "--steps", "2", "--set", "train.batch_size=8", "--set", "sampler.steps=1",
            "--set", "buffer.size=16", "--set", "net.hidden=8", "--set", "sample.n=8", "--set", "sample.steps=2"]


@dataclass
class World:
    root: Path
    runs: Path
    run: Path  # the completed run
    scratch: Path  # preset files and --run targets, outside the runs directory


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    root = tmp_path_factory.mktemp("fuzz-cli")
    runs, scratch = root / "runs", root / "scratch"
    scratch.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EBMCTL_CACHE", str(root / "cache"))
        assert main_entry(["--runs-dir", str(runs), "--device", "cpu", "--quiet", *TINY_RUN]) == 0
    (run,) = list(runs.iterdir())
    (scratch / "empty-dir").mkdir()
    (scratch / "not-a-run").mkdir()
    (scratch / "not-a-run" / "notes.txt").write_text("hello\n")
    half = scratch / "half-run"  # spec.json and run.json, no checkpoint
    half.mkdir()
    (half / "spec.json").write_text((run / "spec.json").read_text())
    (half / "run.json").write_text((run / "run.json").read_text())
    (scratch / "garbage.txt").write_bytes(b"\x00\xffnot a run\n")
    (scratch / "garbage.json").write_text("{not json")
    (scratch / "dir.toml").mkdir()
    return World(root, runs, run, scratch)


@pytest.fixture(autouse=True)
def no_work(world, monkeypatch):
    """A fuzz input that got through would create a run or an output folder: make that an internal error at once
    (reported as a failure below) rather than training or sampling for real."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a bad input started real work")

    import ebmctl.services.compose
    import ebmctl.services.ood
    import ebmctl.services.probe
    import ebmctl.services.refine
    import ebmctl.services.sample
    import ebmctl.services.train

    monkeypatch.setattr(ebmctl.services.train, "new_run_dir", refuse)
    monkeypatch.setattr(ebmctl.services.train.Trainer, "run", refuse)
    for module in (ebmctl.services.sample, ebmctl.services.ood, ebmctl.services.probe, ebmctl.services.refine,
                   ebmctl.services.compose):
        monkeypatch.setattr(module, "command_dir", refuse)


TIME_LIMIT = 30.0  # seconds one bad input may take before it counts as having started real work


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise TimeoutError inside the command after ``seconds`` (the CLI reports it as an internal error)."""

    def expire(signum: int, frame: Any) -> None:
        raise TimeoutError(f"a bad input ran for {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Size and mtime of everything under ``root`` (not of ``root`` itself: `train` proves it writable with a
    temporary file before any work, which touches its mtime and nothing else)."""
    return {str(p.relative_to(root)): (p.stat().st_size if p.is_file() else -1, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))}


def check(world: World, capsys, category: str, argv: list[str], *, device: bool = True) -> str:
    """Run ``ebmctl ARGV`` in-process and assert the one-line failure; returns the error line."""
    INPUTS[category] += 1
    before = snapshot(world.runs)
    head = ["--runs-dir", str(world.runs)] + (["--device", "cpu"] if device else [])
    with time_limit(TIME_LIMIT):
        code = main_entry([*head, *argv])
    out, err = capsys.readouterr()
    shown = f"argv={argv!r}\nexit={code}\nstdout={out[-2000:]!r}\nstderr={err[-2000:]!r}"
    assert code in (1, 2), shown
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].strip(), shown
    line = lines[0]
    assert line.startswith("error: ") and "(hint: " in line, shown
    assert "internal error" not in line, shown
    assert "Traceback" not in out + err, shown
    assert out == "", shown
    assert snapshot(world.runs) == before, shown
    assert_hint_works(argv, line)
    return line


# ------------------------------------------------------------------------------------------ value rendering


def toml_value(value: Any) -> str:
    """A TOML literal for ``value`` (what --set parses and what preset files hold)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(type(value))


def toml_document(tree: dict[str, Any]) -> str:
    """Top-level keys first, then one [table] per section (nested tables inline)."""
    head = [f"{json.dumps(k)} = {toml_value(v)}" for k, v in tree.items() if not isinstance(v, dict)]
    body = []
    for key, value in tree.items():
        if isinstance(value, dict):
            body.append(f"[{json.dumps(key)}]")
            body += [f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()]
    return "\n".join(head + body) + "\n"


WORD = st.from_regex(r"[a-z][a-z0-9_]{0,11}", fullmatch=True)
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
# Strings pydantic reads as booleans, and "none" (None for optional fields): never a bad value by construction.
BOOLISH = {"true", "false", "yes", "no", "on", "off", "y", "n", "t", "f", "1", "0", "none"}
BAD_WORD = WORD.filter(lambda w: w not in BOOLISH)


# ------------------------------------------------------------------------------------ the spec's own fields


def _bounds(info: FieldInfo) -> tuple[float | None, bool, float | None, bool]:
    """(low, low_inclusive, high, high_inclusive) of a constrained number field."""
    low = high = None
    low_inc = high_inc = True
    for m in info.metadata:
        for attr, is_low, inclusive in (("ge", True, True), ("gt", True, False), ("le", False, True),
                                        ("lt", False, False)):
            bound = getattr(m, attr, None)
            if bound is not None:
                if is_low:
                    low, low_inc = bound, inclusive
                else:
                    high, high_inc = bound, inclusive
    return low, low_inc, high, high_inc


def _strip_optional(annotation: Any) -> Any:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        return args[0]
    return annotation


def spec_fields(preset: str) -> list[tuple[str, FieldInfo, Any]]:
    """(dotted path, field info, current value) of every leaf of the preset's resolved spec but the names."""
    out: list[tuple[str, FieldInfo, Any]] = []

    def walk(model: BaseModel, prefix: str) -> None:
        for name, info in type(model).model_fields.items():
            value = getattr(model, name)
            if isinstance(value, BaseModel):
                walk(value, f"{prefix}{name}.")
            elif name != "name":
                out.append((f"{prefix}{name}", info, value))

    walk(resolve_spec(preset), "")
    return out


FIELDS = {preset: spec_fields(preset) for preset in EMBEDDED}
FREE_TEXT = {"preset", "data.root", "eval.inception_weights", "hat.generator"}  # any string is a fair value
NAMES_OF = {"data.name": dataset_names(), "data.split": ["train", "test", "val", "valid", "validation", "all",
                                                        "extra", "unlabeled"]}


def bad_values(path: str, info: FieldInfo, current: Any) -> st.SearchStrategy[Any]:
    """Values the field must refuse: wrong types, out of range, NaN and infinities, absurd sizes."""
    kind = _strip_optional(info.annotation)
    low, low_inc, high, high_inc = _bounds(info)
    wrong_type = st.one_of(st.lists(st.integers(-3, 3), max_size=3), st.dictionaries(WORD, st.integers(), min_size=1,
                                                                                       max_size=2))
    if kind is bool:
        return st.one_of(BAD_WORD, st.integers().filter(lambda i: i not in (0, 1)), st.sampled_from([0.5, -1.0, 2.5]),
                         wrong_type)
    if kind is int:
        numbers = [1.5, -0.5, math.nan, math.inf, -math.inf, 10**12, 2**64, -(10**12)]
        if low is not None:
            numbers.append(int(low) - 1 if low_inc else int(low))
        if high is not None:
            numbers.append(int(high) + 1 if high_inc else int(high))
        return st.one_of(st.sampled_from(numbers), BAD_WORD, wrong_type)
    if kind is float:
        numbers = [math.nan, math.inf, -math.inf]
        if low is not None:
            numbers += [low - 1.0, low - 1e-3] + ([] if low_inc else [float(low)])
        if high is not None:
            numbers += [high + 1.0, high + 1e-3] + ([] if high_inc else [float(high)])
        strings = st.sampled_from(["nan", "NaN", "inf", "-inf", "infinity"])
        return st.one_of(st.sampled_from(numbers), strings, BAD_WORD, wrong_type)
    if typing.get_origin(kind) is Literal:
        choices = set(map(str, typing.get_args(kind)))
        return st.one_of(BAD_WORD.filter(lambda w: w not in choices), st.integers(-5, 5).filter(
            lambda i: str(i) not in choices), wrong_type)
    if typing.get_origin(kind) is tuple:
        args = typing.get_args(kind)
        variadic = len(args) == 2 and args[1] is Ellipsis
        elem = args[0]
        length = len(current) if variadic and current else (len(args) if not variadic else 3)
        poison = [math.nan, math.inf, -math.inf] + ([-1] if elem is int else []) + ([1.5] if elem is int else [])
        same_len = st.sampled_from(poison).map(lambda v: [v] * length)
        one_bad = st.tuples(st.integers(0, length - 1), st.sampled_from(poison)).map(
            lambda t: [t[1] if i == t[0] else (current[i] if current else 1) for i in range(length)])
        options = [same_len, one_bad, st.lists(BAD_WORD, min_size=1, max_size=3), st.dictionaries(
            WORD, st.integers(), min_size=1, max_size=2), BAD_WORD]
        if not variadic:
            options.append(st.integers(0, 6).filter(lambda n: n != length).map(lambda n: [0.5] * n))
        else:
            options.append(st.just([]))
        return st.one_of(*options)
    if typing.get_origin(kind) is list:  # a list of choices (train.loggers)
        (elem,) = typing.get_args(kind)
        choices = set(map(str, typing.get_args(elem)))
        unknown = BAD_WORD.filter(lambda w: w not in choices)
        return st.one_of(st.lists(unknown, min_size=1, max_size=3), unknown, st.integers(-5, 5),
                         st.dictionaries(WORD, st.integers(), min_size=1, max_size=2))
    if kind is str:
        numbers = st.sampled_from([3, -1.5, math.nan, True])
        if path in NAMES_OF:
            known = set(NAMES_OF[path])
            return st.one_of(BAD_WORD.filter(lambda w: w not in known), numbers, wrong_type)
        if path == "method.condition":  # no dataset has an attribute with a digit in its name
            return st.one_of(BAD_WORD.map(lambda w: f"{w}_9"), numbers, wrong_type)
        return st.one_of(numbers, wrong_type)
    raise AssertionError(f"no bad values for {path}: {kind}")


@st.composite
def bad_setting(draw) -> tuple[str, str, Any]:
    """A preset on embedded data, one of its fields and a value that field must refuse."""
    preset = draw(st.sampled_from(EMBEDDED))
    path, info, current = draw(st.sampled_from(FIELDS[preset]))
    if path == "method.condition" and preset in ("igebm-toy", "icd-toy"):
        assume(False)  # any condition is refused there (points have no labels), not a bad value
    value = draw(bad_values(path, info, current))
    if path in FREE_TEXT:
        assume(not isinstance(value, str))
    return preset, path, value


# ------------------------------------------------------------------------------------------ --set fuzzing


SET_SYNTAX = st.one_of(
    # no '=' at all
    st.text(st.sampled_from("abcxyz_.0123 ]["), min_size=1, max_size=15),
    # nothing before '='
    st.tuples(st.sampled_from(["", " ", "  "]), TEXT).map(lambda t: f"{t[0]}={t[1]}"),
    # empty, numeric or punctuated path components
    st.tuples(st.lists(st.sampled_from(["train", "", "lr", "1x", "a-b", "é.", "sampler", " ", "*", "a b", "🙂"]),
                       min_size=1, max_size=4), st.sampled_from(["1", "x", "nan"]))
    .map(lambda t: ".".join(t[0]) + "=" + t[1])
    .filter(lambda s: not all(p.isidentifier() for p in s.split("=")[0].strip().split("."))),
    # values that are not TOML literals
    st.tuples(st.sampled_from(["train.steps", "sampler.noise", "data.name", "train.betas", "seed"]),
              st.sampled_from(["[1,", "\"abc", "'x", "{a=", "[[", "]", "}", "[1 2]", "{a=1,,}", "\"", "", "\"\"\"",
                               "[nan,", "1 = 2", "[\"a\" \"b\"]"])).map(lambda t: f"{t[0]}={t[1]}"),
)


@fuzz(100)
@given(item=SET_SYNTAX, command=st.sampled_from(["train", "train --print-spec", "train --resume"]))
def test_malformed_set_items(world, capsys, item, command):
    check(world, capsys, "set_syntax", [*command.split(), "--set", item])


def _known(prefix: str, preset: str = "quickstart") -> set[str]:
    """The keys the section ``prefix`` of ``preset``'s spec accepts."""
    node: Any = resolve_spec(preset)
    for part in filter(None, prefix.split(".")):
        node = getattr(node, part)
    return set(type(node).model_fields)


SECTIONS = (*(name for name, value in resolve_spec("quickstart") if isinstance(value, BaseModel)), "hat.generator_net")


@st.composite
def unknown_key(draw) -> tuple[str, str]:
    """A preset and a key path its spec does not have."""
    preset = draw(st.sampled_from(EMBEDDED))
    kind = draw(st.sampled_from(["top", "section", "below_leaf", "unicode"]))
    if kind == "top":
        return preset, draw(WORD.filter(lambda w: w not in RunSpec.model_fields))
    if kind == "section":
        section = draw(st.sampled_from(SECTIONS))
        known = _known(section, preset)
        return preset, f"{section}.{draw(WORD.filter(lambda w: w not in known))}"
    if kind == "below_leaf":
        leaf = draw(st.sampled_from(["train.steps", "sampler.noise", "data.name", "seed", "train.lr", "net.name"]))
        return preset, f"{leaf}.{draw(WORD)}"
    key = draw(st.from_regex(r"[A-Za-z\u00c0-\u024f_]\w{0,8}(\.\w{1,8}){0,3}", fullmatch=True))
    assume(all(p.isidentifier() for p in key.split(".")) and key.split(".")[0] not in RunSpec.model_fields)
    return preset, key


@fuzz(80)
@given(target=unknown_key(), value=st.sampled_from(["1", "0.5", "true", "x", "[1, 2]"]))
def test_unknown_set_keys(world, capsys, target, value):
    preset, key = target
    check(world, capsys, "set_unknown_key", ["train", "--preset", preset, "--set", f"{key}={value}"])


@fuzz(220)
@given(setting=bad_setting())
def test_bad_set_values(world, capsys, setting):
    preset, path, value = setting
    line = check(world, capsys, "set_bad_value", ["train", "--preset", preset, "--set", f"{path}={toml_value(value)}"])
    if path not in ("data.name", "data.split", "method.condition"):  # those are checked against the data
        assert path.split(".")[-1] in line, line
    if f"bad value for {path}:" in line:  # a value the field refuses: the hint says what it takes
        assert f"(hint: {path} takes " in line, line


BAD_NAMES = st.one_of(BAD_WORD, TEXT.filter(lambda s: s.strip() == s and s != ""), st.integers(), st.lists(
    st.integers(), max_size=2), st.dictionaries(WORD, st.integers(), min_size=1, max_size=2))


@fuzz(40)
@given(section=st.sampled_from(["method", "net"]), name=BAD_NAMES, how=st.sampled_from(["short", "name"]))
def test_unknown_method_and_net_names(world, capsys, section, name, how):
    names = method_names() if section == "method" else union_names(RunSpec.model_fields["net"].annotation)
    assume(name not in names and not (isinstance(name, str) and name.lower() == "none"))
    path = section if how == "short" else f"{section}.name"
    check(world, capsys, "set_bad_value", ["train", "--set", f"{path}={toml_value(name)}"])


# --------------------------------------------------------------------------------------- preset files


TOML_FRAGMENTS = ["[train", "steps = ", "= 3", "a = [1,", "[[x]]", "[data]\n[data]", "x = 1\nx = 2", "\"unclosed",
                  "key = 'x", "[method", "1 = = 2", "[ ]", "a.b.c", "{", "steps = 1 2", "name = \"icd\" junk",
                  "[train]\nsteps = 1e", "lr = .5", "x = 0x", "t = 1979-13-45"]


@st.composite
def bad_preset_text(draw) -> bytes:
    kind = draw(st.sampled_from(["syntax", "binary", "blank", "utf16", "text"]))
    if kind == "syntax":
        parts = draw(st.lists(st.sampled_from(TOML_FRAGMENTS), min_size=1, max_size=4))
        return "\n".join(parts).encode()
    if kind == "binary":
        return draw(st.binary(min_size=1, max_size=64).filter(lambda b: b"\x00" in b or b[:1] >= b"\x80"))
    if kind == "blank":
        return draw(st.sampled_from([b"", b"\n", b"   \n\t\n", b"# only a comment\n", b"# a\n\n# b\n"]))
    if kind == "utf16":
        return "[train]\nsteps = 5\n".encode("utf-16")
    return draw(st.text(min_size=1, max_size=40).filter(lambda s: "=" not in s and "[" not in s)).encode(
        "utf-8", "surrogatepass")


@fuzz(90)
@given(blob=bad_preset_text(), command=st.sampled_from(["train", "show"]), suffix=st.sampled_from([".toml", ".txt"]))
def test_malformed_preset_files(world, capsys, blob, command, suffix):
    path = world.scratch / f"bad{suffix}"
    path.write_bytes(blob)
    ref = str(path)
    argv = ["train", "--preset", ref] if command == "train" else ["presets", "show", ref]
    check(world, capsys, "preset_file", argv)


@st.composite
def bad_preset_tree(draw) -> dict[str, Any]:
    """A preset document that parses but is wrong: bad values, unknown keys and sections, wrong method names,
    huge numbers, tables where scalars belong."""
    kind = draw(st.sampled_from(["value", "unknown_key", "unknown_section", "method", "huge", "table", "scalar"]))
    if kind == "value":
        preset, path, value = draw(bad_setting())
        tree: dict[str, Any] = {}
        node = tree
        *sections, leaf = path.split(".")
        for part in sections:
            node = node.setdefault(part, {})
        node[leaf] = value
        if preset != "quickstart":
            method = resolve_spec(preset)
            tree.setdefault("method", {}).setdefault("name", method.method.name)
            tree.setdefault("net", {}).setdefault("name", method.net.name)
            tree.setdefault("data", {}).setdefault("name", method.data.name)
        return tree
    if kind == "unknown_key":
        section = draw(st.sampled_from(["train", "sampler", "buffer", "data", "sample", "eval", "augment"]))
        key = draw(WORD.filter(lambda w: w not in _known(section)))
        return {section: {key: draw(st.integers(0, 9))}}
    if kind == "unknown_section":
        return {draw(WORD.filter(lambda w: w not in RunSpec.model_fields)): {"steps": 1}}
    if kind == "method":
        name = draw(BAD_NAMES)
        assume(name not in method_names() and not (isinstance(name, str) and name.lower() == "none"))
        return draw(st.sampled_from([{"method": name}, {"method": {"name": name}}]))
    if kind == "huge":
        path = draw(st.sampled_from(["train.steps", "train.batch_size", "buffer.size", "sample.n", "sampler.steps",
                                     "seed", "data.image_size", "data.workers", "train.log_every"]))
        section, key = path.split(".") if "." in path else (None, path)
        value = draw(st.sampled_from([10**12, 2**63, 10**30, -(2**63)]))
        return {section: {key: value}} if section else {key: value}
    if kind == "table":
        path = draw(st.sampled_from(["train.steps", "sampler.noise", "data.name", "method.name", "net.name", "seed",
                                     "preset", "sampler.pixel_clamp", "train.betas"]))
        inner = {draw(WORD): draw(st.integers())}
        section, key = path.split(".") if "." in path else (None, path)
        return {section: {key: inner}} if section else {key: inner}
    section = draw(st.sampled_from(["train", "sampler", "buffer", "data", "sample", "eval", "augment", "hat"]))
    return {section: draw(st.one_of(st.integers(), BAD_WORD, st.lists(st.integers(), max_size=3)))}


@fuzz(110)
@given(tree=bad_preset_tree(), command=st.sampled_from(["train", "show", "print"]))
def test_mistyped_preset_files(world, capsys, tree, command):
    path = world.scratch / "mistyped.toml"
    path.write_text(toml_document(tree), encoding="utf-8")
    argv = {"train": ["train", "--preset", str(path)], "print": ["train", "--preset", str(path), "--print-spec"],
            "show": ["presets", "show", str(path)]}[command]
    check(world, capsys, "preset_tree", argv)


@fuzz(30)
@given(name=st.one_of(BAD_WORD, TEXT.filter(lambda s: s.strip() and "/" not in s and not s.startswith("-"))),
       command=st.sampled_from(["train", "show"]))
def test_unknown_preset_names(world, capsys, name, command):
    assume(name not in preset_names())
    argv = ["train", "--preset", name] if command == "train" else ["presets", "show", name]
    check(world, capsys, "preset_file", argv)


# ------------------------------------------------------------------------------------------- option values


NOT_INT = st.sampled_from(["abc", "1.5", "nan", "", "1e3", "0x10", "½", "1_000x"])
NOT_FLOAT = st.sampled_from(["abc", "", "1,5", "½", "0x1p"])
NAN_INF = st.sampled_from(["nan", "inf", "-inf", "NaN", "-nan", "+inf", "Infinity"])


def below(limit: int) -> st.SearchStrategy[str]:
    return st.one_of(st.integers(max_value=limit - 1).map(str), NOT_INT)


def negative_or_nan(strict: bool) -> st.SearchStrategy[str]:
    """Floats a non-negative (strict: positive) option must refuse."""
    numbers = st.floats(max_value=0.0 if strict else -1e-6, allow_nan=False, allow_infinity=False)
    return st.one_of(numbers.map(repr), NAN_INF, NOT_FLOAT)


def absurd(limit: int) -> st.SearchStrategy[str]:
    return st.integers(min_value=limit + 1, max_value=10**30).map(str)


DATASETS = set(dataset_names())
BAD_DATASET = st.one_of(BAD_WORD, TEXT.filter(lambda s: s.strip() == s and s and "," not in s)).filter(
    lambda s: s not in DATASETS)
UNKNOWN_OPTION = WORD.map(lambda w: f"--{w.replace('_', '-')}x")
NONE = st.just(None)  # the head alone is the bad command line
SEED_MAX = 2**31 - 1
OOD = ["ood", "--in", "shapes32", "--out", "textures"]
ATTRS = ["compose", "--attrs", "circle"]

KEY = "key"  # the error names the key of the --set item
VALUE = "value"  # the error names the value itself

# One bad option per command line, everything else valid; RUN stands for the completed run. The third item, where
# given, is what the error must name (KEY, VALUE, a word, or None for nothing in particular); else the option.
OPTIONS: dict[str, list[tuple[Any, ...]]] = {
    "train": [
        (["train", "--steps"], st.one_of(below(1), absurd(100_000_000)), "steps"),
        (["train", "--seed"], st.one_of(below(0), absurd(SEED_MAX)), "seed"),
        (["train", "--nproc"], below(1)),
        (["train", "--set", "train.steps=0", "--nproc"], st.integers(2, 10**9).map(str), "train.steps"),
        (["train", "--preset"], BAD_WORD.filter(lambda w: w not in preset_names()), "preset"),
        (["train", "--resume", "RUN", "--preset"], st.sampled_from(preset_names())),
        (["train"], BAD_WORD, VALUE),  # a run without --resume
        (["train", "--resume", "RUN", "--print-spec"], NONE),
        (["train", "--resume", "RUN", "--set"], st.sampled_from(["train.lr=1", "net.hidden=4", "method.l2=2", "seed=3",
                                                                 "data.name=rings", "sampler.steps=2"]), KEY),
        (["train", "--resume", "RUN", "--steps"], below(1)),
        (["train", "--resume", "RUN", "--set"], st.sampled_from(["train.steps=0", "train.steps=nan", "sample.n=0",
                                                                 "train.log_every=-1", "eval.judge_steps=inf"]), KEY),
        (["train", "--resume", "RUN", "--seed"], st.integers(0, 99).map(str), "seed"),
        (["train"], UNKNOWN_OPTION, VALUE),
    ],
    "sample": [
        (["sample", "--steps"], st.one_of(below(1), absurd(1_000_000))),
        (["sample", "--n"], st.one_of(below(1), absurd(1_000_000))),
        (["sample", "--batch-size"], below(1)),
        (["sample", "--seed"], st.one_of(below(0), absurd(SEED_MAX))),
        (["sample", "--init"], BAD_WORD.filter(lambda w: w not in ("noise", "buffer"))),
        (["sample", "--precision"], BAD_WORD.filter(lambda w: w not in ("fp32", "bf16"))),
        (["sample", "--step-size"], negative_or_nan(strict=True)),
        (["sample", "--noise"], negative_or_nan(strict=False)),
        (["sample", "--aug-every"], st.one_of(below(0), absurd(1_000_000))),
        (["sample", "--plain-steps"], st.one_of(below(0), absurd(1_000_000))),
        (["sample", "--beta"], negative_or_nan(strict=False)),
        (["sample", "--class"], BAD_WORD),
        (["sample", "--like"], st.one_of(BAD_WORD, BAD_DATASET.map(lambda s: f"{s}:3"), st.sampled_from(
            ["shapes32:-1", "shapes32:x", "shapes32:99999999", ":", "shapes32:"]))),
        (["sample"], UNKNOWN_OPTION, VALUE),
    ],
    "compose": [
        (["compose", "--attrs"], st.one_of(BAD_WORD, st.sampled_from([",", ",,", " , "]),
                                           TEXT.filter(lambda s: s.strip() and not s.startswith("-")))),
        (["compose", "--runs"], st.one_of(BAD_WORD, st.sampled_from([",", "-", "@", "-@", "x@y", "-,-"])), None),
        ([*ATTRS, "--op"], BAD_WORD.filter(lambda w: w not in ("and", "or"))),
        ([*ATTRS, "--n"], st.one_of(below(1), absurd(1_000_000))),
        ([*ATTRS, "--steps"], st.one_of(below(1), absurd(1_000_000))),
        ([*ATTRS, "--step-size"], negative_or_nan(strict=True)),
        ([*ATTRS, "--noise"], negative_or_nan(strict=False)),
        ([*ATTRS, "--beta"], negative_or_nan(strict=False)),
        ([*ATTRS, "--alpha"], negative_or_nan(strict=False)),
        ([*ATTRS, "--batch-size"], below(1)),
        ([*ATTRS, "--seed"], st.one_of(below(0), absurd(SEED_MAX))),
        (["compose", "--no-judge"], NONE, "--attrs"),  # neither --attrs nor --runs
    ],
    "ood": [
        (["ood", "--out", "textures", "--in"], BAD_DATASET),
        (["ood", "--in", "shapes32", "--out"], BAD_DATASET),
        (["ood", "--in", "shapes32", "--out"], BAD_DATASET.map(lambda s: f"textures,{s}")),
        ([*OOD, "--score"], BAD_WORD.filter(lambda w: w not in ("energy", "grad_norm", "joint", "latent_nn")),
         "score"),
        ([*OOD, "--n"], below(1)),
        ([*OOD, "--batch-size"], below(1)),
        ([*OOD, "--beta"], negative_or_nan(strict=False)),
        ([*OOD, "--split"], BAD_WORD.filter(lambda w: w not in ("train", "test"))),
        (["ood", "--in", "shapes32"], NONE, "--out"),
        (["ood", "--out", "textures", "--in", ""], NONE, "--in"),
    ],
    "probe": [
        (["probe", "--dataset"], BAD_DATASET),
        (["probe", "--dataset", "digits", "--transfer"], BAD_DATASET),
        (["probe", "--shots"], st.one_of(BAD_WORD.filter(lambda w: w not in ("full", "all")), st.sampled_from(
            ["0", "-1", "1,,x", ",", "1.5", "10,-3"]))),
        (["probe", "--seeds"], below(1)),
        (["probe", "--knn"], below(0)),
        (["probe", "--train-n"], below(1)),
        (["probe", "--test-n"], below(1)),
        (["probe", "--batch-size"], below(1)),
        (["probe", "--protocol"], BAD_WORD.filter(lambda w: w not in ("paper", "standard", "cebm", "ebclr"))),
    ],
    "refine": [
        (["refine", "--n"], st.one_of(below(1), absurd(1_000_000))),
        (["refine", "--steps"], st.one_of(below(1), absurd(1_000_000))),
        (["refine", "--seed"], st.one_of(below(0), absurd(SEED_MAX))),
        (["refine", "--batch-size"], below(1)),
        (["refine", "--chains"], st.one_of(below(1), st.integers(65, 10**6).map(str))),
        (["refine", "--snapshots"], st.one_of(below(2), st.integers(65, 10**6).map(str))),
        (["refine"], UNKNOWN_OPTION, VALUE),
    ],
    "presets": [
        (["presets", "show"], BAD_WORD.filter(lambda w: w not in preset_names()), "preset"),
        (["presets", "show"], NONE, None),
        (["presets", "list"], BAD_WORD, VALUE),
        (["presets"], BAD_WORD.filter(lambda w: w not in ("list", "show")), VALUE),
        (["presets", "show", "quickstart"], UNKNOWN_OPTION, VALUE),
    ],
}
OPTION_CASES = [(command, i) for command, cases in OPTIONS.items() for i in range(len(cases))]


@pytest.mark.parametrize("case", OPTION_CASES, ids=[f"{c}-{i}" for c, i in OPTION_CASES])
@fuzz(6)
@given(data=st.data())
def test_bad_option_values(world, capsys, data, case):
    command, i = case
    head, values, *named = OPTIONS[command][i]
    value = data.draw(values)
    argv = [str(world.run) if token == "RUN" else token for token in head] + ([] if value is None else [value])
    if command in ("sample", "refine", "probe", "ood"):
        argv += ["--run", str(world.run)]
    line = check(world, capsys, "option", argv)
    needle = named[0] if named else head[-1]
    if needle == KEY:
        needle = value.split("=")[0]
    elif needle == VALUE:
        needle = value
    if needle is not None:
        assert needle.lower() in line.lower(), (argv, line)


@fuzz(40)
@given(command=st.sampled_from(["train", "sample", "compose", "ood", "probe", "refine", "presets", "trian", "smaple"]),
       option=st.one_of(UNKNOWN_OPTION, WORD.map(lambda w: f"-{w[0]}").filter(
           lambda o: o not in ("-p", "-s", "-r", "-d", "-h", "-q"))))
def test_unknown_options_and_commands(world, capsys, command, option):
    check(world, capsys, "option", [command, option])


# ---------------------------------------------------------------------------------------------- --run targets


RUN_COMMANDS = [["sample"], ["ood", "--in", "shapes32", "--out", "textures"], ["probe"], ["refine"],
                ["compose", "--attrs", "circle"], ["train", "--resume"]]


@fuzz(60)
@given(command=st.sampled_from(RUN_COMMANDS), target=st.one_of(
    st.sampled_from(["empty-dir", "not-a-run", "half-run", "garbage.txt", "garbage.json", "dir.toml", "missing",
                     "missing.safetensors", "not-a-run/notes.txt"]).map(lambda name: ("scratch", name)),
    BAD_WORD.map(lambda w: ("name", w)),
    st.sampled_from(["", "..", ".", "/", "~nobody-here/x"]).map(lambda w: ("raw", w))))
def test_bad_run_targets(world, capsys, command, target):
    where, name = target
    ref = str(world.scratch / name) if where == "scratch" else name
    if command == ["train", "--resume"]:
        assume(name != "half-run")  # a copy of a run's spec.json and run.json: resuming it is not a mistake
    if ref in ("", ".") and command != ["train", "--resume"]:
        ref = "missing-run"  # "" and "." fall back to `latest` or the working directory
    argv = [*command, ref] if command == ["train", "--resume"] else [*command, "--run", ref]
    check(world, capsys, "run_ref", argv)


# ------------------------------------------------------------------------------------------- global options


@fuzz(40)
@given(device=st.one_of(BAD_WORD, st.sampled_from(["cuda:x", "cuda:-1", "cuda:99", "cpu:x", "gpu", "", "CPU", "Auto",
                                                   "cuda:0:1", "mps:0", "meta", "vulkan"]),
                        TEXT.filter(lambda s: s.strip())),
       command=st.sampled_from([["sample"], ["ood", "--in", "shapes32", "--out", "textures"], ["refine"],
                                ["train", "--preset", "igebm-toy", "--steps", "1"]]))
def test_bad_devices(world, capsys, device, command):
    assume(not device.startswith(("cpu", "auto", "cuda")) or device in ("cpu:x", "cuda:x", "cuda:-1", "cuda:0:1"))
    check(world, capsys, "global", ["--device", device, *command], device=False)


@fuzz(20)
@given(threads=st.one_of(below(1), st.sampled_from(["x", "", "nan"])))
def test_bad_thread_counts(world, capsys, threads):
    check(world, capsys, "global", ["--threads", threads, "sample"])


@pytest.mark.parametrize("argv", [
    ["compose", "--runs", "~nobody-here/x", "--attrs", "circle"],
    ["compose", "--runs", "~nobody-here/x,~nobody-here/y", "--attrs", "circle"],
    ["sample", "--run", "~nobody-here/run"],
    ["sample", "--run", "~nobody-here/model.safetensors"],
    ["train", "--preset", "hat-refine-shapes", "--steps", "1", "--set", "hat.generator=~nobody-here/g.safetensors"],
    ["train", "--preset", "hat-refine-shapes", "--steps", "1", "--set", "hat.generator=~nobody-here"],
])
def test_unknown_home_directories_in_run_and_generator_paths(world, capsys, argv):
    check(world, capsys, "run_ref", argv)


@fuzz(30)
@given(option=st.sampled_from(["--runs-dir", "--data-root"]),
       path=st.sampled_from(["~nobody-here/runs", "~no-such-user", "~nobody-here"]),
       command=st.sampled_from([["sample"], ["train", "--preset", "icd-cifar10", "--steps", "1"],
                                ["ood", "--in", "cifar10", "--out", "svhn"], ["train", "--resume"]]))
def test_unknown_home_directories(world, capsys, option, path, command):
    if option == "--data-root":
        assume(command[0] == "train" and "--preset" in command)  # only a run on real data reads the data root
    head = ["--runs-dir", str(world.runs)] if option == "--data-root" else []
    INPUTS["global"] += 1
    before = snapshot(world.runs)
    code = main_entry([*head, "--device", "cpu", option, path, *command])
    out, err = capsys.readouterr()
    lines = err.splitlines()
    shown = f"{option} {path} {command}: exit {code}, {err!r}"
    assert code in (1, 2) and len(lines) == 1 and lines[0].startswith("error: ") and "(hint: " in lines[0], shown
    assert "internal error" not in err and "Traceback" not in out + err, shown
    assert snapshot(world.runs) == before, shown
    assert_hint_works([option, path, *command], lines[0])


# Image sides each preset's net cannot take, as measured by one-step runs (batch 2): strided convs shrink the
# images below a kernel, a net needs a minimum size, or the method takes only some sizes.
TOO_SMALL = {"quickstart": range(4, 8), "icd-shapes": range(4, 16), "clel-shapes": range(4, 8),
             "cebm-digits": range(4, 8), "sngan-shapes": range(4, 32), "hat-synth-shapes": range(4, 32),
             "ae-shapes": [4, 5, 6, 7, 9, 11, 13, 15, 17]}


@fuzz(30)
@given(case=st.sampled_from([(preset, side) for preset, sides in TOO_SMALL.items() for side in sides]))
def test_image_sizes_a_net_cannot_take(world, capsys, case):
    preset, side = case
    check(world, capsys, "set_bad_value", ["train", "--preset", preset, "--set", f"data.image_size={side}",
                                           "--set", "train.batch_size=2"])


def test_zzz_enough_inputs():
    """The generated inputs are counted as they run, not claimed."""
    if set(INPUTS) != set(CATEGORIES):
        pytest.skip(f"only part of the file ran ({sorted(INPUTS)}); the total is checked on a full run")
    print(f"command-line inputs: {sum(INPUTS.values())} {dict(INPUTS)}")
    assert sum(INPUTS.values()) >= MIN_INPUTS, dict(INPUTS)
