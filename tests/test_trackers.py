"""`--report_to` when a tracker is not installed: accelerate alone drops it without a word."""

import subprocess
import sys
from pathlib import Path

import pytest
from scripts import run_script

REPO = Path(__file__).resolve().parents[1]
TRAIN_GAN = REPO / "examples" / "train_gan.py"
TINY_GAN = [
    "--dataset_name", str(REPO / "tests" / "fixtures" / "fashion_mnist_1k.npz"), "--base_channels", "4",
    "--latent_dim", "4", "--train_batch_size", "4", "--num_sample_images", "4", "--max_train_samples", "8",
    "--max_train_steps", "1", "--checkpointing_steps", "1", "--seed", "0", "--mixed_precision", "no",
]  # fmt: skip
# importlib.util.find_spec answers None for a module set to None in sys.modules, as for one that is not installed
WITHOUT_TENSORBOARD = """
import runpy, sys
sys.modules["tensorboard"] = sys.modules["tensorboardX"] = None
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def train_without_tensorboard(tmp_path: Path, *flags: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", WITHOUT_TENSORBOARD, str(TRAIN_GAN), *TINY_GAN, *flags]
    command += ["--output_dir", str(tmp_path / "gan")]
    return run_script(command, cwd=REPO)


@pytest.mark.parametrize("report_to", ["tensorboard", "wandb,tensorboard"])
def test_a_named_tracker_that_is_not_installed_is_an_error(tmp_path, report_to):
    result = train_without_tensorboard(tmp_path, "--report_to", report_to)
    assert result.returncode == 2, result.stderr
    assert "tensorboard is not installed" in result.stderr and "--report_to none" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "gan").exists()


def test_the_default_tracker_missing_is_a_warning_and_training_goes_on(tmp_path):
    result = train_without_tensorboard(tmp_path)
    assert result.returncode == 0, result.stderr
    assert "tensorboard is not installed, so nothing is logged there (pip install 'hf-vaegan[train]'" in result.stderr
    assert (tmp_path / "gan" / "config.json").is_file()
    assert not list((tmp_path / "gan").rglob("events.out.tfevents*"))


def test_the_default_tracker_logs_when_installed(tmp_path):
    command = [sys.executable, str(TRAIN_GAN), *TINY_GAN, "--output_dir", str(tmp_path / "gan")]
    result = run_script(command, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert "is not installed" not in result.stderr
    assert list((tmp_path / "gan" / "logs").rglob("events.out.tfevents*"))
