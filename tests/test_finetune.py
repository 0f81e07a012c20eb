"""`--pretrained_model_name_or_path` (+ `--revision`, `--variant`) in every training script: fine-tuning a bundled
model, a Hub repo at a revision, or an earlier run; data that does not fit the model is refused before training."""

import importlib.util
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
from huggingface_hub import HfApi, ModelCard
from scripts import run_script

from hf_vaegan import VAE, VAEGAN, Discriminator, Generator, PatchDiscriminator, TryOnModel, UNetGenerator
from hf_vaegan.data.sketch import make_sketch_pairs
from hf_vaegan.models.modeling_utils import VaeGanModelMixin

REPO = Path(__file__).resolve().parents[1]
BUNDLED = REPO / "hf_vaegan" / "pretrained"
FIXTURE = REPO / "tests" / "fixtures" / "fashion_mnist_1k.npz"
WEIGHTS = "diffusion_pytorch_model.safetensors"
# Learning rates so small that Adam's steps (about the learning rate in size) leave the weights where they started,
# and no EMA: the saved model is then the pretrained one, which shows the run started from it.
FROZEN = ["--learning_rate", "1e-30", "--num_validation_images", "100"]
FROZEN_GAN = ["--generator_learning_rate", "1e-30", "--discriminator_learning_rate", "1e-30"]
COMMON = ["--seed", "0", "--report_to", "none", "--ema_decay", "0", "--max_train_steps", "1"]


def train(script: str, *args: str) -> subprocess.CompletedProcess:
    return run_script([sys.executable, str(REPO / "examples" / f"{script}.py"), *COMMON, *args], cwd=REPO)


def check(result: subprocess.CompletedProcess) -> str:
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output


def assert_same_model(loaded: VaeGanModelMixin, source: VaeGanModelMixin) -> None:
    """Same class, same config, and weights that are still the source's."""
    assert type(loaded) is type(source)
    settings = {key: value for key, value in loaded.config.items() if not key.startswith("_")}
    assert settings == {key: value for key, value in source.config.items() if not key.startswith("_")}
    assert loaded.state_dict().keys() == source.state_dict().keys()
    for name, tensor in source.state_dict().items():
        np.testing.assert_allclose(loaded.state_dict()[name].numpy(), tensor.numpy(), rtol=1e-6, atol=1e-7)


def failure(result: subprocess.CompletedProcess) -> str:
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return result.stderr.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def cgan_finetune(tmp_path_factory) -> tuple[Path, str]:
    """The README's fine-tune of the bundled cGAN, a step on the Fashion-MNIST fixture."""
    output_dir = tmp_path_factory.mktemp("finetune") / "cgan"
    output = check(
        train(
            "train_gan", "--pretrained_model_name_or_path", str(BUNDLED / "fashion-cgan"),
            "--dataset_name", str(FIXTURE), "--train_batch_size", "8", "--num_sample_images", "10",
            "--output_dir", str(output_dir), *FROZEN_GAN,
        )
    )  # fmt: skip
    return output_dir, output


def test_the_bundled_cgan_fine_tunes_with_its_own_architecture(cgan_finetune):
    output_dir, output = cgan_finetune
    bundled = Generator.from_pretrained(BUNDLED / "fashion-cgan", subfolder="gan")
    # Its config, not the script's defaults (base_channels 64, latent_dim 64), and its weights.
    assert bundled.config.base_channels == 32
    assert_same_model(Generator.from_pretrained(output_dir), bundled)
    # The bundle holds no discriminator: a fresh one from the flags, said so.
    assert "holds no discriminator (Discriminator): it starts from fresh weights" in output
    assert Discriminator.from_pretrained(output_dir, subfolder="discriminator").config.num_classes == 10
    rows = ModelCard.load(output_dir / "README.md").text
    assert "| initial weights | fine-tuned from the local folder `fashion-cgan` |" in rows


