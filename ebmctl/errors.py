"""User-facing errors: one line, a hint, an exit code. The CLI renders them once."""

from __future__ import annotations


class EbmctlError(Exception):
    """A mistake the user can fix. ``message`` is one line; ``hint`` names the next thing to do. ``setting``, a
    spec setting that gets past the error and why (``("data.download=true", "to let torchvision fetch it")``), is
    offered by the command line in the syntax of the command that met the error, where it has one."""

    exit_code = 1
    kind = "error"

    def __init__(self, message: str, hint: str | None = None, *, setting: tuple[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.setting = setting

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} (hint: {self.hint})"


class SpecError(EbmctlError):
    """A bad preset, key or value given on the command line (a bad option: exit 2)."""

    exit_code = 2
    kind = "spec"


class UsageError(EbmctlError):
    """A bad combination of command-line options (exit 2)."""

    exit_code = 2
    kind = "usage"


class DataError(EbmctlError):
    """A dataset that is missing, incomplete or corrupt."""

    kind = "data"


class RunError(EbmctlError):
    """A run directory that does not exist or is not usable."""

    kind = "run"


class CheckpointError(EbmctlError):
    """A checkpoint that is corrupt or does not match the model it is loaded into."""

    kind = "checkpoint"


class CapabilityError(EbmctlError):
    """A command asked a method for something it does not offer."""

    kind = "capability"


class DeviceError(EbmctlError):
    """A device that is not available (e.g. --device cuda on a machine without CUDA)."""

    kind = "device"


class DivergenceError(EbmctlError):
    """Training produced non-finite values."""

    kind = "divergence"
