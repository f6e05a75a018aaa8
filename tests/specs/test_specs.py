"""Specs: precedence, overrides, did-you-mean, every preset valid and documented."""

from __future__ import annotations

import re

import pytest

from ebmctl.errors import SpecError
from ebmctl.recipes import RECIPES, RunSpec, resolve_spec, spec_from_json, spec_to_json
from ebmctl.specs import parse_literal, parse_override, preset_header, preset_names, preset_path

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
    assert spec.sampler.steps == RECIPES["icd"].defaults["sampler"]["steps"] == 40  # method defaults
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
def test_unknown_keys_saydid_you_mean(override, needle):
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


@pytest.mark.parametrize("name", ["cebmm-mnist", "cebmm-fmnist", "cebmm-cifar10", "cebmm-svhn", "cebmm-digits",
                                  "cebmm-mnist5k"])
def test_mixture_presets_learn_their_bias_but_the_measured_digits_one(name):
    spec = resolve_spec(name)
    assert spec.net.bias == "mixture"
    assert spec.net.learn_bias is (name != "cebmm-digits")
    assert not resolve_spec(name, ["net.learn_bias=false"]).net.learn_bias


@pytest.mark.parametrize("name", [n for n in preset_names() if n.startswith(("cebm-", "cebmm-"))])
def test_cebm_presets_learning_rate_ood_noise_and_ood_command(name):
    spec = resolve_spec(name)
    header = " ".join(preset_header(preset_path(name)))
    small = {"-mnist5k": 1e-3}  # sized for one CPU thread: the header says why
    expected = next((lr for end, lr in small.items() if name.endswith(end)), None)
    assert spec.train.lr == (expected or (1e-4 if name.endswith(("-mnist", "-digits")) else 5e-5))
    assert spec.method.ood_noise == (0.0 if name.endswith("-digits") else 0.03)
    assert "ood_noise" in header
    command = next((line for line in preset_header(preset_path(name)) if line.startswith("OOD:")), None)
    if command is not None:
        sets = command.split("--in ")[1].split()[0], command.split("--out ")[1].split()[0].split(",")
        assert sets[0] not in sets[1], f"{name}: OOD command scores its own set as out-of-distribution"


def test_igebm_uses_the_released_clipping_adam_except_where_a_preset_says():
    assert resolve_spec("igebm-cifar10").train.optimizer == "adam_clip"
    assert resolve_spec(None, ["method.name=igebm"]).train.optimizer == "adam_clip"
    for name in ("igebm-toy", "igebm-mnist-conv", "igebm-cifar10-conv"):
        spec = resolve_spec(name)
        assert spec.train.optimizer == "adam" and "plain Adam" in " ".join(preset_header(preset_path(name)))
    assert resolve_spec("quickstart").train.optimizer != "adam_clip"


@pytest.mark.parametrize(("name", "channels"), [("igebm-mnist-conv", (64, 64, 32, 32)),
                                                ("igebm-cifar10-conv", (64, 128, 256, 512))])
def test_cebm_papers_igebm_baseline_presets(name, channels):
    spec = resolve_spec(name)
    assert spec.method.name == "igebm" and spec.net.name == "conv_mlp"
    assert spec.net.channels == channels and spec.net.hidden == (128, 128) and spec.method.l2 == 0.1
    assert spec.sampler.grad_clamp is None and spec.sampler.pixel_clamp is None
    # CEBM's step x - 1.0 dE/dx + 0.0075 N in [-1, 1] is x - 0.25 dE/dx + 0.00375 N in [0, 1]
    assert spec.sampler.step_size == 0.25 and spec.sampler.noise == 0.00375 and spec.train.steps == 90_000


def _header_overrides(text: str) -> list[str]:
    """The ``--set`` overrides written in a piece of a preset header (single-quoted values unquoted)."""
    return [quoted or bare for quoted, bare in re.findall(r"--set\s+(?:'([^']*)'|(\S+))", text)]


def _header_block(name: str, start: str, stop: str | None = None) -> list[str]:
    lines = [line.lstrip("#").rstrip() for line in preset_header(preset_path(name))]
    first = next(i for i, line in enumerate(lines) if start in line)
    last = next((i for i, line in enumerate(lines) if stop and stop in line and i > first), len(lines))
    return lines[first:last]


def test_icd_cifar10_samples_with_the_released_pool_schedule():
    s = resolve_spec("icd-cifar10").sample
    assert (s.schedule, s.pool, s.pool_batch, s.pool_rounds, s.pool_plain_rounds, s.pool_plain_splits,
            s.aug_every, s.n) == ("pool", 1000, 128, 100, 30, 2, 10, 1000)
    for name in ("quickstart", "icd-shapes", "icd-toy"):
        assert resolve_spec(name).sample.schedule == "chains", name


def test_the_pool_schedule_needs_rounds_of_steps_and_room_to_fill():
    with pytest.raises(SpecError, match="aug_every"):
        resolve_spec("icd-cifar10", ["sample.aug_every=0"])
    with pytest.raises(SpecError, match="pool_rounds"):
        resolve_spec("icd-cifar10", ["sample.pool_rounds=7"])  # 8 rounds fill 1000 chains in batches of 128
    assert resolve_spec("icd-cifar10", ["sample.schedule=chains", "sample.aug_every=0"]).sample.aug_every == 0


def test_icd_cifar10_header_gives_the_paper_values_in_overrides():
    block = " ".join(_header_block("icd-cifar10", "Paper values", "Departures"))
    spec = resolve_spec("icd-cifar10", _header_overrides(block))
    assert spec.sampler.step_size == 500.0 and spec.augment.crop_scale == (0.02, 1.0) and spec.train.ema == 0.9999
    assert (spec.sample.schedule, spec.sample.aug_every, spec.sample.plain_steps) == ("chains", 20, 0)
    released = resolve_spec("icd-cifar10")
    assert released.sampler.step_size == 100.0 and released.augment.crop_scale == (0.08, 1.0)


def test_icd_cifar10_ablation_rows_run_without_the_guard():
    rows: list[str] = []
    for line in _header_block("icd-cifar10", "Table 2 ablation")[2:]:
        if line.strip().startswith("--set"):
            rows[-1] += " " + line
        else:
            rows.append(line)
    got = []
    for row in rows:
        spec = resolve_spec("icd-cifar10", _header_overrides(row))
        assert not spec.guard.enabled, row
        got.append((spec.method.kl, spec.method.entropy, spec.buffer.augment, spec.net.multiscale))
    assert got == [(False, False, False, False), (False, False, True, False), (False, False, True, True),
                   (True, False, True, True), (True, True, True, True)]


@pytest.mark.parametrize("name", preset_names())
def test_ablation_recipes_say_to_turn_the_guard_off(name):
    header = " ".join(preset_header(preset_path(name)))
    if "ablation" in header.lower() and "--set" in header:
        assert "guard.enabled=false" in header, f"{name}: its ablation recipes must run with the guard off"
