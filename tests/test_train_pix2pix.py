"""`examples/train_pix2pix.py` end to end, in subprocesses, on tiny models and sketch pairs of the 1k fixture."""

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
from scripts import run_script

from hf_vaegan.data.sketch import make_sketch_pairs
from hf_vaegan.models.patch_discriminator import PatchDiscriminator
from hf_vaegan.pipelines.pipeline_image_to_image import ImageToImagePipeline

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "examples" / "train_pix2pix.py"
FIXTURE = REPO / "tests" / "fixtures" / "fashion_mnist_1k.npz"
TINY = ["--base_channels", "4", "--num_residual_blocks", "1", "--train_batch_size", "8", "--num_sample_images", "6"]
WEIGHTS = "diffusion_pytorch_model.safetensors"


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> Path:
    """40 sketch/garment pairs of the fixture, saved as make_sketch_dataset.py does."""
    with np.load(FIXTURE) as arrays:
        images, labels = arrays["images"][:40], arrays["labels"][:40]
    path = tmp_path_factory.mktemp("data") / "sketch-pairs"
    datasets.DatasetDict({"train": make_sketch_pairs(images, labels, seed=0)}).save_to_disk(str(path))
    return path


def train(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, str(SCRIPT), *TINY, "--seed", "0", "--report_to", "none", *args]
    return run_script(command, cwd=REPO, env=env)


def check(result: subprocess.CompletedProcess) -> str:
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output


def load_weights(output_dir: Path) -> dict[str, torch.Tensor]:
    weights = {f"generator.{k}": v for k, v in load_file(output_dir / WEIGHTS).items()}
    weights |= {f"discriminator.{k}": v for k, v in load_file(output_dir / "discriminator" / WEIGHTS).items()}
    return weights


