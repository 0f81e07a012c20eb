"""The save/load, Hub, pipeline and training-state tests again, with torch's CPU kernels capped as on smaller CPUs.

CI runs on whatever CPU its machine has. A machine with AVX-512 or AMX never takes the AVX2 or scalar code paths of
an AVX2-only CPU, where kernels sum in another order; capping ATen (`ATEN_CPU_CAPABILITY`) and oneDNN
(`ONEDNN_MAX_CPU_ISA`) makes any machine take them, so a bitwise assumption that holds only on big CPUs fails here
too instead of on the next machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
# Every test that compares a model with its saved, pushed or remote-code copy, the pipelines' seeded sampling and
# the checkpointed training state (RNG, EMA, sample inputs).
CAPPED_TEST_FILES = [
    "test_models.py",
    "test_vaegan.py",
    "test_body_shape.py",
    "test_hub_roundtrip.py",
    "test_image_to_image.py",
    "test_tryon.py",
    "test_pipelines.py",
    "test_training_common.py",
]


@pytest.mark.slow
@pytest.mark.parametrize(("capability", "isa"), [("avx2", "AVX2"), ("default", "SSE41")])
def test_tests_pass_with_the_kernels_capped(capability, isa):
    env = {**os.environ, "ATEN_CPU_CAPABILITY": capability, "ONEDNN_MAX_CPU_ISA": isa}
    probe = "import torch; print(torch.backends.cpu.get_cpu_capability())"
    kernels = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert kernels.stdout.strip() == capability.upper()  # the cap took effect
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-p", "no:cacheprovider", "-m", "not slow"]
    files = [str(TESTS / name) for name in CAPPED_TEST_FILES]
    result = subprocess.run(
        [*command, *files], cwd=TESTS.parent, env=env, capture_output=True, text=True, timeout=1800
    )
    output = f"{result.stdout[-6000:]}\n{result.stderr[-2000:]}"
    assert result.returncode == 0, f"with {capability}/{isa} kernels:\n{output}"
