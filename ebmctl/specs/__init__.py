"""Typed run specs, method by method agnostic: shared sections, nets, ``--set`` overrides, error wording and
preset files. A method's own section and defaults live in its recipe (:mod:`ebmctl.recipes`), which also
assembles the whole :class:`~ebmctl.recipes.RunSpec`."""

from ebmctl.specs.explain import check_keys, did_you_mean, union_names, validated
from ebmctl.specs.nets import SHARED_NETS, GeneratorSpec, NetSection
from ebmctl.specs.overrides import deep_merge, layered, parse_literal, parse_override, set_path
from ebmctl.specs.preset_files import preset_header, preset_names, preset_path, presets_dir, read_preset
from ebmctl.specs.sections import (
    AugmentSpec,
    BufferSpec,
    DataSpec,
    EvalSpec,
    GuardSpec,
    SamplerSpec,
    SampleSpec,
    Section,
    TrainSpec,
)

__all__ = [
    "SHARED_NETS", "AugmentSpec", "BufferSpec", "DataSpec", "EvalSpec", "GeneratorSpec", "GuardSpec", "NetSection",
    "SampleSpec", "SamplerSpec", "Section", "TrainSpec", "check_keys", "deep_merge", "did_you_mean", "layered",
    "parse_literal", "parse_override", "preset_header", "preset_names", "preset_path", "presets_dir", "read_preset",
    "set_path", "union_names", "validated",
]
