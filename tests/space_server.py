"""Run the Space in a child process on a free local port: for its tests and its load benchmark
(`benchmarks/space_load.py` imports it from here)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

APP = Path(__file__).parents[1] / "spaces" / "app.py"
# Straight to 127.0.0.1, whatever proxy the environment names.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class RunningSpace:
    url: str
    process: subprocess.Popen
    log: IO[bytes]
    cache: Path  # Gradio's upload cache (GRADIO_TEMP_DIR): uploads and the files it serves

    def output(self) -> str:
        """Everything the server printed so far."""
        self.log.seek(0)
        return self.log.read().decode(errors="replace")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def serve_space(env: Mapping[str, str] | None = None, timeout: float = 180.0) -> Iterator[RunningSpace]:
    """Starts `python spaces/app.py` on 127.0.0.1 with `env` added to the environment; yields it once it serves.

    The child never reaches the network: Gradio analytics are off and the Hugging Face libraries keep whatever
    endpoint the caller's environment sets. Raises `RuntimeError` with the server log if it does not come up.
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    with tempfile.TemporaryFile() as log, tempfile.TemporaryDirectory(prefix="space-cache-") as cache:
        environment = {
            **os.environ,
            **(env or {}),
            "GRADIO_SERVER_NAME": "127.0.0.1",
            "GRADIO_SERVER_PORT": str(port),
            "GRADIO_ANALYTICS_ENABLED": "False",
            "GRADIO_TEMP_DIR": cache,  # uploads and results go away with the server
            "PYTHONUNBUFFERED": "1",
        }
        process = subprocess.Popen(
            [sys.executable, str(APP)], cwd=APP.parent, env=environment, stdout=log, stderr=subprocess.STDOUT
        )
        space = RunningSpace(url, process, log, Path(cache))
        try:
            deadline = time.monotonic() + timeout
            while not _serves(url):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"The Space did not start on {url}:\n{space.output()}")
                time.sleep(0.25)
            yield space
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _serves(url: str) -> bool:
    try:
        with _DIRECT.open(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def client_scratch_dir() -> Iterator[Path]:
    """Points `tempfile` at a folder deleted on exit: gradio_client leaves an empty folder in the temp directory for
    every file it downloads."""
    previous = tempfile.tempdir
    with tempfile.TemporaryDirectory(prefix="gradio-client-") as scratch:
        tempfile.tempdir = scratch
        try:
            yield Path(scratch)
        finally:
            tempfile.tempdir = previous
