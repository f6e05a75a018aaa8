"""Hat EBM's released code (point0bar1/hat-ebm, TensorFlow 2 / Keras): ``utils.save_model`` writes
``checkpoints/ebm_<step>.ckpt`` and, in synthesis, ``checkpoints/gen_<step>.ckpt`` with Keras ``save_weights``
(tensor bundles keyed ``<layer path>/.ATTRIBUTES/VARIABLE_VALUE``). Refinement stands on a pretrained SN-GAN
generator, ``pretrained_nets/<data>_refine/gen.ckpt``, which it never saves again. The EBM is ``EBMSNGAN32/64/128``
(a stem block ``conv_1``, blocks ``block2..``, mean pooling, ``lin_N`` without bias), the generator
``GenSNGAN32/64/128`` (``lin_1``, blocks ``block2..`` with batch norms ``bn_1``/``bn_2``, ``bn_N``, ``conv_N``).

Keras stores convs HWIO and dense kernels (in, out); torch wants OIHW and (out, in). Keras' batch norm adds
epsilon 1e-3 to the variance, torch's 1e-5, so the stored variance gains the difference and the generator computes
the same images. The released synthesis trainer always runs its generator with ``training=False``, so its batch-norm
statistics stay at their initial 0 and 1; a pretrained SN-GAN generator's are trained. That tells the two modes
apart."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from ebmctl.errors import CheckpointError, UsageError
from ebmctl.released.base import Imported, step_in_name
from ebmctl.released.tf_bundle import Bundle, read_bundle

SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
KERAS_EPS, TORCH_EPS = 1e-3, 1e-5
SIZES = {5: 32, 6: 64, 7: 128}  # lin_N of the EBM, conv_N / bn_N of the generator -> image side
PRESETS = {("synthesis", 32): "hat-synth-cifar10", ("refine", 32): "hat-refine-cifar10",
           ("synthesis", 64): "hat-synth-celeba64", ("refine", 64): "hat-refine-celeba64",
           ("synthesis", 128): "hat-synth-imagenet128"}
BN = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var"}
HINT = ("pass the EBM's checkpoints/ebm_<step>.ckpt as PATH, and its generator with --generator (refinement: "
        "pretrained_nets/<data>_refine/gen.ckpt; synthesis: gen_<step>.ckpt, found beside the EBM's by itself)")


def convert(bundle: Bundle, source: Path, preset: str | None, generator: Path | None = None) -> Imported:
    ebm = _layers(bundle, source)
    if "lin_1/kernel" in ebm:
        raise UsageError(f"{source} is a generator's checkpoint, not the EBM's", HINT)
    head = next((int(m[1]) for k in ebm if (m := re.fullmatch(r"lin_(\d)/kernel", k))), None)
    if head not in SIZES or "conv_1/conv_1/kernel" not in ebm:
        raise CheckpointError(f"{source} has no conv_1 stem or lin_5/6/7 head: it is not a checkpoint of the released "
                              "EBMSNGAN32/64/128", HINT)
    gen_bundle = read_bundle(_generator_path(source, generator))
    gen = _layers(gen_bundle, gen_bundle.prefix)
    if "block1/conv_1/kernel" in gen:
        raise CheckpointError(f"{gen_bundle.prefix} is the retrofit experiment's autoencoder decoder (GenDecoder32), "
                              "whose layout ebmctl's generators do not reproduce",
                              "import a synthesis or refinement run (an SN-GAN generator)")
    if "lin_1/kernel" not in gen:
        raise CheckpointError(f"{gen_bundle.prefix} has no lin_1: it is not a checkpoint of the released "
                              "GenSNGAN32/64/128", HINT)
    size, channels = SIZES[head], ebm["conv_1/conv_1/kernel"].shape[2]
    ndf = ebm[f"lin_{head}/kernel"].shape[0]
    nz, ngf = gen["lin_1/kernel"].shape[0], gen["lin_1/kernel"].shape[1] // 16  # a 4x4 start
    stats = {k: v for k, v in gen.items() if k.endswith(("moving_mean", "moving_variance"))}
    synthesis = bool(stats) and all(torch.all(v == (1.0 if k.endswith("variance") else 0.0))
                                    for k, v in stats.items())
    mode = "synthesis" if synthesis else "refine"
    if preset is None and (mode, size) not in PRESETS:
        raise UsageError(f"ebmctl has no {mode} preset at {size} px for {source.name}",
                         f"pass the data's preset, e.g. --preset {PRESETS['synthesis', size]} (the mode comes from "
                         "the file)")
    overrides = ["net.name=hat", f"net.ndf={ndf}", "net.pooling=mean", "net.bias=false", "net.block_hidden=out",
                 f"method.mode={mode}", "hat.generator_net.kind=sngan", f"hat.generator_net.nz={nz}",
                 f"hat.generator_net.ngf={ngf}", f"hat.generator_net.out_scale={2.0 if synthesis else 1.0}"]
    overrides.append("hat.generator=none")  # the generator's weights are in the run; run.json names its file
    weights = {f"model.{k}": v for k, v in _ebm_keys(ebm, head, source).items()}
    weights |= {f"generator.model.{k}": v for k, v in _generator_keys(gen, gen_bundle.prefix).items()}
    step = step_in_name(source, r"ebm_(\d+)\.ckpt")
    kind = "synthesis (its batch-norm statistics never left 0 and 1)" if synthesis else \
        "refinement (a generator with trained batch-norm statistics)"
    return Imported(
        preset or PRESETS[mode, size], overrides, weights, step=step,
        companions=gen_bundle.files,
        used=[f"the EBM ({len(ebm)} tensors: {size} px, {channels} channels, width {ndf})",
              f"the generator {gen_bundle.prefix.name} ({len(gen)} tensors: latent {nz}, width {ngf}), read as "
              f"{kind}; output scale {2.0 if synthesis else 1.0} (not in the file: the released configs' for that "
              "mode)",
              "batch-norm variances plus 1e-3 - 1e-5 (Keras' epsilon against torch's)"],
        dropped=[f"{name} of the EBM's and the generator's files (Keras' description of the layer graph; the "
                 "weights are read by name)" for name in sorted({e.split(" (")[0]
                                                                 for e in bundle.skipped + gen_bundle.skipped})]
        + ["ebm_optim_<step>.npz, persistent_<step>.npy (separate files, not read: an imported run is used, "
           "not resumed)"],
    )


def _generator_path(source: Path, generator: Path | None) -> Path:
    if generator is not None:
        return generator
    found = re.fullmatch(r"ebm_(\d+)\.ckpt", source.name)
    beside = source.with_name(f"gen_{found[1]}.ckpt") if found else None
    if beside is None or not beside.with_name(beside.name + ".index").is_file():
        raise UsageError(f"a Hat EBM needs its generator, and no gen_<step>.ckpt lies beside {source}", HINT)
    return beside


def _layers(bundle: Bundle, source: Path) -> dict[str, torch.Tensor]:
    """The bundle's variables by layer path (``block2/conv_1/kernel``)."""
    out = {}
    for key, value in bundle.tensors.items():
        if not key.endswith(SUFFIX):
            raise CheckpointError(f"{source} holds {key}, which Keras' save_weights does not write", HINT)
        out[key[: -len(SUFFIX)]] = value
    return out


