"""Run an example script in a subprocess, alone or under `accelerate launch` with several CPU processes.

A script that hangs (a distributed run whose processes wait on each other) fails its test with what it printed and the
Python stack of every process of the run, and leaves no process behind: `accelerate launch` starts its workers in
sessions of their own, so killing the launcher alone would leave them holding the machine's cores.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time

import psutil
import pytest

# Enough of a failed run's output to show its last steps and the stacks of its processes.
SHOWN_OUTPUT_CHARS = 20_000


def accelerate_launcher(num_processes: int = 2) -> list[str]:
    """`accelerate launch` of ``num_processes`` CPU processes talking over gloo; run it with :data:`CPU_PROCESSES_ENV`.

    `accelerate launch --cpu --num_processes 2` starts a single process unless mpirun is installed; the torchrun
    launcher with ``ACCELERATE_USE_CPU`` gives several CPU processes. Port 0 lets accelerate take a free port as it
    starts torchrun: a port the test reserved and released would stay free only until the launcher has imported
    torch, seconds later, while the tests running beside it open and close sockets.
    """
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu"]
    launcher += ["--num_processes", str(num_processes), "--num_machines", "1"]
    launcher += ["--mixed_precision", "no", "--dynamo_backend", "no"]
    return launcher + ["--num_cpu_threads_per_process", "1", "--main_process_port", "0"]


CPU_PROCESSES_ENV = {"ACCELERATE_USE_CPU": "1"}


def run_script(
    command: list[str], *, cwd=None, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    """``subprocess.run(command, capture_output=True, text=True)``, failing the test if it runs over ``timeout`` s.

    On a timeout every process of the run gets SIGABRT, which makes Python print the stack of each of its threads
    (``PYTHONFAULTHANDLER``), then SIGKILL; the test fails with the end of the output.
    """
    env = {**os.environ, "PYTHONFAULTHANDLER": "1", **(env or {})}
    with subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _abort_process_tree(process.pid)
            stdout, stderr = process.communicate()
            output = f"--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
            pytest.fail(
                f"{shlex.join(command)} did not finish within {timeout:g} s; the end of its output, with the stack of "
                f"each of its processes:\n{output[-SHOWN_OUTPUT_CHARS:]}"
            )
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def _abort_process_tree(pid: int) -> None:
    try:
        launcher = psutil.Process(pid)
        # Frozen first, so that it cannot kill its workers with SIGTERM (no stack) when it sees the first one abort.
        launcher.suspend()
        processes = [launcher, *launcher.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for process in processes:
        _signal(process, signal.SIGABRT)
    # Time for each process to print its stacks.
    time.sleep(1)
    for process in processes:
        _signal(process, signal.SIGKILL)
    psutil.wait_procs(processes, timeout=10)


def _signal(process: psutil.Process, signal_number: int) -> None:
    try:
        process.send_signal(signal_number)
    except psutil.NoSuchProcess:
        pass
