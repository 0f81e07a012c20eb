"""`examples/train_gan.py` end to end, in subprocesses, on tiny models and the 1k Fashion-MNIST fixture."""

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from crash import kill_when
from huggingface_hub import ModelCard, list_repo_files
from PIL import Image
from safetensors.torch import load_file
from scripts import CPU_PROCESSES_ENV, accelerate_launcher, run_script

from hf_vaegan import Discriminator, Generator
from hf_vaegan.data.loading import load_image_dataset
from hf_vaegan.training.evaluation import load_evaluation_reference

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "examples" / "train_gan.py"
FIXTURE = REPO / "tests" / "fixtures" / "fashion_mnist_1k.npz"
# Run in a subprocess where `import hf_vaegan` fails: the card's snippet needs only diffusers.
WITHOUT_HF_VAEGAN = "import sys; sys.modules['hf_vaegan'] = None\n"
TINY = ["--base_channels", "8", "--latent_dim", "8", "--train_batch_size", "8", "--num_sample_images", "10"]
WEIGHTS = "diffusion_pytorch_model.safetensors"


def command(*args: str, launcher: list[str] | None = None) -> list[str]:
    return [*(launcher or [sys.executable]), str(SCRIPT), *TINY, "--seed", "0", *args]


def train(*args: str, env: dict | None = None, launcher: list[str] | None = None) -> subprocess.CompletedProcess:
    return run_script(command(*args, launcher=launcher), cwd=REPO, env=env)


def check(result: subprocess.CompletedProcess) -> str:
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output


def load_weights(output_dir: Path) -> dict[str, torch.Tensor]:
    weights = {f"generator.{k}": v for k, v in load_file(output_dir / WEIGHTS).items()}
    weights |= {f"discriminator.{k}": v for k, v in load_file(output_dir / "discriminator" / WEIGHTS).items()}
    return weights


@pytest.mark.slow
def test_two_processes_train_checkpoint_and_save(tmp_path):
    output_dir = tmp_path / "gan"
    output = check(
        train(
            "--dataset_name", str(FIXTURE), "--output_dir", str(output_dir), "--max_train_steps", "4",
            "--checkpointing_steps", "2", "--sample_steps", "2", "--r1_interval", "2",
            env=CPU_PROCESSES_ENV, launcher=accelerate_launcher(),
        )
    )  # fmt: skip
    assert "DistributedType.MULTI_CPU" in output
    assert "Training: 4 steps of 16 images (2 processes x 8 per batch x 1 accumulated)" in output
    # Each process wrote its own RNG state into the checkpoints.
    for step in (2, 4):
        saved = {path.name for path in (output_dir / f"checkpoint-{step}").iterdir()}
        assert {"random_states_0.pkl", "random_states_1.pkl"} <= saved
    assert sorted(p.name for p in (output_dir / "samples").iterdir()) == ["step-0000002.png", "step-0000004.png"]
    assert Image.open(output_dir / "samples.png").size == (28, 10 * 28)  # one row per class
    assert list((output_dir / "logs").rglob("events.out.tfevents.*"))

    generator = Generator.from_pretrained(output_dir)
    discriminator = Discriminator.from_pretrained(output_dir, subfolder="discriminator")
    assert generator.config.num_classes == 10 and discriminator.config.num_classes == 10
    images = generator.sample(3, class_labels=torch.tensor([0, 5, 9]))
    assert images.shape == (3, 1, 28, 28) and images.abs().max() <= 1
    card = (output_dir / "README.md").read_text()
    assert "![Samples](samples.png)" in card and "| loss | non-saturating |" in card.replace("\n\n", "\n")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("crash_at", "delay"),
    [("checkpoint-4", 0.0), (".partial-checkpoint-8", 0.0)],
    ids=["after a checkpoint", "during a save"],
)
def test_resume_after_sigkill_ends_with_the_same_weights(tmp_path, crash_at, delay):
    flags = [
        "--dataset_name", str(FIXTURE), "--max_train_samples", "40", "--max_train_steps", "8",
        "--gradient_accumulation_steps", "2", "--checkpointing_steps", "4", "--sample_steps", "4",
        "--r1_interval", "2", "--diffaugment", "translation,cutout,color", "--ema_decay", "0.9",
        "--report_to", "none", "--mixed_precision", "no",
    ]  # fmt: skip
    check(train(*flags, "--output_dir", str(tmp_path / "uninterrupted")))

    interrupted = tmp_path / "interrupted"
    # Killed from outside once checkpoint-4 is complete, or in the middle of writing checkpoint-8.
    killed = kill_when(command(*flags, "--output_dir", str(interrupted)), interrupted / crash_at, delay=delay)
    assert killed.returncode == -9, killed.stderr
    assert [p.name for p in interrupted.glob("checkpoint-*")] == ["checkpoint-4"]
    assert not (interrupted / WEIGHTS).exists()
    output = check(train(*flags, "--output_dir", str(interrupted), "--resume_from_checkpoint", "latest"))
    assert "Resumed from" in output and "checkpoint-4 (step 4, epoch 1)" in output

    expected, resumed = load_weights(tmp_path / "uninterrupted"), load_weights(interrupted)
    assert expected.keys() == resumed.keys()
    different = [name for name in expected if not torch.equal(expected[name], resumed[name])]
    assert not different


