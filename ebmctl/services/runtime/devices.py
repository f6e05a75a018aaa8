"""The device a command runs on: auto, cpu, cuda or cuda:N, never a silent fallback."""

from __future__ import annotations

import torch

from ebmctl.errors import DeviceError, SpecError


def resolve_device(name: str) -> torch.device:
    """auto | cpu | cuda | cuda:N; a CUDA device that is not there is an error, never a silent fallback."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise SpecError(f"unknown device {name!r}", "use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError("CUDA is not available on this machine", "use --device cpu (or auto)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceError(f"there is no {name} (found {torch.cuda.device_count()} CUDA devices)",
                              "pick an index below the device count")
    elif device.type != "cpu":
        raise SpecError(f"unsupported device {name!r}", "use auto, cpu, cuda or cuda:N")
    return device
