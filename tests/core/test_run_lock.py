"""The run lock: one holder at a time, its pid and host named, released by the operating system when the holder
dies (a SIGKILL leaves no stale lock)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from ebmctl.errors import RunError
from ebmctl.run_lock import LOCK_FILE, RunLock, holder
from ebmctl.runs import new_run_dir, run_to_resume, start_run_json, write_json


def test_a_second_holder_is_refused_with_the_first_ones_pid_and_host(tmp_path):
    with RunLock() as first:
        first.acquire(tmp_path)
        assert holder(tmp_path)["pid"] == os.getpid()
        with pytest.raises(RunError) as err:
            RunLock().acquire(tmp_path)
        assert f"process {os.getpid()} on {socket.gethostname()}" in err.value.message
        assert "kill" in err.value.hint
    assert holder(tmp_path) is None
    RunLock().acquire(tmp_path).release()


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    code = ("import sys, time; from ebmctl.run_lock import RunLock; RunLock().acquire(sys.argv[1]); "
            "print('held', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        assert holder(tmp_path)["pid"] == proc.pid
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert (tmp_path / LOCK_FILE).exists() and holder(tmp_path) is None
    RunLock().acquire(tmp_path).release()


def test_resume_picks_the_newest_run_no_process_holds(tmp_path):
    runs = []
    for name in ("old", "new"):
        run = new_run_dir(tmp_path, name)
        write_json(run / "spec.json", {})
        start_run_json(run, preset=name, method="igebm", device="cpu", parents=[])
        runs.append(run)
        time.sleep(0.01)
    assert run_to_resume(tmp_path) == runs[1]
    with RunLock() as lock:
        lock.acquire(runs[1])
        assert run_to_resume(tmp_path) == runs[0]
        with RunLock() as other:
            other.acquire(runs[0])
            with pytest.raises(RunError, match=f"is being trained by process {os.getpid()}"):
                run_to_resume(tmp_path)
