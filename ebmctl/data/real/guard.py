"""Turn every way reading a real dataset can fail into a one-line DataError with a hint.

torchvision reports a missing file and a checksum mismatch with the same RuntimeError ("Dataset not found
or corrupted"), so the files are looked for first: once they are all there, that error means a mismatch.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.error import URLError

from ebmctl.data.registry import DatasetEntry
from ebmctl.errors import DataError, EbmctlError


def dataset_dir(entry: DatasetEntry, root: Path) -> Path:
    """The directory a real dataset's files are expected in."""
    assert entry.directory is not None
    return root / entry.directory


def missing_files(directory: Path, files: tuple[str, ...]) -> list[str]:
    """The expected files (or folders, named with a trailing "/") that are not in ``directory``."""
    return [
        f for f in files if not ((directory / f).is_dir() if f.endswith("/") else (directory / f).is_file())
    ]


def require_files(entry: DatasetEntry, root: Path, split: str) -> None:
    """Raise DataError naming the directory and the files expected when any is missing."""
    directory = dataset_dir(entry, root)
    expected = entry.expected_files(split)
    missing = missing_files(directory, expected)
    if not missing:
        return
    if len(missing) == len(expected):
        message = f"{entry.name} not found: expected {', '.join(expected)} in {directory}"
    else:
        message = f"{entry.name} is incomplete: {directory} lacks {', '.join(missing)} (expected {', '.join(expected)})"
    raise DataError(message, hint=entry.how_to_get,
                    setting=("data.download=true", "to let torchvision fetch it") if entry.downloadable else None)


@contextmanager
def reading(entry: DatasetEntry, root: Path, *, verify_checksums: bool, downloading: bool) -> Iterator[None]:
    """Translate exceptions raised while opening a dataset; ``downloading`` when its files were absent.

    Everything is caught on purpose: whatever a corrupt file makes a reader raise becomes a DataError naming
    the exception, chained so that ``--debug`` still shows the traceback.
    """
    directory = dataset_dir(entry, root)
    try:
        yield
    except EbmctlError:
        raise
    except Exception as exc:
        detail = one_line(exc)
        if downloading or isinstance(exc, URLError):
            raise DataError(
                f"{entry.name}: download into {root} failed: {detail}",
                hint=f"check the network connection, or get the files by hand: {entry.how_to_get}",
            ) from exc
        if isinstance(exc, RuntimeError) and "corrupted" in str(exc) and verify_checksums:
            raise DataError(
                f"{entry.name}: the files in {directory} do not match their checksums",
                hint=f"re-download them ({entry.how_to_get})",
                setting=("data.verify_checksums=false", "if you know the files are right"),
            ) from exc
        raise DataError(
            f"{entry.name}: cannot read the files in {directory} ({detail})",
            hint=f"they look corrupt or truncated; re-download them: {entry.how_to_get}",
        ) from exc


def one_line(exc: BaseException, limit: int = 160) -> str:
    """``Type: first line of the message``, shortened to ``limit`` characters."""
    text = str(exc).strip().splitlines()
    line = f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."
