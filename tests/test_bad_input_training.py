"""Bad input to the training layer: each case gets a clear error naming the problem, and nothing on disk changes.

Data (labels outside the classes), flags (an output folder that is a file), and checkpoints (missing, truncated,
zeroed or overwritten files; a full disk while saving; `--resume_from_checkpoint latest` over a damaged newest
checkpoint). The checkpoint cases run in-process on a tiny model; the ones about what a user sees run
`examples/train_gan.py` in a subprocess.
"""

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState, GradientState
from scripts import run_script

from hf_vaegan.data.loading import load_image_dataset
from hf_vaegan.training import CheckpointError, register_training_state, save_checkpoint
from hf_vaegan.training.checkpoints import MANIFEST_NAME, load_checkpoint, resolve_checkpoint

REPO = Path(__file__).resolve().parents[1]
TRAIN_GAN = REPO / "examples" / "train_gan.py"
FIXTURE = REPO / "tests" / "fixtures" / "fashion_mnist_1k.npz"
TINY_GAN = [
    "--base_channels", "4", "--latent_dim", "4", "--train_batch_size", "4", "--num_sample_images", "10",
    "--max_train_samples", "40", "--seed", "0", "--report_to", "none", "--mixed_precision", "no",
]  # fmt: skip


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` -> its SHA-256, to show that nothing changed."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def train_gan(*args: str) -> subprocess.CompletedProcess:
    return run_script([sys.executable, str(TRAIN_GAN), *TINY_GAN, *args], cwd=REPO)


def assert_clean_error(result: subprocess.CompletedProcess, message: str, status: int = 1) -> None:
    assert result.returncode == status, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


# Data


def save_npz(path: Path, labels: list[int], **arrays) -> Path:
    images = np.zeros((len(labels), 28, 28), np.uint8)
    np.savez(path, images=images, labels=np.array(labels), **arrays)
    return path


def test_a_stray_label_does_not_make_a_thousand_class_model(tmp_path):
    labels = [index % 10 for index in range(40)]
    labels[7] = 1000
    data = save_npz(tmp_path / "labels.npz", labels)
    before = snapshot(tmp_path)
    result = train_gan("--dataset_name", str(data), "--output_dir", str(tmp_path / "gan"), "--max_train_steps", "1")
    assert_clean_error(result, "go up to 1000 (e.g. at index 7) but only 11 of the 1001 classes 0..1000 occur")
    assert snapshot(tmp_path) == before and not (tmp_path / "gan").exists()


def test_labels_beyond_the_class_names_or_the_classes_of_a_column_are_refused(tmp_path):
    data = save_npz(tmp_path / "named.npz", [0, 1, 3], class_names=np.array(["a", "b", "c"]))
    with pytest.raises(ValueError, match="go up to 3 but there are only 3 class_names"):
        load_image_dataset(str(data))
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b"])})
    images = [np.zeros((4, 4), np.uint8)] * 3
    datasets.Dataset.from_dict({"image": images, "label": [0, 1, -1]}, features=features).save_to_disk(tmp_path / "d")
    with pytest.raises(ValueError, match=r"holds the label -1 at index 2, outside its 2 classes \['a', 'b'\]"):
        load_image_dataset(str(tmp_path / "d"))


def test_a_few_empty_classes_are_kept_with_a_warning(tmp_path, caplog):
    info = load_image_dataset(str(save_npz(tmp_path / "gap.npz", [0, 2, 2, 3])))
    assert info.num_classes == 4 and "no example of the classes [1] of 0..3" in caplog.text


def test_num_classes_below_the_datasets_classes_is_refused(tmp_path):
    result = train_gan("--dataset_name", str(FIXTURE), "--num_classes", "4", "--output_dir", str(tmp_path / "gan"))
    assert_clean_error(result, "--num_classes 4 is fewer than the dataset's 10 classes")
    assert not (tmp_path / "gan").exists()


# Flags


@pytest.mark.parametrize("where", ["file", "under a file"])
def test_an_output_dir_that_is_a_file_is_a_clear_error(tmp_path, where):
    existing = tmp_path / "notes.txt"
    existing.write_text("not a folder")
    output_dir = existing if where == "file" else existing / "gan"
    result = train_gan("--dataset_name", str(FIXTURE), "--output_dir", str(output_dir))
    expected = "is a file, not a folder" if where == "file" else "which is a file"
    assert_clean_error(result, f"--output_dir {str(output_dir)!r} ", status=2)
    assert expected in result.stderr
    assert existing.read_text() == "not a folder" and sorted(os.listdir(tmp_path)) == ["notes.txt"]


# Checkpoints, in-process


@pytest.fixture
def accelerator():
    yield Accelerator(cpu=True)
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


class Counter:
    """A named piece of training state."""

    def __init__(self):
        self.value = torch.zeros(3)

    def state_dict(self):
        return {"value": self.value}

    def load_state_dict(self, state_dict):
        self.value = state_dict["value"]


@pytest.fixture
def run(accelerator, tmp_path):
    """A prepared model, optimizer and scheduler with checkpoints at steps 2 and 4 in ``tmp_path/run``."""
    model = torch.nn.Linear(8, 8)
    optimizer = torch.optim.Adam(model.parameters())
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    register_training_state(accelerator, "counter", Counter())
    output_dir = tmp_path / "run"
    for step in (2, 4):
        with torch.no_grad():
            model.weight.add_(1.0)
        save_checkpoint(accelerator, output_dir, step)
    return accelerator, model, output_dir


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def zero(path: Path) -> None:
    path.write_bytes(bytes(path.stat().st_size))


DAMAGES = {
    "missing model": ("model.safetensors", Path.unlink, "is incomplete: model.safetensors is missing"),
    "truncated model": ("model.safetensors", truncate, "is damaged: model.safetensors has"),
    "zeroed model": ("model.safetensors", zero, "is damaged: model.safetensors is not a safetensors file"),
    "missing optimizer": ("optimizer.bin", Path.unlink, "is incomplete: optimizer.bin is missing"),
    "truncated optimizer": ("optimizer.bin", truncate, "is damaged: optimizer.bin has"),
    "zeroed scheduler": ("scheduler.bin", zero, "is damaged: scheduler.bin is not a readable torch.save archive"),
    "missing RNG": ("random_states_0.pkl", Path.unlink, "is incomplete: random_states_0.pkl is missing"),
    "zeroed state": ("training_state.safetensors", zero, "is damaged: training_state.safetensors is not a safe"),
}


@pytest.mark.parametrize("damage", DAMAGES)
def test_every_checkpoint_error_names_the_checkpoint_and_the_file(run, damage):
    accelerator, model, output_dir = run
    name, spoil, message = DAMAGES[damage]
    checkpoint = output_dir / "checkpoint-4"
    spoil(checkpoint / name)
    before, weights = snapshot(output_dir), model.weight.detach().clone()
    with pytest.raises(CheckpointError, match=f"checkpoint {checkpoint} {message}"):
        load_checkpoint(accelerator, checkpoint)
    assert snapshot(output_dir) == before and torch.equal(model.weight, weights)


def test_an_overwritten_file_of_the_same_size_is_caught_by_its_hash(run):
    accelerator, _, output_dir = run
    path = output_dir / "checkpoint-4" / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # a flipped bit in the last weight: the header still parses
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="model.safetensors is overwritten"):
        load_checkpoint(accelerator, path.parent)


def test_checkpoints_without_a_manifest_get_structural_checks(run):
    accelerator, _, output_dir = run
    checkpoint = output_dir / "checkpoint-4"
    (checkpoint / MANIFEST_NAME).unlink()
    load_checkpoint(accelerator, checkpoint)  # intact: loads
    truncate(checkpoint / "model.safetensors")
    with pytest.raises(CheckpointError, match="model.safetensors is truncated to"):
        load_checkpoint(accelerator, checkpoint)
    (checkpoint / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match=f"cannot resume from {checkpoint}: model.safetensors is missing"):
        load_checkpoint(accelerator, checkpoint)


def test_latest_skips_a_damaged_newest_checkpoint_with_a_warning(run, caplog):
    _, _, output_dir = run
    truncate(output_dir / "checkpoint-4" / "optimizer.bin")
    before = snapshot(output_dir)
    with caplog.at_level("WARNING"):
        assert resolve_checkpoint(output_dir, "latest") == output_dir / "checkpoint-2"
    assert "Skipping checkpoint-4" in caplog.text and "optimizer.bin has" in caplog.text
    zero(output_dir / "checkpoint-2" / "model.safetensors")
    with pytest.raises(CheckpointError, match="no intact checkpoint in .*checkpoint-4.*optimizer.bin.*checkpoint-2"):
        resolve_checkpoint(output_dir, "latest")
    assert snapshot(output_dir).keys() == before.keys()


def test_a_checkpoint_of_another_model_is_refused_by_name(accelerator, tmp_path):
    model = accelerator.prepare(torch.nn.Linear(8, 8))
    register_training_state(accelerator, "counter", Counter())
    checkpoint = save_checkpoint(accelerator, tmp_path, 1)
    other = Accelerator(cpu=True)
    other.prepare(torch.nn.Linear(8, 3))
    register_training_state(other, "counter", Counter())
    with pytest.raises(CheckpointError, match=f"cannot resume from {checkpoint}: it does not match this run"):
        load_checkpoint(other, checkpoint)
    assert model.weight.shape == (8, 8)


DISK_FULL = """
import resource, signal, sys, torch
from accelerate import Accelerator
from hf_vaegan.training import CheckpointError, save_checkpoint

accelerator = Accelerator(cpu=True)
model = accelerator.prepare(torch.nn.Linear(64, 64))
save_checkpoint(accelerator, sys.argv[1], 1)
# Files may not grow past 4 KiB from here on: the next save fails half-way, as on a full disk.
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))
try:
    save_checkpoint(accelerator, sys.argv[1], 2)
except CheckpointError as error:
    sys.exit(f"error: {error}")
"""


def test_a_failed_save_leaves_no_partial_folder_and_the_previous_checkpoint_intact(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", DISK_FULL, str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert_clean_error(result, f"error: could not write checkpoint {tmp_path / 'checkpoint-2'}: ")
    assert "File too large" in result.stderr and "checkpoint-1 is intact" in result.stderr
    assert sorted(os.listdir(tmp_path)) == ["checkpoint-1"]
    assert resolve_checkpoint(tmp_path, "latest") == tmp_path / "checkpoint-1"  # verified intact


# Checkpoints, as the scripts report them


@pytest.fixture(scope="module")
def gan_run(tmp_path_factory) -> Path:
    """A finished 4-step train_gan.py run with checkpoints at steps 2 and 4."""
    output_dir = tmp_path_factory.mktemp("gan") / "run"
    result = train_gan(
        "--dataset_name", str(FIXTURE), "--output_dir", str(output_dir), "--max_train_steps", "4",
        "--checkpointing_steps", "2",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return output_dir


def copy_run(gan_run: Path, tmp_path: Path) -> Path:
    output_dir = tmp_path / "run"
    shutil.copytree(gan_run, output_dir)
    return output_dir


def test_the_script_names_a_damaged_checkpoint_and_writes_nothing(gan_run, tmp_path):
    output_dir = copy_run(gan_run, tmp_path)
    checkpoint = output_dir / "checkpoint-2"
    truncate(checkpoint / "model_1.safetensors")
    before = snapshot(output_dir)
    result = train_gan(
        "--dataset_name", str(FIXTURE), "--output_dir", str(output_dir), "--max_train_steps", "6",
        "--resume_from_checkpoint", str(checkpoint),
    )  # fmt: skip
    assert_clean_error(result, f"error: checkpoint {checkpoint} is damaged: model_1.safetensors has")
    assert snapshot(output_dir) == before


def test_latest_resumes_from_the_newest_intact_checkpoint(gan_run, tmp_path):
    output_dir = copy_run(gan_run, tmp_path)
    (output_dir / "checkpoint-4" / "optimizer.bin").unlink()
    result = train_gan(
        "--dataset_name", str(FIXTURE), "--output_dir", str(output_dir), "--max_train_steps", "4",
        "--checkpointing_steps", "2", "--resume_from_checkpoint", "latest",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"Skipping checkpoint-4: checkpoint {output_dir / 'checkpoint-4'} is incomplete: optimizer.bin" in (
        result.stderr
    )
    assert f"Resumed from {output_dir / 'checkpoint-2'} (step 2" in result.stderr
    resolve_checkpoint(output_dir, "latest")  # the rewritten checkpoint-4 is intact
    assert (output_dir / "checkpoint-4" / "optimizer.bin").is_file()
