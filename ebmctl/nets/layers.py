"""Layers shared by the energy nets: weight-standardised conv, SAGAN self-attention, spectral norm, labels."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm as _torch_spectral_norm

swish = F.silu


class WSConv2d(nn.Conv2d):
    """Conv2d with weight standardisation (Qiao et al. 2019), as in the ICD code.

    Each output channel's kernel has its mean over (in, kh, kw) removed and is divided by its unbiased
    standard deviation plus 1e-5.
    """

    eps: float = 1e-5

    def standardized_weight(self) -> Tensor:
        if _STANDARDIZED is not None and self in _STANDARDIZED:
            return _STANDARDIZED[self]
        with torch.autocast(self.weight.device.type, enabled=False):
            w = self.weight - self.weight.mean(dim=(1, 2, 3), keepdim=True)
            std = w.flatten(1).std(dim=1).view(-1, 1, 1, 1)
            w = w / (std + self.eps)
        if _STANDARDIZED is not None:
            _STANDARDIZED[self] = w
        return w

    def forward(self, x: Tensor) -> Tensor:
        return self._conv_forward(x, self.standardized_weight(), self.bias)


_STANDARDIZED: dict[WSConv2d, Tensor] | None = None


@contextmanager
def cached_standardization() -> Iterator[None]:
    """Standardise each :class:`WSConv2d` weight once for the block instead of at every forward.

    Only valid while the weights do not change (a sampler with frozen parameters).
    """
    global _STANDARDIZED
    outer = _STANDARDIZED
    _STANDARDIZED = {} if outer is None else outer
    try:
        yield
    finally:
        _STANDARDIZED = outer


class SelfAttention(nn.Module):
    """SAGAN self-attention: ``x + gamma * attention(x)``, gamma initialised to 0 (identity at init).

    Query and key are 1x1 convs to ``key_channels`` (default ``channels // 8``), the value a 1x1 conv to
    ``channels``; the softmax runs over key positions.
    """

    def __init__(
        self,
        channels: int,
        *,
        key_channels: int | None = None,
        spectral: bool = False,
        value_bias: bool = True,
        value_activation: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        super().__init__()
        key_channels = key_channels or max(channels // 8, 1)
        wrap = spectral_norm if spectral else (lambda m: m)
        self.query = wrap(nn.Conv2d(channels, key_channels, 1))
        self.key = wrap(nn.Conv2d(channels, key_channels, 1))
        self.value = wrap(nn.Conv2d(channels, channels, 1, bias=value_bias))
        self.value_activation = value_activation
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        q = self.query(x).flatten(2)  # (B, K, N)
        k = self.key(x).flatten(2)  # (B, K, N)
        v = self.value(x)
        if self.value_activation is not None:
            v = self.value_activation(v)
        attn = torch.softmax(q.transpose(1, 2) @ k, dim=-1)  # (B, N queries, N keys)
        out = (v.flatten(2) @ attn.transpose(1, 2)).view(b, c, h, w)
        return x + self.gamma * out


def spectral_norm(module: nn.Module, n_power_iterations: int = 1) -> nn.Module:
    """Spectrally normalise ``module.weight`` (one power iteration per forward in train mode)."""
    return _torch_spectral_norm(module, n_power_iterations=n_power_iterations)


class BoundedSpectralNorm(nn.Module):
    """Parametrization ``W / max(sigma(W), 1)``: caps the spectral norm at 1 without inflating small weights.

    This is IGEBM's ``lower_bound`` spectral norm, used on zero-initialised convs: plain spectral norm
    would divide zero by zero. The power-iteration vectors are kept while the weight is (near) zero.
    """

    def __init__(self, weight: Tensor, n_power_iterations: int = 1, eps: float = 1e-12) -> None:
        super().__init__()
        out_features = weight.shape[0]
        in_features = weight[0].numel()
        self.n_power_iterations = n_power_iterations
        self.eps = eps
        self.register_buffer("_u", F.normalize(weight.new_empty(out_features).normal_(), dim=0, eps=eps))
        self.register_buffer("_v", F.normalize(weight.new_empty(in_features).normal_(), dim=0, eps=eps))

    def _normalized_or_previous(self, new: Tensor, previous: Tensor) -> Tensor:
        norm = new.norm()
        return torch.where(norm > self.eps, new / norm.clamp_min(self.eps), previous)

    @torch.no_grad()
    def _power_method(self, mat: Tensor) -> None:
        for _ in range(self.n_power_iterations):
            self._v.copy_(self._normalized_or_previous(mat.t() @ self._u, self._v))
            self._u.copy_(self._normalized_or_previous(mat @ self._v, self._u))

    def forward(self, weight: Tensor) -> Tensor:
        with torch.autocast(weight.device.type, enabled=False):
            mat = weight.flatten(1)
            if self.training:
                self._power_method(mat)
            # Clones keep autograd valid when the buffers are updated in place by a later forward.
            u = self._u.clone(memory_format=torch.contiguous_format)
            v = self._v.clone(memory_format=torch.contiguous_format)
            sigma = torch.dot(u, mat @ v)
            return weight / sigma.clamp_min(1.0)


def bounded_spectral_norm(module: nn.Module, n_power_iterations: int = 1) -> nn.Module:
    """Register :class:`BoundedSpectralNorm` on ``module.weight``."""
    parametrize.register_parametrization(
        module, "weight", BoundedSpectralNorm(module.weight.detach(), n_power_iterations)
    )
    return module


class ClassFiLM(nn.Module):
    """Per-class gain and bias, ``h * gain[y] + bias[y]``, starting as the identity (gain 1, bias 0)."""

    def __init__(self, num_classes: int, channels: int) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.ones(num_classes, channels))
        self.bias = nn.Parameter(torch.zeros(num_classes, channels))

    def forward(self, h: Tensor, y: Tensor) -> Tensor:
        shape = (h.shape[0], h.shape[1]) + (1,) * (h.dim() - 2)
        return h * self.gain[y].view(shape) + self.bias[y].view(shape)


def check_labels(y: Tensor | None, num_classes: int, batch: int) -> Tensor | None:
    """Validate the conditioning input of an energy net and return it as int64 (or None).

    Unconditional nets (``num_classes == 0``) reject labels; conditional nets require them.
    """
    if num_classes <= 0:
        if y is not None:
            raise ValueError("this energy net is unconditional (num_classes=0); call it without y")
        return None
    if y is None:
        raise ValueError(f"this energy net is conditional (num_classes={num_classes}); pass class labels y")
    if y.dtype.is_floating_point or y.dtype.is_complex or y.dtype == torch.bool:
        raise ValueError(f"y must hold integer class indices, got dtype {y.dtype}")
    if y.shape != (batch,):
        raise ValueError(f"y must have shape ({batch},), got {tuple(y.shape)}")
    if batch and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ValueError(f"class labels must lie in [0, {num_classes}), got [{int(y.min())}, {int(y.max())}]")
    return y.long()
