"""`examples/train_cyclegan.py` end to end, in subprocesses, on tiny models and the 1k Fashion-MNIST fixture."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from crash import kill_when
from PIL import Image
from safetensors.torch import load_file
from scripts import CPU_PROCESSES_ENV, accelerate_launcher, run_script

from hf_vaegan.models.patch_discriminator import PatchDiscriminator
from hf_vaegan.models.unet_generator import UNetGenerator
from hf_vaegan.pipelines.pipeline_image_to_image import ImageToImagePipeline

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "examples" / "train_cyclegan.py"
FIXTURE = REPO / "tests" / "fixtures" / "fashion_mnist_1k.npz"
TINY = ["--base_channels", "4", "--num_residual_blocks", "1", "--train_batch_size", "4", "--num_sample_images", "4"]
SNEAKERS_TO_BOOTS = ["--dataset_name", str(FIXTURE), "--domain_a_classes", "7", "--domain_b_classes", "9"]
WEIGHTS = "diffusion_pytorch_model.safetensors"
SUBFOLDERS = ("", "generator_b_to_a", "discriminator_a", "discriminator_b")


def train(*args: str, env: dict | None = None, launcher: list[str] | None = None) -> subprocess.CompletedProcess:
    command = [*(launcher or [sys.executable]), str(SCRIPT), *TINY, "--seed", "0", "--report_to", "none", *args]
    return run_script(command, cwd=REPO, env=env)


def check(result: subprocess.CompletedProcess) -> str:
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output


def load_weights(output_dir: Path) -> dict[str, torch.Tensor]:
    return {
        f"{subfolder}.{name}": tensor
        for subfolder in SUBFOLDERS
        for name, tensor in load_file(output_dir / subfolder / WEIGHTS).items()
    }


def test_trains_between_two_classes_and_saves_four_models(tmp_path):
    output_dir = tmp_path / "sneaker2boot"
    output = check(
        train(
            *SNEAKERS_TO_BOOTS, "--output_dir", str(output_dir), "--max_train_steps", "3", "--checkpointing_steps",
            "3", "--sample_steps", "2", "--mixed_precision", "bf16", "--replay_buffer_size", "6",
        )
    )  # fmt: skip
    with np.load(FIXTURE) as arrays:
        counts = np.bincount(arrays["labels"], minlength=10)
    assert f"{counts[7]} images in domain A (1 channel(s)), {counts[9]} in domain B (1)" in output
    assert [p.name for p in output_dir.glob("checkpoint-*")] == ["checkpoint-3"]
    # 4 examples per domain in one block of 4 columns: A, A->B, A->B->A, B, B->A, B->A->B rows.
    assert Image.open(output_dir / "samples.png").size == (4 * 28, 6 * 28)
    assert all(torch.isfinite(tensor).all() for tensor in load_weights(output_dir).values())

    sneaker = Image.new("L", (28, 28))
    boot = ImageToImagePipeline.from_pretrained(output_dir)(sneaker).images[0]
    back = ImageToImagePipeline.from_pretrained(output_dir / "generator_b_to_a")(boot).images[0]
    assert boot.size == back.size == (28, 28)
    for name in ("discriminator_a", "discriminator_b"):
        assert PatchDiscriminator.from_pretrained(output_dir / name).config.in_channels == 1
    card = (output_dir / "README.md").read_text().replace("\n\n", "\n")
    assert "A: `image` of" in card and "classes 7" in card and "classes 9" in card
    assert "| loss | non-saturating + 10.0 x cycle L1 + 5.0 x identity L1 |" in card


def test_two_image_columns_with_different_channels(tmp_path):
    # A dataset with one column per domain (the layout of many CycleGAN datasets on the Hub): greyscale <-> RGB.
    rng = np.random.default_rng(0)
    features = datasets.Features({"imageA": datasets.Image(), "imageB": datasets.Image()})
    columns = {
        "imageA": list(rng.integers(0, 255, (6, 32, 32), dtype=np.uint8)),
        "imageB": list(rng.integers(0, 255, (6, 36, 30, 3), dtype=np.uint8)),
    }
    datasets.Dataset.from_dict(columns, features=features).save_to_disk(str(tmp_path / "data"))
    output_dir = tmp_path / "gray2rgb"
    output = check(
        train(
            "--dataset_name", str(tmp_path / "data"), "--image_column", "imageA", "--image_column_b", "imageB",
            "--resolution", "32", "--output_dir", str(output_dir), "--max_train_steps", "2",
        )
    )  # fmt: skip
    assert "No identity loss: the domains have 1 and 3 channels" in output
    a_to_b = UNetGenerator.from_pretrained(output_dir)
    b_to_a = UNetGenerator.from_pretrained(output_dir / "generator_b_to_a")
    assert (a_to_b.config.in_channels, a_to_b.config.out_channels) == (1, 3)
    assert (b_to_a.config.in_channels, b_to_a.config.out_channels) == (3, 1)
    card = (output_dir / "README.md").read_text().replace("\n\n", "\n")
    assert "| loss | non-saturating + 10.0 x cycle L1 |" in card


@pytest.mark.slow
def test_two_processes(tmp_path):
    # Each prepared generator runs forward once per backward (the cycle's second pass uses the bare model): DDP-safe.
    output_dir = tmp_path / "ddp"
    output = check(
        train(
            *SNEAKERS_TO_BOOTS, "--output_dir", str(output_dir), "--max_train_steps", "3", "--checkpointing_steps",
            "2", "--replay_buffer_size", "4", env=CPU_PROCESSES_ENV, launcher=accelerate_launcher(),
        )
    )  # fmt: skip
    assert "Training: 3 steps of 8 images (2 processes x 4 per batch x 1 accumulated)" in output
    assert all(torch.isfinite(tensor).all() for tensor in load_weights(output_dir).values())


@pytest.mark.slow
def test_resume_after_sigkill_ends_with_the_same_weights(tmp_path):
    # The replay buffers are part of the checkpoint: without them the resumed discriminators would diverge.
    flags = [
        *SNEAKERS_TO_BOOTS, "--max_train_samples", "300", "--max_train_steps", "6", "--checkpointing_steps", "3",
        "--sample_steps", "3", "--replay_buffer_size", "4", "--ema_decay", "0.9", "--diffaugment", "translation",
        "--mixed_precision", "no",
    ]  # fmt: skip
    check(train(*flags, "--output_dir", str(tmp_path / "uninterrupted")))

    interrupted = tmp_path / "interrupted"
    command = [sys.executable, str(SCRIPT), *TINY, "--seed", "0", "--report_to", "none", *flags]
    killed = kill_when([*command, "--output_dir", str(interrupted)], interrupted / "checkpoint-3")
    assert killed.returncode == -9, killed.stderr
    output = check(train(*flags, "--output_dir", str(interrupted), "--resume_from_checkpoint", "latest"))
    assert "Resumed from" in output

    expected, resumed = load_weights(tmp_path / "uninterrupted"), load_weights(interrupted)
    assert expected.keys() == resumed.keys()
    assert not [name for name in expected if not torch.equal(expected[name], resumed[name])]


@pytest.fixture(scope="module")
def script_module():
    spec = importlib.util.spec_from_file_location("train_cyclegan", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "domains A and B are the same images"),
        (["--domain_a_classes", "7", "--domain_b_classes", "7"], "domains A and B are the same images"),
        (["--domain_a_classes", " , "], "expected comma-separated class names or ids"),
        (["--domain_a_classes", "7", "--cycle_weight", "-1"], "--cycle_weight must be >= 0"),
        (
            ["--domain_a_classes", "7", "--resolution", "30x28", "--num_downsamplings", "2"],
            "must be a multiple of 2**",
        ),
    ],
)
def test_bad_flags_fail_before_anything_runs(script_module, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        script_module.parse_args(["--dataset_name", str(FIXTURE), *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_unknown_class_fails_with_a_clear_message(tmp_path):
    result = train(
        "--dataset_name", str(FIXTURE), "--domain_a_classes", "7", "--domain_b_classes", "Boot",
        "--output_dir", str(tmp_path / "x"),
    )  # fmt: skip
    assert result.returncode == 1
    assert "unknown class 'Boot'" in result.stderr and "Traceback" not in result.stderr
