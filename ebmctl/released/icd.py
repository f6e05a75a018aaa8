"""ICD's released code (yilundu/improved_contrastive_divergence): every ``save_interval`` iterations ``train.py``
writes ``model_<itr>.pth`` (and ``model_best.pth`` when its inception score improves), ``{'FLAGS',
'optimizer_state_dict', 'best_inception', 'model_state_dict_<i>', 'ema_model_state_dict_<i>'}`` for each of
``FLAGS.ensembles`` models. ``FLAGS`` is an ``easydict.EasyDict`` of every command-line flag (after a
``--resume_iter`` restart it also holds bound methods, pickled as ``getattr(flags, 'keys')``), and
``best_inception`` a ``numpy.float64``. The requirements pin torch 1.4, which writes the legacy (non-zip) format;
torch's weights-only reader takes both. No replay buffer is saved.

The CIFAR-10 net is ``ResNetModel``: stems ``conv1``/``mid_conv1``/``small_conv1``, blocks ``res_<s><a|b>`` (with
``mid_``/``small_`` for the half- and quarter-resolution branches), ``self_attn`` after stage 2 (built even when
``--self_attn`` is off), heads ``energy_map``/``mid_energy_map``/``small_energy_map``, and two constant blur
filters (``downsample.filt``, ``avg_pool.filt``) that its forward pass never uses."""

from __future__ import annotations

import re
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ebmctl.errors import CheckpointError
from ebmctl.released.base import Imported, step_in_name
from ebmctl.released.reader import contents, state_dict

WHAT = "a checkpoint of yilundu/improved_contrastive_divergence's train.py ({'FLAGS', 'model_state_dict_0', ...})"
HINT = "pass a model_<itr>.pth or model_best.pth written by the released train.py, unchanged"


def _unused_bound_method(obj: Any, name: str) -> None:
    """Stands in for ``builtins.getattr`` in FLAGS of a restarted run: the flags' own methods, never needed."""
    return None


# FLAGS (an EasyDict, a dict subclass) comes back as a plain OrderedDict, the one dict subclass torch's reader
# fills; numpy's float64 as itself; bound methods become None, so no callable of the file's choosing is called.
GLOBALS: tuple[Any, ...] = (
    (OrderedDict, "easydict.EasyDict"),
    (np._core.multiarray.scalar, "numpy.core.multiarray.scalar"), np._core.multiarray.scalar,
    np.dtype, np.dtypes.Float64DType,
    (_unused_bound_method, "builtins.getattr"),
)
BRANCHES = {"": "branch_full", "mid_": "branch_half", "small_": "branch_quarter"}
BLOCK_PARTS = (("bn1.", "norm1."), ("bn2.", "norm2."), ("latent_map_2.", "film2."), ("latent_map.", "film1."),
               ("conv_downsample.", "down_conv."), ("conv1.", "conv1."), ("conv2.", "conv2."))
SPECTRAL = {"weight_orig": "parametrizations.weight.original", "weight_u": "parametrizations.weight.0._u",
            "weight_v": "parametrizations.weight.0._v"}
ATTENTION = {"query_conv": "query", "key_conv": "key", "value_conv": "value"}
CONSTANTS = ("downsample.filt", "avg_pool.filt")  # blur filters ResNetModel builds and never applies
CHANGES_THE_ENERGY = {"square_energy": "squares each scale's energy", "sigmoid": "passes each energy through a sigmoid",
                      "alias": "blur-pools inside its blocks"}
LABELS = 10  # ResNetModel's FiLM maps take CIFAR-10's one-hot labels


def convert(doc: Any, source: Path, preset: str | None) -> Imported:
    flags = _flags(doc, source)
    model = state_dict(doc, "model_state_dict_0", source, WHAT)
    ema = doc.get("ema_model_state_dict_0")
    _check(flags, model, source)
    self_attn, conditional = bool(flags.get("self_attn", True)), bool(flags.get("cond", False))
    width = model["conv1.weight"].shape[0]
    multiscale = "mid_conv1.weight" in model
    norm = "res_1a.bn1.weight" in model
    spectral = "res_1a.conv1.weight_orig" in model
    overrides = [f"net.width={width}", f"net.multiscale={str(multiscale).lower()}",
                 f"net.self_attn={str(self_attn).lower()}", f"net.norm={str(norm).lower()}",
                 f"net.spectral_norm={str(spectral).lower()}", f"net.label_maps={LABELS}"]
    if conditional:
        overrides.append("method.condition=class")
    weights = {f"model.{k}": v for k, v in _net_keys(model, self_attn, source).items()}
    if isinstance(ema, dict) and ema:
        weights |= {f"ema.{k}": v for k, v in _net_keys(ema, self_attn, source).items()}
    step = step_in_name(source, r"model_(\d+)\.pth")
    score = doc.get("best_inception")
    dropped = [f"{k} (a constant blur filter the released forward pass never applies)" for k in CONSTANTS
               if k in model]
    if not self_attn:
        dropped.append("self_attn.* (built by the released net but off in this run, --noself_attn)")
    dropped += [f"{k} ({why})" for k, why in (
        ("optimizer_state_dict", "Adam's state: an imported run is used, not resumed"),
        ("best_inception", f"the best inception score the release had measured before this save, {float(score):.3f}"
         if _number(score) else "the best inception score the release had measured before this save"))
        if k in doc]
    scales = "three scales (full, half, quarter)" if multiscale else "one scale"
    return Imported(
        preset or "icd-cifar10", overrides, weights, step=step,
        used=[f"the energy net{' and its EMA' if 'ema.branch_full.stem.weight' in weights else ''} ({len(model)} "
              f"tensors: width {width}, {scales}, self-attention {'on' if self_attn else 'off'}, "
              f"{'spectral norm' if spectral else 'weight-standardised convs'}"
              f"{', ' + ('conditional on the class' if conditional else 'unconditional')})",
              "FLAGS: self_attn and cond (width, scales, norm and spectral norm are read from the shapes; the rest "
              "are training settings)",
              f"the step, {step}, from the file name" if step else
              "no step (the file name carries none; model_best.pth is written at the best inception score)"],
        dropped=dropped,
    )


