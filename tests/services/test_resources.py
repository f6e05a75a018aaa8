"""Resources: an unwritable runs directory or a full disk is a clear one-line error before work is lost."""

from __future__ import annotations

import errno
import json
import os
import shutil
import types
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


# ------------------------------------------------------------------------------------------ read-only runs


def _read_only(monkeypatch, folder: Path) -> None:
    """Make ``folder`` look like a read-only file system: writes fail, and asking says so."""
    inside = lambda path, *rest, **kw: str(path).startswith(str(folder))  # noqa: E731
    writes = lambda path, flags=os.O_RDONLY, *rest, **kw: inside(path) and flags & (os.O_WRONLY | os.O_RDWR)  # noqa: E731
    _refuse(monkeypatch, "open", errno.EROFS, writes)
    _refuse(monkeypatch, "mkdir", errno.EROFS, inside)
    real_access, real_statvfs = os.access, os.statvfs
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: False if inside(path) and mode & os.W_OK
                        else real_access(path, mode, **kw))

    def statvfs(path):
        if not inside(path):
            return real_statvfs(path)
        return types.SimpleNamespace(f_flag=real_statvfs(path).f_flag | os.ST_RDONLY)

    monkeypatch.setattr(os, "statvfs", statvfs)


@pytest.mark.parametrize("command, option", [(["sample", "--n", "4", "--steps", "2"], "--out"),
                                             (["ood", "--in", "shapes32", "--out", "textures", "--n", "8"], "--out-dir")])
def test_a_run_on_a_read_only_disk_is_refused_before_the_work_and_writes_elsewhere(cli, tmp_path, monkeypatch,
                                                                                   command, option):
    """Before, sample and ood computed everything and then ended in "internal error: OSError: Read-only file system"."""
    import ebmctl.services.runtime.loading as loading

    quick = ["--preset", "quickstart", "--steps", "1", "--set", "net.width=4", "--set", "train.batch_size=8",
             "--set", "sampler.steps=2", "--set", "buffer.size=16", "--set", "method.kl_chains=4",
             "--set", "method.entropy_min_buffer=10", "--set", "method.entropy_refs=5"]
    assert cli("--quiet", "train", *quick).code == 0
    (run,) = list(cli.runs.iterdir())
    before = sorted(p.relative_to(run) for p in run.rglob("*"))
    _read_only(monkeypatch, run)
    real_load = loading.load_run
    monkeypatch.setattr(loading, "load_run", lambda *a, **k: pytest.fail("the work started"))
    refused = cli("--quiet", *command)
    assert refused.code == 1, refused.err
    line = refused.err.strip()
    assert "\n" not in line and "read-only file system" in line and f"{option} /an/absolute/folder" in line, line
    assert "--outputs-dir DIR" in line and "internal error" not in line
    monkeypatch.setattr(loading, "load_run", real_load)

    elsewhere = tmp_path / "elsewhere"
    done = cli("--quiet", "--json", *command, option, str(elsewhere))  # an absolute folder outside the run
    assert done.code == 0, done.err
    assert json.loads(done.out)["out"] == str(elsewhere) and (elsewhere / "result.json").is_file()
    outputs = tmp_path / "outputs"
    done = cli("--quiet", "--json", "--outputs-dir", str(outputs), *command)  # a folder per run there
    assert done.code == 0, done.err
    out = Path(json.loads(done.out)["out"])
    assert out.parent == outputs / run.name / command[0] and (out / "result.json").is_file()
    escaped = cli("--quiet", "--outputs-dir", str(outputs), *command, option, "../../x")  # names stay inside
    assert escaped.code == 2 and f"is outside {outputs / run.name}" in escaped.err, escaped.err
    assert sorted(p.relative_to(run) for p in run.rglob("*")) == before


# --------------------------------------------------------------------------------------------- memory


def test_a_buffer_larger_than_the_memory_limit_is_refused_up_front(tmp_path):
    """Before, --set buffer.size=3000000 under a 6 GB limit ended in an allocator error ("internal error")."""
    import resource
    import subprocess
    import sys

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (6 * 10**9, 6 * 10**9))

    proc = subprocess.run([sys.executable, "-m", "ebmctl", "--runs-dir", str(tmp_path / "runs"), "--device", "cpu",
                           "train", "--preset", "quickstart", "--set", "buffer.size=3000000", "--steps", "1"],
                          preexec_fn=limit, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 1, proc.stderr
    line = proc.stderr.strip()
    assert line.startswith("error: the replay buffer needs 9.2 GB (buffer.size=3000000 x 3x32x32); only "), line
    assert "ulimit -v" in line and "--set buffer.size=" in line and "\n" not in line
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_a_resumed_run_whose_buffer_no_longer_fits_is_refused_without_a_buffer_size_hint(cli, monkeypatch):
    import ebmctl.services.runtime.memory as memory

    assert cli("--quiet", "train", *TOY, "--steps", "1").code == 0
    (run,) = list(cli.runs.iterdir())
    monkeypatch.setattr(memory, "available_memory", lambda device: (100, "on this machine"))
    result = cli("train", "--resume", str(run), "--steps", "2")
    assert result.code == 1 and "the replay buffer needs" in result.err and "keeps its buffer.size" in result.err


@pytest.mark.parametrize("command", [["sample", "--n", "2", "--fid"], ["refine", "--n", "2"]])
def test_fid_on_too_few_samples_is_refused_before_sampling(cli, monkeypatch, command):
    """Before, `sample --n 2 --fid` sampled first and then failed with "need at least 4 images"."""
    import ebmctl.services.sample as sample_service

    quick = ["--preset", "sngan-shapes" if command[0] == "refine" else "quickstart", "--steps", "1"]
    tiny = {"refine": ["--set", "net.ngf=16", "--set", "net.ndf=16", "--set", "net.nz=8", "--set", "train.batch_size=4",
                       "--set", "method.n_dis=1"],
            "sample": ["--set", "net.width=4", "--set", "train.batch_size=8", "--set", "sampler.steps=2",
                       "--set", "buffer.size=16", "--set", "method.kl_chains=4", "--set", "method.entropy_min_buffer=10",
                       "--set", "method.entropy_refs=5"]}[command[0]]
    assert cli("--quiet", "train", *quick, *tiny).code == 0
    if command[0] == "refine":
        hat = ["--preset", "hat-refine-shapes", "--steps", "1", "--set", "net.ndf=16", "--set", "train.batch_size=4",
               "--set", "sampler.steps=2", "--set", "sample.steps=2"]
        assert cli("--quiet", "train", *hat).code == 0
    monkeypatch.setattr(sample_service, "streaming_tensor_file", lambda *a, **k: pytest.fail("sampling started"))
    result = cli(*command)
    assert result.code == 2, result.err
    assert "need at least 4 samples; --n is 2" in result.err and "internal error" not in result.err