def test_trains_and_saves_a_pipeline_ready_model(pairs, tmp_path):
    output_dir = tmp_path / "sketch2garment"
    output = check(
        train(
            "--dataset_name", str(pairs), "--output_dir", str(output_dir), "--max_train_steps", "3",
            "--checkpointing_steps", "2", "--sample_steps", "2", "--mixed_precision", "bf16", "--channels_last",
            "--loss", "hinge", "--feature_matching_weight", "10", "--diffaugment", "translation,cutout",
            "--spectral_norm",
        )
    )  # fmt: skip
    assert "Mixed precision type: bf16" in output
    assert "40 training pairs, 1 -> 1 channel(s)" in output
    assert sorted(p.name for p in output_dir.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-3"]
    assert sorted(p.name for p in (output_dir / "samples").iterdir()) == ["step-0000002.png", "step-0000003.png"]
    # 6 examples in one block of 6 columns: sketch, output and target rows.
    assert Image.open(output_dir / "samples.png").size == (6 * 28, 3 * 28)
    weights = load_weights(output_dir)
    assert all(tensor.dtype == torch.float32 and torch.isfinite(tensor).all() for tensor in weights.values())

    pipe = ImageToImagePipeline.from_pretrained(output_dir)
    config = pipe.generator.config
    assert (config.in_channels, config.out_channels, config.sample_size, config.num_downsamplings) == (1, 1, 28, 2)
    garment = pipe(Image.new("L", (100, 100), 255)).images[0]
    assert garment.size == (28, 28) and garment.mode == "L"
    discriminator = PatchDiscriminator.from_pretrained(output_dir / "discriminator")
    assert discriminator.config.in_channels == 2 and discriminator.config.spectral_norm
    assert discriminator.config.num_layers == 2

    card = (output_dir / "README.md").read_text().replace("\n\n", "\n")
    assert "pipeline_tag: image-to-image" in card and "![Samples](samples.png)" in card
    assert "| loss | hinge + 100.0 x L1 + 10.0 x feature matching |" in card
    assert "accelerate launch examples/train_pix2pix.py --base_channels 4" in card
    assert "40 pairs `sketch` -> `image`, at 28x28" in card


def test_rgb_targets_and_explicit_columns(tmp_path):
    # Any paired dataset: here RGB targets in columns named "edges" and "photo", at 32x32.
    rng = np.random.default_rng(0)
    photos = rng.integers(0, 255, (12, 40, 40, 3), dtype=np.uint8)
    edges = rng.integers(0, 255, (12, 40, 40), dtype=np.uint8)
    features = datasets.Features({"edges": datasets.Image(), "photo": datasets.Image()})
    dataset = datasets.Dataset.from_dict({"edges": list(edges), "photo": list(photos)}, features=features)
    dataset.save_to_disk(str(tmp_path / "data"))
    output_dir = tmp_path / "edges2photos"
    check(
        train(
            "--dataset_name", str(tmp_path / "data"), "--source_column", "edges", "--target_column", "photo",
            "--resolution", "32", "--output_dir", str(output_dir), "--max_train_steps", "2", "--ema_decay", "0",
        )
    )  # fmt: skip
    pipe = ImageToImagePipeline.from_pretrained(output_dir)
    assert (pipe.generator.config.in_channels, pipe.generator.config.out_channels) == (1, 3)
    assert pipe.generator.config.num_downsamplings == 3
    assert pipe(np.zeros((32, 32), np.uint8), output_type="np").images.shape == (1, 32, 32, 3)


@pytest.mark.slow
def test_resume_after_sigkill_ends_with_the_same_weights(pairs, tmp_path):
    flags = [
        "--dataset_name", str(pairs), "--max_train_steps", "6", "--checkpointing_steps", "3",
        "--sample_steps", "3", "--diffaugment", "translation,cutout,color", "--ema_decay", "0.9",
        "--feature_matching_weight", "1", "--mixed_precision", "no",
    ]  # fmt: skip
    check(train(*flags, "--output_dir", str(tmp_path / "uninterrupted")))

    interrupted = tmp_path / "interrupted"
    command = [sys.executable, str(SCRIPT), *TINY, "--seed", "0", "--report_to", "none", *flags]
    killed = kill_when([*command, "--output_dir", str(interrupted)], interrupted / "checkpoint-3")
    assert killed.returncode == -9, killed.stderr
    assert [p.name for p in interrupted.glob("checkpoint-*")] == ["checkpoint-3"]
    output = check(train(*flags, "--output_dir", str(interrupted), "--resume_from_checkpoint", "latest"))
    assert "Resumed from" in output

    expected, resumed = load_weights(tmp_path / "uninterrupted"), load_weights(interrupted)
    assert expected.keys() == resumed.keys()
    assert not [name for name in expected if not torch.equal(expected[name], resumed[name])]


def test_divergence_stops_the_run_and_saves_no_weights(pairs, tmp_path):
    output_dir = tmp_path / "diverged"
    result = train(
        "--dataset_name", str(pairs), "--output_dir", str(output_dir), "--max_train_steps", "10",
        "--generator_learning_rate", "1e30", "--discriminator_learning_rate", "1e30",
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: training diverged at step")
    assert not (output_dir / WEIGHTS).exists()


@pytest.fixture(scope="module")
def script_module():
    spec = importlib.util.spec_from_file_location("train_pix2pix", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--resolution", "30", "--num_downsamplings", "2"], "--resolution 30x30 must be a multiple of 2**"),
        (["--num_downsamplings", "3"], "--resolution 28x28 must be a multiple of 2**--num_downsamplings = 8"),
        (["--discriminator_num_layers", "4"], "--discriminator_num_layers 4 does not fit 28x28 images"),
        (["--loss", "wgan-gp"], "argument --loss: invalid choice: 'wgan-gp'"),
        (["--diffaugment", "translation,blur"], "unknown DiffAugment operation(s) ['blur']"),
        (["--l1_weight", "-1"], "--l1_weight must be >= 0"),
        (["--base_channels", "0"], "--base_channels must be a positive integer"),
    ],
)
def test_bad_flags_fail_before_anything_runs(script_module, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        script_module.parse_args(["--dataset_name", "pairs", *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_bad_data_fails_with_a_clear_message(pairs, tmp_path):
    result = train("--dataset_name", str(pairs), "--source_column", "drawing", "--output_dir", str(tmp_path / "x"))
    assert result.returncode == 1
    assert "source column 'drawing' does not exist" in result.stderr and "Traceback" not in result.stderr