def test_an_earlier_run_continues_with_its_discriminator(cgan_finetune, tmp_path):
    first_run, _ = cgan_finetune
    output = check(
        train(
            "train_gan", "--pretrained_model_name_or_path", str(first_run), "--dataset_name", str(FIXTURE),
            "--train_batch_size", "8", "--num_sample_images", "10", "--output_dir", str(tmp_path / "again"),
            *FROZEN_GAN,
        )
    )  # fmt: skip
    assert "holds no" not in output
    for subfolder, model_class in (("", Generator), ("discriminator", Discriminator)):
        source = model_class.from_pretrained(first_run, subfolder=subfolder or None)
        assert_same_model(model_class.from_pretrained(tmp_path / "again", subfolder=subfolder or None), source)


def test_a_hub_repo_fine_tunes_at_the_revision_asked_for(unique_repo_id, tmp_path):
    api = HfApi()
    api.create_repo(unique_repo_id)
    first_commit = api.upload_folder(repo_id=unique_repo_id, folder_path=BUNDLED / "fashion-cgan").oid
    # main moves on to a generator that no longer fits the data; the first commit still holds the bundled one.
    smaller = Generator(resolution=32, out_channels=1, latent_dim=8, base_channels=8, num_classes=10)
    smaller.save_pretrained(tmp_path / "gan")
    api.upload_folder(repo_id=unique_repo_id, folder_path=tmp_path / "gan", path_in_repo="gan")

    args = ["--dataset_name", str(FIXTURE), "--train_batch_size", "8", "--num_sample_images", "10", *FROZEN_GAN]
    check(
        train(
            "train_gan", "--pretrained_model_name_or_path", unique_repo_id, "--revision", first_commit,
            "--output_dir", str(tmp_path / "from-v1"), *args,
        )
    )  # fmt: skip
    bundled = Generator.from_pretrained(BUNDLED / "fashion-cgan", subfolder="gan")
    assert_same_model(Generator.from_pretrained(tmp_path / "from-v1"), bundled)
    card = ModelCard.load(tmp_path / "from-v1" / "README.md").text
    assert f"fine-tuned from `{unique_repo_id}` (revision `{first_commit}`)" in card

    message = failure(
        train(
            "train_gan", "--pretrained_model_name_or_path", unique_repo_id, "--output_dir", str(tmp_path / "x"), *args
        )
    )
    assert message == (
        f"error: --pretrained_model_name_or_path {unique_repo_id!r} is a Generator with resolution=32, but "
        "--resolution needs 28: the model does not fit the data; change the flag or the data, or train from scratch"
    )


def test_a_weights_variant_is_loaded(tmp_path):
    source = tmp_path / "variant"
    shutil.copytree(BUNDLED / "fashion-vae" / "vae", source)
    (source / WEIGHTS).rename(source / "diffusion_pytorch_model.fp16.safetensors")
    common = ["--dataset_name", str(FIXTURE), "--train_batch_size", "8", "--num_sample_images", "4", *FROZEN]
    check(
        train(
            "train_vae", "--pretrained_model_name_or_path", str(source), "--variant", "fp16",
            "--output_dir", str(tmp_path / "out"), *common,
        )
    )  # fmt: skip
    assert_same_model(VAE.from_pretrained(tmp_path / "out"), VAE.from_pretrained(BUNDLED / "fashion-vae" / "vae"))
    message = failure(
        train(
            "train_vae", "--pretrained_model_name_or_path", str(source), "--output_dir", str(tmp_path / "x"), *common
        )
    )
    assert message.startswith(f"error: --pretrained_model_name_or_path {str(source)!r}: cannot load the VAE")


