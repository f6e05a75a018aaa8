"""What every fuzzed command must do, shared by the fuzzing tests: fail in one line, leave the runs alone."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any


def runs_tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``root`` with the size and mtime of files: what a failing command must not change. (A
    directory's mtime is left out: `train --resume` probes that the run directory is writable with a file it
    removes; and so is the run lock's record of its last holder, which every `train --resume` writes first.)"""
    from ebmctl.run_lock import LOCK_FILE

    out = {}
    for path in sorted(root.rglob("*")):
        if path.name == LOCK_FILE:
            continue
        st = path.lstat()
        out[str(path.relative_to(root))] = (-1, 0) if path.is_dir() else (st.st_size, st.st_mtime_ns)
    return out


def tidy(root: Path, before: dict[str, Any]) -> None:
    """Remove what a successful command wrote, so that the next input starts from the same tree."""
    for path in sorted(root.rglob("*"), key=lambda p: len(p.parts)):
        if str(path.relative_to(root)) not in before and path.exists():
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()


def assert_one_line_failure(code: int, out: str, err: str, context: str, argv: list[str] | None = None) -> None:
    """Exit code 1 or 2, one `error: ... (hint: ...)` line on stderr, no traceback, no internal error; with
    ``argv``, a hint the command that printed it can follow."""
    assert code in (1, 2), context
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "(hint: " in lines[0], context
    assert "Traceback" not in out + err and "internal error" not in err, context
    if argv is not None:
        from hints import assert_hint_works

        assert_hint_works(argv, lines[0])
