"""Released checkpoints are read without running code: anything besides tensors, plain values and the globals a
format allows is refused in one line, and nothing in the file runs."""

from __future__ import annotations

import argparse
import hashlib

import pytest
import torch

from ebmctl.errors import CheckpointError, RunError
from ebmctl.released.reader import read_release, sha256


class Trap:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_plain_checkpoints_are_read_on_the_cpu(tmp_path):
    path = tmp_path / "ok.pt"
    torch.save({"ebm": {"w": torch.ones(2)}, "iteration": 3, "runtime": 1.5}, path)
    doc = read_release(path)
    assert doc["iteration"] == 3 and torch.equal(doc["ebm"]["w"], torch.ones(2))
    together, each = sha256(path, path)
    assert len(together) == 64 and each == {str(path): hashlib.sha256(path.read_bytes()).hexdigest()}
    assert together == hashlib.sha256(path.read_bytes() * 2).hexdigest()


def test_a_file_with_code_or_objects_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "ran"
    trap = tmp_path / "trap.pt"
    torch.save({"ebm": {"w": torch.ones(1)}, "x": Trap(str(marker))}, trap)
    with pytest.raises(CheckpointError, match="which ebmctl does not rebuild"):
        read_release(trap)
    assert not marker.exists()
    flags = tmp_path / "flags.pt"
    torch.save({"FLAGS": argparse.Namespace(lr=1.0)}, flags)
    with pytest.raises(CheckpointError, match=r"argparse\.Namespace"):
        read_release(flags)
    assert read_release(flags, [argparse.Namespace])["FLAGS"].lr == 1.0  # a format may allow a harmless global


def test_missing_and_foreign_files_are_one_line_errors(tmp_path):
    with pytest.raises(RunError, match="does not exist"):
        read_release(tmp_path / "nope.pt")
    text = tmp_path / "notes.txt"
    text.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="is not a torch checkpoint"):
        read_release(text)
