"""Crash a training run from outside: SIGKILL the process when a file appears in its output folder.

The SIGKILL tests of the scripts use this instead of a hook in the training code: the process gets no chance to
clean up or save, as when a machine loses power or the OOM killer strikes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path


def kill_when(
    command: list[str], watched: Path, *, delay: float = 0.0, env: dict | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    """Run ``command`` and SIGKILL it ``delay`` seconds after ``watched`` (a file or folder) appears.

    Returns the finished process (``returncode`` -9 when it was killed); raises ``AssertionError`` if it ended on
    its own before ``watched`` appeared, so a test never passes without the crash it is about.
    """
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})}
    ) as process:
        deadline = time.monotonic() + timeout
        while not watched.exists():
            if process.poll() is not None:
                _, stderr = process.communicate()
                raise AssertionError(f"{command} ended with {process.returncode} before {watched} appeared:\n{stderr}")
            if time.monotonic() > deadline:
                process.kill()
                raise AssertionError(f"{watched} did not appear within {timeout} s")
            time.sleep(0.002)
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        stdout, stderr = process.communicate()
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
