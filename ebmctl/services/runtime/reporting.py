"""How services report progress without printing: a small protocol the CLI implements with Rich."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Protocol


class ProgressHandle(Protocol):
    def update(self, completed: int, **fields: Any) -> None: ...

    def __enter__(self) -> ProgressHandle: ...

    def __exit__(self, *exc: object) -> None: ...


class Reporter(Protocol):
    def info(self, message: str) -> None: ...

    def warn(self, message: str) -> None: ...

    def progress(self, label: str, total: int, *, unit: str = "step", fields: tuple[str, ...] = ()) -> ProgressHandle: ...


class _NullProgress:
    def update(self, completed: int, **fields: Any) -> None:
        return None

    def __enter__(self) -> _NullProgress:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None


class NullReporter:
    """Reports nothing: the default for the Python API and tests."""

    def info(self, message: str) -> None:
        return None

    def warn(self, message: str) -> None:
        return None

    def progress(self, label: str, total: int, *, unit: str = "step", fields: tuple[str, ...] = ()) -> _NullProgress:
        return _NullProgress()
