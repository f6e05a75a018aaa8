"""IGEBM's released code (openai/ebm_code_release, TensorFlow 1): ``train.py`` saves every global variable with
``tf.train.Saver`` as ``cachedir/<exp>/model_<itr>`` (``.index``, ``.data-00000-of-00001``, ``.meta``). The
published CIFAR-10 models are ``cifar10_large_model_uncond`` (``ResNet32Large``), ``cifar10_cond``
(``ResNet32``) and ``cifar10_wider_model_cond`` (``ResNet32Wider``); ebmctl's ``igebm_resnet`` is
``ResNet32Large``, unconditional or conditional.

Variables live under ``context_0/``: per conv ``cweight`` (HWIO) and its spectral-norm vector ``c_u``, per block
the input biases ``gb``, the scale ``g`` and (conditional) its offset ``cb``, the adaptive shortcut convs, the
attention convs and ``gamma`` (saved whether or not attention is on), and the head ``fc5``; plus variables the
forward pass never reads, Adam's slots ``<var>/Adam``, ``<var>/Adam_1`` and ``beta1_power``/``beta2_power``.

Spectral norm: TF does one power iteration from the stored ``u`` on every run (``v = l2n(u W^T)``,
``u' = l2n(v W)``, ``sigma = v W u'^T`` with W the kernel as (kh kw in, out)) and torch's parametrization none in
evaluation, so the importer takes that iteration once: ``_u = u'`` and ``_v = v`` in torch's (in, kh, kw) order.
The energies are then those of the released code's first evaluation after restoring the file."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from ebmctl.errors import CheckpointError
from ebmctl.released.base import Imported, step_in_name
from ebmctl.released.tf_bundle import Bundle

SCOPE = "context_0/"
BLOCKS = ["res_optim", *(f"res_{i}" for i in range(1, 9))]  # ebmctl's layers.0 .. layers.8
HINT = "pass a model_<itr> checkpoint of the released train.py (its prefix or .index file)"
OTHER_NETS = {"fc_dense/wweight": "ResNet32 (the published cifar10_cond)",
              "res_optim_res_adaptive/cweight": "ResNet32Wider (the published cifar10_wider_model_cond)"}


def convert(bundle: Bundle, source: Path, preset: str | None) -> Imported:
    variables = {k[len(SCOPE):]: v for k, v in bundle.tensors.items()
                 if k.startswith(SCOPE) and not k.endswith(("/Adam", "/Adam_1"))}
    for key, net in OTHER_NETS.items():
        if key in variables:
            raise CheckpointError(f"{source} is a {net}, whose layout ebmctl's igebm_resnet (the released "
                                  "ResNet32Large) does not reproduce", "import cifar10_large_model_uncond, or a "
                                  "ResNet32Large run of the released train.py (--large_model)")
    if any(k not in variables for k in ("c1_pre/cweight", "res_optim_res_c1/gb", "res_8_res_c1/cweight")):
        raise CheckpointError(f"{source} has no context_0/c1_pre or res_8 weights: it is not a checkpoint of the "
                              "released ResNet32Large", HINT)
    width = variables["c1_pre/cweight"].shape[-1]
    classes = variables["res_optim_res_c1/gb"].shape[0] if variables["res_optim_res_c1/gb"].dim() == 2 else 0
    gamma = variables.get("atten/gamma")
    # The attention variables are saved either way: Adam's slot for gamma exists only where attention was trained
    # (a file without Adam's state falls back on gamma, which stays at its initial 0 when unused).
    if any(k.endswith("/Adam") for k in bundle.tensors):
        attention = f"{SCOPE}atten/gamma/Adam" in bundle.tensors
    else:
        attention = gamma is not None and bool(torch.any(gamma != 0))
    net, read = _net(variables, attention, classes, source)
    weights = {f"model.{k}": v for k, v in net.items()}
    overrides = [f"net.width={width}", f"net.self_attn={str(attention).lower()}"]
    if classes:
        overrides.append("method.condition=class")
    step = step_in_name(source, r"model_(\d+)")
    slots = sum(1 for k in bundle.tensors if k.endswith(("/Adam", "/Adam_1")) or k in ("beta1_power", "beta2_power"))
    return Imported(
        preset or "igebm-cifar10", overrides, weights, step=step,
        used=[f"the energy net, ResNet32Large ({len(weights)} tensors: width {width}, attention "
              f"{'on' if attention else 'off'}, {f'conditional on {classes} classes' if classes else 'unconditional'})",
              "the spectral-norm vectors after the one power iteration the released code runs on every evaluation",
              f"the step, {step}, from the file name" if step else "no step (the file name carries none)"],
        dropped=[f"{slots} entries of Adam's state (Adam, Adam_1, beta1_power, beta2_power)"] * bool(slots) + [
                 f"{len(variables) - len(read)} variables the released forward pass never reads (unused biases "
                 f"and scales, and {'res_4, which attention replaces' if attention else 'the attention convs: off'})",
                 "the .meta graph (not read)"],
    )


def _net(variables: dict[str, torch.Tensor], attention: bool, classes: int,
         source: Path) -> tuple[dict[str, torch.Tensor], set[str]]:
    """ebmctl's ``igebm_resnet`` state_dict from the variables the released forward pass reads, and their names."""
    read: set[str] = set()

    def need(key: str) -> torch.Tensor:
        if key not in variables:
            raise CheckpointError(f"{source} has no {SCOPE}{key}", HINT)
        read.add(key)
        return variables[key].float()

    out: dict[str, torch.Tensor] = {}

    def conv(scope: str, target: str, kernel: str = "cweight", vector: str = "c_u") -> None:
        weight, u, v = _spectral(need(f"{scope}/{kernel}"), need(f"{scope}/{vector}"))
        out.update({f"{target}.parametrizations.weight.original": weight,
                    f"{target}.parametrizations.weight.0._u": u, f"{target}.parametrizations.weight.0._v": v})

    conv("c1_pre", "stem")
    for i, block in enumerate(BLOCKS):
        if attention and i == 4:
            for part, name in (("q", "query"), ("k", "key"), ("v", "value")):
                conv("atten", f"layers.4.{name}", f"atten_{part}weight", f"atten_{part}_u")
            out["layers.4.query.bias"], out["layers.4.key.bias"] = need("atten/atten_q_b1"), need("atten/atten_k_b1")
            out["layers.4.gamma"] = need("atten/gamma")
            continue
        conv(f"{block}_res_c1", f"layers.{i}.conv1")
        conv(f"{block}_res_c2", f"layers.{i}.conv2")
        out[f"layers.{i}.bias1"] = need(f"{block}_res_c1/gb")
        out[f"layers.{i}.bias2"] = need(f"{block}_res_c2/gb")
        out[f"layers.{i}.scale"] = need(f"{block}_res_c2/g")
        if classes:
            out[f"layers.{i}.scale_offset"] = need(f"{block}_res_c2/cb")
        if f"{block}_res_adaptive/cweight" in variables:
            conv(f"{block}_res_adaptive", f"layers.{i}.shortcut")
    out["head.weight"], out["head.bias"] = need("fc5/wweight").t().contiguous(), need("fc5/b")
    return out, read


def _spectral(kernel: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A TF conv kernel (HWIO) and its stored u (1, out) as torch's weight (OIHW) and its ``_u``, ``_v`` after TF's
    one power iteration."""
    kh, kw, c_in, c_out = kernel.shape
    matrix = kernel.double().reshape(-1, c_out)  # rows in (kh, kw, in) order
    v = F.normalize(u.double().reshape(1, c_out) @ matrix.t(), dim=1, eps=1e-6)
    u_next = F.normalize(v @ matrix, dim=1, eps=1e-6)
    v_torch = v.reshape(kh, kw, c_in).permute(2, 0, 1).reshape(-1)
    return kernel.permute(3, 2, 0, 1).contiguous(), u_next.reshape(-1).float(), v_torch.float()