def _torch(key: str, value: torch.Tensor) -> tuple[str, torch.Tensor]:
    """A Keras variable's torch name and layout."""
    layer, _, leaf = key.rpartition(".")
    if leaf == "kernel":
        value = value.permute(3, 2, 0, 1) if value.dim() == 4 else value.t()
        return f"{layer}.weight", value.contiguous().float()
    if leaf in BN:
        if leaf == "moving_variance":
            value = value + (KERAS_EPS - TORCH_EPS)
        return f"{layer}.{BN[leaf]}", value.float()
    return key, value.float()


def _renamed(tensors: dict[str, torch.Tensor], rules: list[tuple[str, Any]], source: Path) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in tensors.items():
        new = next((f(m) for pattern, f in rules if (m := re.fullmatch(pattern, key))), None)
        if new is None:
            raise CheckpointError(f"{source} holds {key}{SUFFIX}, which the released architecture does not have", HINT)
        name, tensor = _torch(new, value)
        out[name] = tensor
        if name.endswith(".weight") and key.endswith("/gamma"):
            out[name.replace(".weight", ".num_batches_tracked")] = torch.tensor(0)
    return out


def _ebm_keys(ebm: dict[str, torch.Tensor], head: int, source: Path) -> dict[str, torch.Tensor]:
    return _renamed(ebm, [
        (r"conv_1/(conv_[12]|sc)/(kernel|bias)", lambda m: f"blocks.0.{_conv(m[1])}.{m[2]}"),
        (r"block(\d)/(conv_[12]|sc)/(kernel|bias)", lambda m: f"blocks.{int(m[1]) - 1}.{_conv(m[2])}.{m[3]}"),
        (rf"lin_{head}/kernel", lambda m: "linear.kernel"),
    ], source)


def _generator_keys(gen: dict[str, torch.Tensor], source: Path) -> dict[str, torch.Tensor]:
    return _renamed(gen, [
        (r"lin_1/(kernel|bias)", lambda m: f"linear.{m[1]}"),
        (r"block(\d)/bn_([12])/(\w+)", lambda m: f"blocks.{int(m[1]) - 2}.bn{m[2]}.{m[3]}"),
        (r"block(\d)/(conv_[12]|sc)/(kernel|bias)", lambda m: f"blocks.{int(m[1]) - 2}.{_conv(m[2])}.{m[3]}"),
        (r"bn_[567]/(\w+)", lambda m: f"bn.{m[1]}"),
        (r"conv_[567]/(kernel|bias)", lambda m: f"conv_out.{m[1]}"),
    ], source)


def _conv(name: str) -> str:
    return {"conv_1": "conv1", "conv_2": "conv2", "sc": "shortcut"}[name]