@pytest.fixture(scope="module")
def unlabelled(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("unlabelled") / "images.npz"
    with np.load(FIXTURE) as arrays:
        np.savez(path, images=arrays["images"][:16])
    return path


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--resolution", "32"],
            "is a Generator with resolution=28, but --resolution needs 32: the model does not fit the data",
        ),
        (["--num_classes", "0"], "--num_classes 0 differs from the pretrained generator's 10 classes"),
        ([], "needs class labels, but the dataset has no label column"),
    ],
)
def test_data_that_does_not_fit_the_bundled_cgan_is_refused(tmp_path, unlabelled, argv, message):
    data = unlabelled if not argv else FIXTURE
    result = train(
        "train_gan", "--pretrained_model_name_or_path", str(BUNDLED / "fashion-cgan"), "--dataset_name", str(data),
        "--output_dir", str(tmp_path / "out"), *argv,
    )  # fmt: skip
    assert message in failure(result)
    assert not (tmp_path / "out" / WEIGHTS).exists()


@pytest.mark.parametrize(
    ("script", "source", "message"),
    [
        ("train_gan", "fashion-vae", "holds a 'VAE' model, which Generator cannot load"),
        ("train_vae", "fashion-cgan", "holds a 'Generator' model, which VAE cannot load"),
        ("train_vaegan", "fashion-vae", "holds a 'VAE' model, which VAEGAN cannot load"),
    ],
)
def test_a_model_of_another_kind_is_refused(tmp_path, script, source, message):
    result = train(
        script, "--pretrained_model_name_or_path", str(BUNDLED / source), "--dataset_name", str(FIXTURE),
        "--output_dir", str(tmp_path / "out"), *([] if script == "train_gan" else ["--num_validation_images", "100"]),
    )  # fmt: skip
    assert message in failure(result)


