"""benchmarks/gpu_check.sh on a machine without CUDA: a clear refusal, and its fp16 training path run on the CPU."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_check.sh"
TINY_GAN = "--base_channels 8 --latent_dim 8 --train_batch_size 8 --num_sample_images 10"

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the check would run on it")


def gpu_check(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable}
    return subprocess.run(
        ["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=900, env=env, check=False
    )


def test_without_cuda_it_says_so_and_writes_nothing(tmp_path):
    result = gpu_check("--output_dir", str(tmp_path / "check"))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "no CUDA device" in result.stderr
    assert not (tmp_path / "check").exists()


def fp16_autocast_runs_on_cpu() -> bool:
    try:
        with torch.autocast("cpu", dtype=torch.float16):
            return (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float16
    except RuntimeError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not fp16_autocast_runs_on_cpu(), reason="this torch has no fp16 autocast on CPU")
def test_fp16_training_path_runs_on_the_cpu(tmp_path):
    output_dir = tmp_path / "check"
    result = gpu_check(
        *("--allow_cpu", "--steps", "2", "--scripts", "train_gan", "--precisions", "fp16", "--parts", "train"),
        *("--extra_args", TINY_GAN, "--output_dir", str(output_dir)),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((output_dir / "summary.json").read_text())
    [run] = summary["training"]
    assert (run["name"], run["precision"], run["status"], run["steps"]) == ("train_gan-fp16-cpu", "fp16", "ok", 2)
    assert "Mixed precision type: fp16" in Path(run["log"]).read_text()
    assert (output_dir / "train_gan-fp16-cpu" / "diffusion_pytorch_model.safetensors").is_file()