def write_image_folder(root: Path) -> None:
    """Two classes of images of mixed sizes and modes, which the script must convert rather than refuse."""
    rng = np.random.default_rng(0)
    modes = ["RGB", "L", "RGBA", "P", "I;16"]
    for label in ("shirt", "shoe"):
        (root / label).mkdir(parents=True)
        for index in range(10):
            size = (20 + 7 * index, 30 + 3 * index)
            pixels = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
            image = Image.fromarray(pixels).convert(modes[index % len(modes)])
            image.save(root / label / f"{index}.png")


@pytest.mark.parametrize("kind", ["npz", "folder", "save_to_disk"])
def test_each_dataset_kind_trains(tmp_path, kind):
    if kind == "npz":
        dataset_name = FIXTURE
    elif kind == "folder":
        dataset_name = tmp_path / "images"
        write_image_folder(dataset_name)
    else:
        with np.load(FIXTURE) as arrays:
            images, labels = arrays["images"][:32], arrays["labels"][:32]
        features = datasets.Features({"picture": datasets.Image(), "kind": datasets.ClassLabel(num_classes=10)})
        dataset = datasets.Dataset.from_dict({"picture": list(images), "kind": labels.tolist()}, features=features)
        dataset_name = tmp_path / "saved"
        datasets.DatasetDict({"train": dataset}).save_to_disk(str(dataset_name))
    output_dir = tmp_path / "gan"
    check(
        train(
            "--dataset_name", str(dataset_name), "--output_dir", str(output_dir), "--max_train_steps", "2",
            "--report_to", "none",
        )
    )  # fmt: skip
    generator = Generator.from_pretrained(output_dir)
    assert generator.config.num_classes == {"npz": 10, "folder": 2, "save_to_disk": 10}[kind]
    # The channels follow the first image: RGB in the folder, whose grayscale and RGBA images are converted.
    assert generator.config.out_channels == (3 if kind == "folder" else 1)
    assert (output_dir / "checkpoint-2").is_dir()


def save_fixture_splits(path: Path, sizes: dict[str, int]) -> None:
    with np.load(FIXTURE) as arrays:
        images, labels = arrays["images"], arrays["labels"]
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(num_classes=10)})
    splits, start = {}, 0
    for split, size in sizes.items():
        columns = {"image": list(images[start : start + size]), "label": labels[start : start + size].tolist()}
        splits[split] = datasets.Dataset.from_dict(columns, features=features)
        start += size
    datasets.DatasetDict(splits).save_to_disk(str(path))