def test_revision_and_variant_need_a_pretrained_model():
    spec = importlib.util.spec_from_file_location("train_gan", REPO / "examples" / "train_gan.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for flag in ("--revision", "--variant"):
        with pytest.raises(SystemExit) as exit_info:
            module.parse_args(["--dataset_name", str(FIXTURE), flag, "x"])
        assert exit_info.value.code == 2
    with pytest.raises(SystemExit):
        module.parse_args(["--dataset_name", str(FIXTURE), "--pretrained_model_name_or_path", str(FIXTURE)])


@pytest.mark.slow
def test_the_bundled_vae_and_vaegan_fine_tune(tmp_path):
    common = ["--dataset_name", str(FIXTURE), "--train_batch_size", "8", "--num_sample_images", "4", *FROZEN]
    for script, name, model_class in (("train_vae", "fashion-vae", VAE), ("train_vaegan", "fashion-vaegan", VAEGAN)):
        extra = ["--discriminator_learning_rate", "1e-30"] if model_class is VAEGAN else []
        check(
            train(
                script, "--pretrained_model_name_or_path", str(BUNDLED / name), "--output_dir", str(tmp_path / name),
                *common, *extra,
            )
        )  # fmt: skip
        assert_same_model(model_class.from_pretrained(tmp_path / name), load_bundled(model_class, name))


def load_bundled(model_class: type, name: str) -> VaeGanModelMixin:
    return model_class.from_pretrained(BUNDLED / name, subfolder="vae")


@pytest.mark.slow
def test_the_bundled_sketch_model_fine_tunes_with_pix2pix(tmp_path):
    with np.load(FIXTURE) as arrays:
        pairs = make_sketch_pairs(arrays["images"][:16], arrays["labels"][:16], seed=0)
    datasets.DatasetDict({"train": pairs}).save_to_disk(str(tmp_path / "pairs"))
    check(
        train(
            "train_pix2pix", "--pretrained_model_name_or_path", str(BUNDLED / "sketch2garment"),
            "--dataset_name", str(tmp_path / "pairs"), "--train_batch_size", "4", "--num_sample_images", "4",
            "--output_dir", str(tmp_path / "out"), *FROZEN_GAN,
        )
    )  # fmt: skip
    bundled = UNetGenerator.from_pretrained(BUNDLED / "sketch2garment", subfolder="generator")
    assert_same_model(UNetGenerator.from_pretrained(tmp_path / "out"), bundled)
    assert PatchDiscriminator.from_pretrained(tmp_path / "out", subfolder="discriminator").config.in_channels == 2


@pytest.mark.slow
def test_cyclegan_and_tryon_runs_continue_from_their_output(tmp_path):
    cyclegan = [
        "--dataset_name", str(FIXTURE), "--domain_a_classes", "7", "--domain_b_classes", "9", "--base_channels", "4",
        "--num_residual_blocks", "1", "--train_batch_size", "4", "--num_sample_images", "4",
    ]  # fmt: skip
    tryon = [
        "--dataset_name", str(FIXTURE), "--num_wardrobe_samples", "8", "--num_validation_examples", "0",
        "--resolution", "32x24", "--base_channels", "4", "--discriminator_base_channels", "4",
        "--num_downsamplings", "2", "--num_residual_blocks", "1", "--discriminator_num_layers", "2",
        "--train_batch_size", "4", "--num_sample_images", "4",
    ]  # fmt: skip
    runs = {
        "train_cyclegan": (
            cyclegan,
            [
                ("", UNetGenerator),
                ("generator_b_to_a", UNetGenerator),
                ("discriminator_a", PatchDiscriminator),
                ("discriminator_b", PatchDiscriminator),
            ],
        ),
        "train_tryon": (tryon, [("", TryOnModel), ("discriminator", PatchDiscriminator)]),
    }
    for script, (flags, networks) in runs.items():
        first, second = tmp_path / f"{script}-1", tmp_path / f"{script}-2"
        check(train(script, *flags, "--output_dir", str(first)))
        output = check(
            train(
                script, *flags, "--pretrained_model_name_or_path", str(first), "--output_dir", str(second), *FROZEN_GAN
            )
        )
        assert "holds no" not in output
        for subfolder, model_class in networks:
            source = model_class.from_pretrained(first, subfolder=subfolder or None)
            assert_same_model(model_class.from_pretrained(second, subfolder=subfolder or None), source)
    # A try-on model trained at 32x24 does not fit 64x48 data.
    resized = [*tryon, "--resolution", "64x48"]
    message = failure(
        train("train_tryon", *resized, "--pretrained_model_name_or_path", str(tmp_path / "train_tryon-1"))
    )
    assert "is a TryOnModel with sample_size=[32, 24], but --resolution needs (64, 48)" in message
    # A bilinear model fine-tuned with --flow_upsampling convex starts from the same function.
    convex = tmp_path / "train_tryon-convex"
    source = tmp_path / "train_tryon-1"
    check(
        train(
            "train_tryon", *tryon, "--pretrained_model_name_or_path", str(source), "--output_dir", str(convex),
            "--flow_upsampling", "convex", *FROZEN_GAN,
        )
    )  # fmt: skip
    assert TryOnModel.from_pretrained(convex).config.flow_upsampling == "convex"
    assert_same_model(
        TryOnModel.from_pretrained(convex), TryOnModel.from_pretrained(source).with_convex_flow_upsampling()
    )


def test_the_readme_fine_tune_command_runs(tmp_path):
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", readme, re.DOTALL)
    (block,) = [block for block in blocks if "--pretrained_model_name_or_path" in block]
    argv = shlex.split(block.replace("\\\n", " "))
    assert argv[:3] == ["accelerate", "launch", "examples/train_gan.py"]
    flags = argv[3:]
    # Two steps instead of the README's hundred, written to the test's folder.
    flags[flags.index("--max_train_steps") + 1] = "2"
    flags[flags.index("--output_dir") + 1] = str(tmp_path / "out")
    result = run_script(
        [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--cpu", *argv[2:3], *flags,
         "--report_to", "none", "--num_sample_images", "10"],
        cwd=REPO,
    )  # fmt: skip
    check(result)
    generator = Generator.from_pretrained(tmp_path / "out")
    assert generator.config.base_channels == 32 and generator.config.num_classes == 10
    assert Discriminator.from_pretrained(tmp_path / "out", subfolder="discriminator").config.base_channels == 32
