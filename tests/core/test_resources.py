"""Resources: an unwritable runs directory or a full disk is a clear one-line error before work is lost."""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from ebmctl.checkpoints import load_tensors, save_tensors, write_bytes_atomic
from ebmctl.errors import RunError
from ebmctl.runs import MODEL_CKPT, STATE_CKPT, check_free_space, ensure_writable

TOY = ["--preset", "igebm-toy", "--set", "train.batch_size=8", "--set", "sampler.steps=2", "--set", "buffer.size=16",
       "--set", "train.checkpoint_every=1", "--set", "train.log_every=1", "--set", "net.hidden=8"]


def _no_temporary_files(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


def _refuse(monkeypatch, name: str, code: int, when=lambda *args: True) -> None:
    """Make os.<name> fail with ``code`` whenever ``when(*args)``."""
    real = getattr(os, name)

    def failing(*args, **kwargs):
        if when(*args):
            raise OSError(code, os.strerror(code), str(args[0]))
        return real(*args, **kwargs)

    monkeypatch.setattr(os, name, failing)


# ------------------------------------------------------------------------------------- unwritable runs dir


def test_a_runs_directory_under_a_file_is_refused(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(RunError) as err:
        ensure_writable(blocker / "runs")
    assert "cannot write to the runs directory" in err.value.message and "--runs-dir" in err.value.hint
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("code, words", [(errno.EROFS, "Read-only"), (errno.EACCES, "Permission denied"),
                                         (errno.ENOSPC, "is full")])
def test_a_read_only_runs_directory_is_refused(tmp_path, monkeypatch, code, words):
    root = tmp_path / "runs"
    root.mkdir()
    _refuse(monkeypatch, "open", code, lambda path, *rest: str(path).startswith(str(root)))
    with pytest.raises(RunError) as err:
        ensure_writable(root)
    assert words in err.value.message and str(root) in err.value.message
    monkeypatch.undo()
    assert list(root.iterdir()) == []
    ensure_writable(root)  # writable again: nothing raised, nothing left behind
    assert list(root.iterdir()) == []


def test_train_refuses_an_unwritable_runs_directory_before_building_anything(cli, tmp_path, monkeypatch):
    import ebmctl.services.train as service

    def no_work(*args, **kwargs):
        raise AssertionError("the Trainer was built although the runs directory is unwritable")

    monkeypatch.setattr(service, "Trainer", no_work)
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = cli("--runs-dir", str(blocker / "runs"), "--device", "cpu", "train", *TOY, "--steps", "1",
                 runs_dir=False)
    assert result.code == 1, result.err
    assert "cannot write to the runs directory" in result.err and "hint" in result.err
    assert len(result.err.strip().splitlines()) <= 2


# ------------------------------------------------------------------------------------------- free space


def test_check_free_space(tmp_path, monkeypatch):
    check_free_space(tmp_path / "not" / "yet", 1)  # looks at the nearest existing folder
    free = shutil.disk_usage(tmp_path).free
    with pytest.raises(RunError) as err:
        check_free_space(tmp_path, free * 4)
    assert "free on the disk holding" in err.value.message and "another disk" in err.value.hint


def test_train_stops_before_the_run_directory_when_the_disk_is_nearly_full(cli, monkeypatch):
    def almost_full(path):
        return shutil._ntuple_diskusage(10**9, 10**9 - 100, 100)

    monkeypatch.setattr(shutil, "disk_usage", almost_full)
    result = cli("--quiet", "train", *TOY, "--steps", "1")
    assert result.code == 1 and "100 B free" in result.err and "--runs-dir" in result.err, result.err
    assert not [p for p in cli.runs.iterdir()]  # no run directory was created


# ------------------------------------------------------------------------------------------------ disk full


@pytest.mark.parametrize("code, words", [(errno.ENOSPC, "disk full while writing"),
                                         (errno.EDQUOT, "disk quota exceeded"),
                                         (errno.EROFS, "read-only file system"),
                                         (errno.EACCES, "permission denied"),
                                         (errno.EPERM, "permission denied")])
def test_a_failed_rename_keeps_the_previous_checkpoint(tmp_path, monkeypatch, code, words):
    path = tmp_path / "checkpoints" / "model.safetensors"
    save_tensors(path, {"w": torch.ones(3)}, {"step": 1})
    _refuse(monkeypatch, "replace", code)
    with pytest.raises(RunError) as err:
        save_tensors(path, {"w": torch.zeros(3)}, {"step": 2})
    message = err.value.message
    assert words in message and str(path) in message and message.endswith("; the previous file is intact")
    assert "--runs-dir" in err.value.hint
    monkeypatch.undo()
    tensors, meta = load_tensors(path)
    assert torch.equal(tensors["w"], torch.ones(3)) and meta == {"step": 1}
    assert _no_temporary_files(tmp_path)


def test_a_disk_full_halfway_through_a_write(tmp_path, monkeypatch):
    path = tmp_path / "a.bin"
    write_bytes_atomic(path, b"old")
    real_write = Path.write_bytes

    def half(self, data):
        real_write(self, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", half)
    with pytest.raises(RunError) as err:
        write_bytes_atomic(path, b"new contents")
    assert err.value.message == f"disk full while writing {path}; the previous file is intact"
    assert err.value.hint == "free space or pass --runs-dir on another disk"
    monkeypatch.undo()
    assert path.read_bytes() == b"old" and _no_temporary_files(tmp_path)
    with pytest.raises(RunError) as err, monkeypatch.context() as m:  # a new file: nothing was there before
        _refuse(m, "replace", errno.ENOSPC)
        write_bytes_atomic(tmp_path / "b.bin", b"x")
    assert err.value.message.endswith("nothing was written") and not (tmp_path / "b.bin").exists()


def test_other_os_errors_pass_through(tmp_path, monkeypatch):
    _refuse(monkeypatch, "replace", errno.EIO)
    with pytest.raises(OSError) as err:
        write_bytes_atomic(tmp_path / "a.bin", b"x")
    assert not isinstance(err.value, RunError) and err.value.errno == errno.EIO
    monkeypatch.undo()
    assert _no_temporary_files(tmp_path)


def test_disk_full_during_training_is_one_line_and_the_checkpoint_survives(cli, monkeypatch):
    first = cli("--quiet", "--json", "train", *TOY, "--steps", "2")
    assert first.code == 0, first.err
    run = Path(json.loads(first.out)["run"])
    before, _ = load_tensors(run / STATE_CKPT)
    _refuse(monkeypatch, "replace", errno.ENOSPC, lambda src, dst, *rest: str(dst).endswith(".safetensors"))
    result = cli("--quiet", "train", "--resume", str(run), "--steps", "4")
    monkeypatch.undo()
    assert result.code == 1
    assert f"disk full while writing {run / MODEL_CKPT}; the previous file is intact" in result.err
    assert "free space or pass --runs-dir on another disk" in result.err
    after, meta = load_tensors(run / STATE_CKPT)
    assert meta["step"] == 2 and all(torch.equal(before[k], after[k]) for k in before)
    assert load_tensors(run / MODEL_CKPT)[1]["step"] == 2
    assert _no_temporary_files(run)
    assert json.loads((run / "run.json").read_text())["status"] == "failed"
