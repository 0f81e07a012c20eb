"""Test session setup: every test talks to a local in-memory Hub (`hub_server.py`), never to the network.

`pytest_configure` starts the Hub on 127.0.0.1 and points the Hugging Face libraries at it through the environment
before any of them is imported (they read `HF_ENDPOINT` and friends at import time). Each process gets its own Hub and
its own empty `HF_HOME`, so pytest-xdist workers are isolated, and subprocesses started by tests inherit the setup.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from hub_server import OTHER_USER_TOKEN, TEST_USER, TEST_USER_TOKEN, HubServer

_HUB_SERVER = pytest.StashKey[HubServer]()
_HF_HOME = pytest.StashKey[str]()

# Variables that would send a library elsewhere than HF_HOME, to another Hub, or offline.
_OVERRIDES_TO_CLEAR = (
    "HF_HUB_CACHE",
    "HUGGINGFACE_HUB_CACHE",
    "HF_ASSETS_CACHE",
    "HUGGINGFACE_ASSETS_CACHE",
    "HF_XET_CACHE",
    "HF_DATASETS_CACHE",
    "HF_TOKEN_PATH",
    "HUGGING_FACE_HUB_TOKEN",
    "HF_OIDC_RESOURCE",
    "HUGGINGFACE_CO_STAGING",
    "HF_HUB_DISABLE_IMPLICIT_TOKEN",
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "HF_DATASETS_OFFLINE",
)


def pytest_configure(config: pytest.Config) -> None:
    if "huggingface_hub" in sys.modules:
        raise pytest.UsageError(
            "huggingface_hub was imported before tests/conftest.py could point HF_ENDPOINT at the local test Hub; "
            "tests would reach huggingface.co. Do not import Hugging Face libraries from pytest plugins."
        )
    server = HubServer()
    server.start()
    hf_home = tempfile.mkdtemp(prefix="hf-home-")
    config.stash[_HUB_SERVER] = server
    config.stash[_HF_HOME] = hf_home
    for name in _OVERRIDES_TO_CLEAR:
        os.environ.pop(name, None)
    no_proxy = ",".join(filter(None, ["127.0.0.1", "localhost", os.environ.get("NO_PROXY")]))
    os.environ.update(
        HF_ENDPOINT=server.url,
        HF_TOKEN=TEST_USER_TOKEN,
        HF_HOME=hf_home,
        HF_HUB_DISABLE_XET="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_UPDATE_CHECK="1",
        NO_PROXY=no_proxy,
        no_proxy=no_proxy,
    )


def pytest_report_header(config: pytest.Config) -> str:
    from hf_vaegan.hardware import cpu_info  # after pytest_configure: it imports torch, not the Hugging Face libraries

    return f"cpu: {cpu_info().describe()}"


def pytest_unconfigure(config: pytest.Config) -> None:
    config.stash[_HUB_SERVER].stop()
    shutil.rmtree(config.stash[_HF_HOME], ignore_errors=True)


@pytest.fixture(scope="session")
def hub_endpoint(pytestconfig: pytest.Config) -> str:
    """URL of the local test Hub (also in `HF_ENDPOINT`)."""
    return pytestconfig.stash[_HUB_SERVER].url


@pytest.fixture(scope="session")
def hub_token() -> str:
    """Token of `test-user`, the default identity (also in `HF_TOKEN`)."""
    return TEST_USER_TOKEN


@pytest.fixture(scope="session")
def other_user_token() -> str:
    """Token of `other-user`, who may read public repos of `test-user` but not write to them."""
    return OTHER_USER_TOKEN


@pytest.fixture
def unique_repo_id(request: pytest.FixtureRequest) -> str:
    """A repo id under `test-user` that no other test uses, e.g. `test-user/test-push-roundtrip-3f9a1c2e`."""
    name = re.sub(r"[^A-Za-z0-9]+", "-", request.node.name).strip("-")[:60]
    return f"{TEST_USER}/{name}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def fresh_hf_cache(tmp_path: Path) -> str:
    """An empty cache folder to pass as `cache_dir`, so that downloads really go through the Hub."""
    cache = tmp_path / "hf-cache"
    cache.mkdir()
    return str(cache)


@pytest.fixture
def run_python() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run `python <args>` with the test environment (local Hub, token, isolated HF_HOME); output is captured.

    >>> result = run_python("-c", "from huggingface_hub import whoami; print(whoami()['name'])")
    >>> result.stdout  # 'test-user\\n'

    `env` adds variables to the test environment. A non-zero exit fails the test with the process output, unless
    `check=False`.
    """

    def run(
        *args: str,
        cwd: str | Path | None = None,
        timeout: float = 300,
        check: bool = True,
        env: dict[str, str] | None = None,
    ):
        result = subprocess.run(
            [sys.executable, *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **(env or {})},
        )
        if check and result.returncode != 0:
            pytest.fail(
                f"python {' '.join(args)} exited with {result.returncode}\n"
                f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
            )
        return result

    return run