def _flags(doc: Any, source: Path) -> dict[str, Any]:
    """The run's flags as a plain dict (EasyDict's own method names, shadowed by its attributes, are avoided)."""
    flags = doc.get("FLAGS") if isinstance(doc, dict) else None
    if not isinstance(flags, dict):
        raise CheckpointError(f"{source} has no FLAGS (found: {contents(doc)}): it is not {WHAT}", HINT)
    return {k: v for k, v in dict.items(flags) if v is None or isinstance(v, (bool, int, float, str, list))}


def _check(flags: dict[str, Any], model: dict[str, torch.Tensor], source: Path) -> None:
    """Refuse what ebmctl's ``icd_resnet`` would compute differently, naming the flag or key."""
    dataset = flags.get("dataset", "cifar10")
    if dataset != "cifar10":
        raise CheckpointError(f"{source} is a {dataset} model; ebmctl imports the released CIFAR-10 ResNetModel "
                              "(icd_resnet, preset icd-cifar10)", "import a model trained with --dataset=cifar10")
    ensembles = int(flags.get("ensembles", 1) or 1)
    if ensembles > 1:
        raise CheckpointError(f"{source} holds an ensemble of {ensembles} models (--ensembles={ensembles}); "
                              "ebmctl's ICD has one energy net", "import a run trained with --ensembles=1, as "
                              "the README's CIFAR-10 command")
    for flag, why in CHANGES_THE_ENERGY.items():
        if flags.get(flag):
            raise CheckpointError(f"{source} was trained with --{flag}, which {why}; ebmctl's icd_resnet does not",
                                  f"import a run trained without --{flag}")
    if "conv1.weight" not in model:
        raise CheckpointError(f"{source} has no conv1.weight in model_state_dict_0: it is not {WHAT}", HINT)
    labels = model.get("res_1a.latent_map.weight")
    if labels is not None and labels.shape[1] != LABELS:
        raise CheckpointError(f"{source}'s res_1a.latent_map takes {labels.shape[1]} inputs: it was written by the "
                              "released code of before July 2021, whose blocks had no residual connection; "
                              "ebmctl's icd_resnet has it (as the code since September 2021)",
                              "import a checkpoint of the current released code")


def _net_keys(tensors: dict[str, torch.Tensor], self_attn: bool, source: Path) -> dict[str, torch.Tensor]:
    """The released ``ResNetModel`` keys as ebmctl's ``icd_resnet`` names them; constants and an unused
    attention block are left out; any other key is a one-line error."""
    out = {}
    for key, value in tensors.items():
        new = _net_key(key, self_attn)
        if new is None:
            if key in CONSTANTS or (key.startswith("self_attn.") and not self_attn):
                continue
            raise CheckpointError(f"{source} holds {key}, which the released ResNetModel does not have", HINT)
        out[new] = value.detach().to(torch.float32)
    return out


def _net_key(key: str, self_attn: bool) -> str | None:
    if m := re.fullmatch(r"(mid_|small_)?(conv1|energy_map)\.(weight|bias)", key):
        return f"{BRANCHES[m[1] or '']}.{'stem' if m[2] == 'conv1' else 'head'}.{m[3]}"
    if m := re.fullmatch(r"(mid_|small_)?res_(\d)([ab])\.(.+)", key):
        index = 2 * (int(m[2]) - 1) + (m[3] == "b")
        part = next(((frm, to) for frm, to in BLOCK_PARTS if m[4].startswith(frm)), None)
        if part is None:
            return None
        rest = m[4][len(part[0]):]
        if part[1] in ("conv1.", "conv2.") and rest in SPECTRAL:
            rest = SPECTRAL[rest]
        return f"{BRANCHES[m[1] or '']}.blocks.{index}.{part[1]}{rest}"
    if self_attn and (m := re.fullmatch(r"self_attn\.(?:(query_conv|key_conv|value_conv)\.(weight|bias)|gamma)", key)):
        return "branch_full.attn." + (f"{ATTENTION[m[1]]}.{m[2]}" if m[1] else "gamma")
    return None


def _number(value: Any) -> bool:
    return isinstance(value, (int, float, np.floating)) and not isinstance(value, bool)