def test_eval_steps_log_fid_against_the_held_out_split_and_fill_the_card(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    dataset_name, output_dir = tmp_path / "saved", tmp_path / "gan"
    save_fixture_splits(dataset_name, {"train": 64, "test": 100})
    output = check(
        train(
            "--dataset_name", str(dataset_name), "--output_dir", str(output_dir), "--max_train_steps", "3",
            "--eval_steps", "2", "--eval_num_samples", "64",
            env={"HF_VAEGAN_CACHE": str(tmp_path / "cache")},
        )
    )  # fmt: skip
    assert "64 generated images against the 100 held-out images of the `test` split" in output
    events = EventAccumulator(str(next((output_dir / "logs").rglob("events.out.tfevents.*")).parent))
    events.Reload()
    fid = events.Scalars("eval/fid")
    assert [event.step for event in fid] == [2, 3]  # every 2 steps and at the end
    assert all(0 < event.value < 1e4 for event in fid)
    assert [event.step for event in events.Scalars("eval/class_accuracy")] == [2, 3]
    card = (output_dir / "README.md").read_text()
    assert f"| FID (packaged Fashion-MNIST classifier features) | {fid[-1].value:.3g} |" in card
    assert "64 generated images against the 100 held-out images of the `test` split" in card
    assert list((tmp_path / "cache" / "stats").glob("*test*.npz"))  # reference features cached once


def test_eval_reference_falls_back_to_the_training_images_of_a_single_split_source(train_gan_module, tmp_path):
    args = train_gan_module.parse_args(["--dataset_name", str(FIXTURE), "--eval_steps", "1", "--seed", "0"])
    reference = load_evaluation_reference(args, load_image_dataset(str(FIXTURE)))
    assert not reference.held_out and reference.split == "train"
    assert reference.images.shape == (1000, 1, 28, 28)
    args.eval_split = "test"
    with pytest.raises(ValueError, match="is a .npz file holding one split; pass the held-out images as"):
        load_evaluation_reference(args, load_image_dataset(str(FIXTURE)))

    saved = tmp_path / "saved"
    save_fixture_splits(saved, {"train": 10, "validation": 20})
    args = train_gan_module.parse_args(["--dataset_name", str(saved), "--eval_steps", "1", "--seed", "0"])
    reference = load_evaluation_reference(args, load_image_dataset(str(saved)))
    assert reference.held_out and reference.split == "validation" and len(reference.images) == 20


def test_dcgan_recipe_flags_build_batchnorm_networks(tmp_path):
    output_dir = tmp_path / "dcgan"
    check(
        train(
            "--dataset_name", str(FIXTURE), "--output_dir", str(output_dir), "--max_train_steps", "2",
            "--num_classes", "0", "--generator_norm_type", "batch", "--discriminator_norm_type", "batch",
            "--r1_gamma", "0", "--ema_decay", "0", "--adam_beta1", "0.5", "--adam_beta2", "0.999",
            "--report_to", "none",
        )
    )  # fmt: skip
    generator = Generator.from_pretrained(output_dir)
    discriminator = Discriminator.from_pretrained(output_dir, subfolder="discriminator")
    assert generator.config.norm_type == discriminator.config.norm_type == "batch"
    assert any(isinstance(module, torch.nn.BatchNorm2d) for module in discriminator.modules())
    assert "| norm (G / D) | batch / batch |" in (output_dir / "README.md").read_text()


def test_bf16_mixed_precision_trains_on_cpu(tmp_path):
    output_dir = tmp_path / "gan"
    output = check(
        train(
            "--dataset_name", str(FIXTURE), "--output_dir", str(output_dir), "--max_train_steps", "3",
            "--mixed_precision", "bf16", "--r1_interval", "1", "--loss", "hinge", "--channels_last",
            "--report_to", "none",
        )
    )  # fmt: skip
    assert "Mixed precision type: bf16" in output
    weights = load_weights(output_dir)
    assert all(tensor.dtype == torch.float32 and torch.isfinite(tensor).all() for tensor in weights.values())


def test_wgan_gp_unconditional_trains_and_pushes_to_the_hub(tmp_path, unique_repo_id, run_python):
    output_dir = tmp_path / "gan"
    name = unique_repo_id.split("/")[1]  # a bare name: the Hub puts it under the token's account
    check(
        train(
            "--dataset_name", str(FIXTURE), "--output_dir", str(output_dir), "--max_train_steps", "2",
            "--loss", "wgan-gp", "--num_classes", "0", "--spectral_norm", "--report_to", "none",
            "--push_to_hub", "--hub_model_id", name,
        )
    )  # fmt: skip
    # The pushed repository holds the model, the discriminator and the card, but no checkpoints, logs or samples/.
    files = set(list_repo_files(unique_repo_id))
    assert {"config.json", WEIGHTS, "README.md", "samples.png", "discriminator/config.json"} <= files
    assert not [name for name in files if name.startswith(("checkpoint-", "logs/", "samples/"))]
    assert Generator.from_pretrained(unique_repo_id).config.num_classes == 0
    assert Discriminator.from_pretrained(unique_repo_id, subfolder="discriminator").config.spectral_norm
    card = ModelCard.load(unique_repo_id)
    assert "wgan-gp" in card.text and "R1 gamma" in card.text
    # the card names the full id, written before the push, and its first snippet loads the pushed model
    assert f"\n# {unique_repo_id}\n" in card.text and "![Samples](samples.png)" in card.text
    snippet = re.search(r"```python\n(.*?)```", card.text, re.DOTALL).group(1)
    assert f'"{unique_repo_id}"' in snippet
    result = run_python("-c", WITHOUT_HF_VAEGAN + snippet + "\nprint(tuple(images.shape))", cwd=tmp_path)
    assert result.stdout.strip().splitlines()[-1] == "(8, 1, 28, 28)"


def test_divergence_stops_the_run_and_saves_no_weights(tmp_path):
    output_dir = tmp_path / "gan"
    result = train(
        "--dataset_name", str(FIXTURE), "--output_dir", str(output_dir), "--max_train_steps", "20",
        "--checkpointing_steps", "1", "--generator_learning_rate", "1e30", "--report_to", "none",
    )  # fmt: skip
    assert result.returncode == 1
    message = result.stderr.strip().splitlines()[-1]
    # Step 1 blows the generator's weights up; the discriminator's loss on its images is NaN at step 2.
    assert message.startswith("error: training diverged at step 2: d_loss = nan"), message
    diverged_step = 2
    # Checkpoints before the divergence hold finite weights, and nothing was written at or after it.
    assert not (output_dir / WEIGHTS).exists()
    for checkpoint in output_dir.glob("checkpoint-*"):
        assert int(checkpoint.name.split("-")[1]) < diverged_step
        for name in ("model.safetensors", "model_1.safetensors"):
            assert all(torch.isfinite(t).all() for t in load_file(checkpoint / name).values())


@pytest.fixture(scope="module")
def train_gan_module():
    spec = importlib.util.spec_from_file_location("train_gan", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--loss", "lsgan"], "argument --loss: invalid choice: 'lsgan'"),
        (["--resolution", "48"], "--resolution must be one of (28, 32, 64, 128, 256)"),
        (["--num_classes", "1"], "must be 'auto', 0 (unconditional) or >= 2"),
        (["--diffaugment", "translation,blur"], "unknown DiffAugment operation(s) ['blur']"),
        (["--r1_gamma", "-1"], "--r1_gamma must be >= 0"),
        (["--mixed_precision", "fp8"], "argument --mixed_precision: invalid choice"),
        (["--resume_from_checkpoint", "nowhere/checkpoint-3"], "no such folder"),
        (["--max_train_steps", "0"], "must be a positive integer"),
        (["--generator_norm_type", "layer"], "argument --generator_norm_type: invalid choice: 'layer'"),
        (["--eval_steps", "-1"], "--eval_steps must be >= 0"),
        (["--eval_num_samples", "1"], "--eval_num_samples must be >= 2"),
    ],
)
def test_bad_flags_fail_before_anything_runs(train_gan_module, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        train_gan_module.parse_args(["--dataset_name", str(FIXTURE), *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--dataset_name", "missing/images.npz"], "error: the local path 'missing/images.npz' does not exist"),
        (["--dataset_name", str(FIXTURE), "--label_column", "category"], "label column 'category' does not exist"),
        (["--dataset_name", str(FIXTURE), "--num_classes", "5"], "--num_classes 5 is fewer than the dataset's 10"),
    ],
)
def test_bad_data_fails_with_a_clear_message(tmp_path, argv, message):
    result = train(*argv, "--output_dir", str(tmp_path / "gan"), "--report_to", "none")
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr


# Checkpoints written before the training state was named (tests/fixtures/legacy_gan_run, see its README entry).
LEGACY_RUN = REPO / "tests" / "fixtures" / "legacy_gan_run"
LEGACY_FLAGS = [
    "--dataset_name", str(FIXTURE), "--base_channels", "4", "--latent_dim", "4", "--train_batch_size", "4",
    "--num_sample_images", "10", "--max_train_samples", "16", "--checkpointing_steps", "2", "--ema_decay", "0.9",
    "--report_to", "none", "--mixed_precision", "no",
]  # fmt: skip


def test_a_checkpoint_written_before_named_state_resumes(tmp_path):
    output_dir = tmp_path / "run"
    shutil.copytree(LEGACY_RUN, output_dir)
    output = check(
        train(*LEGACY_FLAGS, "--max_train_steps", "4", "--output_dir", str(output_dir), "--resume_from_checkpoint",
              "latest")
    )  # fmt: skip
    assert "predates named training state; its objects are, in order, ['ema', 'rng', 'sample_inputs']" in output
    assert f"Resumed from {output_dir / 'checkpoint-2'} (step 2" in output
    assert (output_dir / "checkpoint-4" / "checkpoint.json").is_file()  # new checkpoints are named
    assert all(torch.isfinite(tensor).all() for tensor in load_weights(output_dir).values())


def test_a_checkpoint_written_before_named_state_that_does_not_fit_is_refused(tmp_path):
    output_dir = tmp_path / "run"
    shutil.copytree(LEGACY_RUN, output_dir)
    checkpoint = output_dir / "checkpoint-2"
    result = train(
        *LEGACY_FLAGS, "--max_train_steps", "4", "--ema_decay", "0", "--output_dir", str(output_dir),
        "--resume_from_checkpoint", str(checkpoint),
    )  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"error: cannot resume from {checkpoint}: it was written before hf-vaegan named the training state" in (
        result.stderr
    )
    assert "resume with the script and flags that wrote it, or start a new run" in result.stderr


def test_gradient_checkpointing_trains_the_generator_and_names_what_it_skips(tmp_path):
    output_dir = tmp_path / "gan"
    flags = ["--dataset_name", str(FIXTURE), "--max_train_samples", "16", "--max_train_steps", "2"]
    flags += [
        "--checkpointing_steps",
        "2",
        "--report_to",
        "none",
        "--mixed_precision",
        "no",
        "--gradient_checkpointing",
    ]
    output = check(train(*flags, "--output_dir", str(output_dir)))
    assert "--gradient_checkpointing: on for generator (Generator)" in output
    # the default discriminator is spectrally normalised: recomputing it would run its power iteration twice
    assert "--gradient_checkpointing: discriminator trains without it" in output and "spectral" in output
    assert Generator.from_pretrained(output_dir).config.resolution == 28
