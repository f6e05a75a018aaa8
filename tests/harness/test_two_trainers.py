"""Two processes never train one run: the process training a run holds its lock, a second writer is refused with
a message naming the holder, and `ebmctl train --resume` with no run picks only runs no live process holds.

Before, `--resume` with no run named picked a run another process was still training and trained it again from
step 0, both exited 0 and metrics.jsonl interleaved their steps; two resumes of one interrupted run both
succeeded and wrote every metrics line twice."""

from __future__ import annotations

import json
import signal
import socket

from training_process import TOY, start, wait_for_steps

from ebmctl.runs import update_run_json


def _steps(run):
    return [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_a_run_being_trained_is_refused_to_a_second_writer_and_skipped_by_resume(cli):
    runs = cli.runs
    assert cli("--quiet", "train", "--preset", "igebm-toy", "--steps", "2", *TOY).code == 0
    (interrupted,) = list(runs.iterdir())
    update_run_json(interrupted, status="interrupted")  # older than the run being trained, and unfinished
    training = start(runs)  # another process
    try:
        busy = wait_for_steps(runs, training, 2, skip=(interrupted,))
        for args in (("train", "--resume", str(busy)), ("train", "--resume", busy.name, "--steps", "3")):
            second = cli("--quiet", *args)
            assert second.code == 1, second.err
            line = second.err.strip()
            assert line.startswith(f"error: run {busy.name} is being trained by process {training.pid} on "
                                   f"{socket.gethostname()}") and "\n" not in line, line
        # with no run named: the newest unfinished run is being trained, so the older interrupted one resumes
        resumed = cli("--quiet", "--json", "train", "--resume", "--steps", "3")
        assert resumed.code == 0, resumed.err
        assert json.loads(resumed.out)["run"] == str(interrupted) and _steps(interrupted) == [1, 2, 3]
        nothing = cli("--quiet", "train", "--resume")  # nothing else to resume: the message names the process
        assert nothing.code == 1 and f"is being trained by process {training.pid}" in nothing.err, nothing.err
        logged = _steps(busy)
        assert logged == list(range(1, len(logged) + 1))  # one writer: no step twice, none out of order
    finally:
        training.send_signal(signal.SIGTERM)
        assert training.wait(timeout=120) == 143
    step = json.loads((busy / "run.json").read_text())["step"]  # the lock went with the process: it resumes now
    assert cli("--quiet", "train", "--resume", str(busy), "--steps", str(step + 1)).code == 0
