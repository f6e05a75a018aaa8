"""Specs: precedence, overrides, did-you-mean, every preset valid and documented."""

from __future__ import annotations

import pytest

from ebmctl.errors import SpecError
from ebmctl.specs import (
    METHOD_DEFAULTS,
    RunSpec,
    parse_literal,
    parse_override,
    preset_header,
    preset_names,
    preset_path,
    resolve_spec,
    spec_from_json,
    spec_to_json,
)

REQUIRED_KEYS = ["seed", "data.name", "data.root", "data.image_size", "data.verify_checksums", "train.steps",
                 "train.batch_size", "sampler.steps", "sampler.step_size", "sampler.noise"]


@pytest.mark.parametrize("key", REQUIRED_KEYS)
def test_every_training_spec_has_the_shared_keys(key):
    spec = resolve_spec("quickstart")
    node = spec
    for part in key.split("."):
        assert part in type(node).model_fields, key
        node = getattr(node, part)


def test_verify_checksums_defaults_to_true():
    assert RunSpec().data.verify_checksums is True


def test_precedence_defaults_method_preset_set_extra():
    spec = resolve_spec("icd-cifar10")
    assert spec.sampler.steps == METHOD_DEFAULTS["icd"]["sampler"]["steps"] == 40  # method defaults
    assert spec.data.name == "cifar10"  # preset
    spec = resolve_spec("icd-cifar10", ["train.steps=7", "sampler.noise=0.01"], {"train.steps": 9})
    assert spec.train.steps == 9 and spec.sampler.noise == 0.01


@pytest.mark.parametrize(
    ("text", "value"),
    [("3", 3), ("0.5", 0.5), ("true", True), ("[0.1, 1.0]", [0.1, 1.0]), ('"a b"', "a b"), ("cifar10", "cifar10"),
     ("/data/x", "/data/x"), ("1e-3", 0.001)],
)
def test_override_values_are_toml_literals(text, value):
    assert parse_literal(text) == value


def test_override_is_never_evaluated():
    path, value = parse_override("data.name=os.system")
    assert path == "data.name" and value == "os.system"
    with pytest.raises(SpecError):  # not a TOML literal and not a bare word: refused, never run
        parse_override("data.name=__import__('os').system('false')")


@pytest.mark.parametrize(
    ("override", "needle"),
    [("train.stpes=3", "did you mean train.steps"), ("samplr.steps=3", "did you mean sampler"),
     ("net.widht=3", "did you mean net.width"), ("method.kll=false", "did you mean method.kl")],
)
def test_unknown_keys_say_did_you_mean(override, needle):
    with pytest.raises(SpecError) as err:
        resolve_spec("quickstart", [override])
    assert needle in str(err.value)
    assert err.value.exit_code == 2


def test_bad_values_are_one_line_errors():
    with pytest.raises(SpecError) as err:
        resolve_spec("quickstart", ["train.steps=-3"])
    assert "train.steps" in err.value.message and "\n" not in err.value.message
    with pytest.raises(SpecError):
        resolve_spec("quickstart", ["sampler.step_size=nan"])
    with pytest.raises(SpecError):
        resolve_spec("quickstart", ["method=nope"])
    with pytest.raises(SpecError):
        resolve_spec("quickstart", ["noequals"])


def test_unknown_preset_suggests_a_name():
    with pytest.raises(SpecError) as err:
        resolve_spec("quickstrat")
    assert "quickstart" in err.value.hint


def test_none_unsets_optional_values():
    spec = resolve_spec("icd-cifar10", ["train.ema=none", "train.grad_clip=none"])
    assert spec.train.ema is None and spec.train.grad_clip is None


def test_switching_method_replaces_method_section_and_defaults():
    spec = resolve_spec("icd-cifar10", ["method=igebm"])
    assert spec.method.name == "igebm" and spec.buffer.policy == "fifo" and spec.sampler.grad_clamp == 0.01


def test_preset_from_path(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('# mine\nmethod = "igebm"\n[train]\nsteps = 3\n')
    spec = resolve_spec(str(path))
    assert spec.method.name == "igebm" and spec.train.steps == 3 and spec.preset == "mine"


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_is_valid_and_documented(name):
    spec = resolve_spec(name)
    assert spec.preset == name
    header = preset_header(preset_path(name))
    assert len(header) >= 2, f"{name} needs a header saying what it reproduces"
    assert any("ebmctl train --preset " + name in line for line in header), f"{name}'s header must show its command"
    assert spec_from_json(spec_to_json(spec)) == spec


def test_required_presets_exist():
    for name in ("quickstart", "igebm-cifar10", "icd-cifar10", "icd-shapes", "igebm-toy", "icd-toy"):
        assert name in preset_names()


def test_ablation_rows_resolve():
    base = ["method.kl=false", "method.entropy=false", "buffer.augment=false", "net.multiscale=false"]
    spec = resolve_spec("icd-cifar10", base)
    assert not spec.method.kl and not spec.method.entropy and not spec.buffer.augment and not spec.net.multiscale
