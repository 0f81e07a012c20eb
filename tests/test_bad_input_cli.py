"""Bad input to the `hf-vaegan` command.

Every error is one line on stderr, `hf-vaegan <command>: error: ...` naming the problem, with exit code 2 and no
traceback; nothing on disk changes (no output file appears, an existing one and the model folder stay as they were).
The cases marked `installed` run the console script as installed, in a subprocess (6 s each, mostly importing torch
and diffusers); the others call the same `main()` in this process.
"""

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hf_vaegan import VAE, Discriminator, Generator
from hf_vaegan.cli import main

TINY = {"base_channels": 4}
HF_VAEGAN = str(Path(sys.executable).with_name("hf-vaegan"))
FIXTURE = str(Path(__file__).parent / "fixtures" / "fashion_mnist_1k.npz")
WEIGHTS = "diffusion_pytorch_model.safetensors"


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([HF_VAEGAN, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def run_in_process(args: list[str], cwd: Path, capsys, monkeypatch) -> subprocess.CompletedProcess:
    monkeypatch.chdir(cwd)
    capsys.readouterr()
    try:
        returncode = main(args)
    except SystemExit as exit:  # argparse's usage errors
        returncode = exit.code
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(args, returncode, captured.out, captured.err)


@pytest.fixture
def hf_vaegan(capsys, monkeypatch):
    """`hf_vaegan(args, cwd, installed)`: the command's result, from the console script when `installed`."""

    def invoke(args: list[str], cwd: Path, installed: bool) -> subprocess.CompletedProcess:
        return run(*args, cwd=cwd) if installed else run_in_process(args, cwd, capsys, monkeypatch)

    return invoke


def case(args: list[str], message: str, installed: bool = False):
    shown = " ".join(Path(arg).name if "/" in arg and arg.startswith("/") else arg for arg in args)
    return pytest.param(args, message, installed, id=("installed: " if installed else "") + (shown or "no arguments"))


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.rglob("*")
        if p.is_file()
    }


def assert_one_line_error(result: subprocess.CompletedProcess, command: str, message: str) -> None:
    """Exit code 2, no traceback, and the error on one line, the last (progress bars may come before it)."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert [line for line in lines if line.startswith("hf-vaegan")] == lines[-1:], result.stderr
    prefix = f"hf-vaegan {command}: error: " if command else "hf-vaegan: error: "
    assert lines[-1].startswith(prefix), lines[-1]
    assert re.search(message, lines[-1]), lines[-1]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A folder with a conditional GAN, a VAE, a discriminator, an existing output and an image-folder dataset."""
    root = tmp_path_factory.mktemp("cli")
    torch.manual_seed(0)
    Generator(latent_dim=8, num_classes=10, **TINY).save_pretrained(root / "gan")
    VAE(latent_dim=4, **TINY).save_pretrained(root / "vae")
    Discriminator(**TINY).save_pretrained(root / "discriminator")
    (root / "existing.png").write_bytes(b"an earlier grid")
    (root / "a-file").write_text("not a folder")
    (root / "folder.png").mkdir()
    images = root / "images" / "train"
    images.mkdir(parents=True)
    with np.load(FIXTURE) as data:
        for index, image in enumerate(data["images"][:8]):
            Image.fromarray(image).save(images / f"{index}.png")
    return root


@pytest.fixture
def unchanged(workspace):
    """Asserts after the test that nothing in the workspace was created, changed or removed."""
    before = digest(workspace)
    yield
    assert digest(workspace) == before


def damaged_copy(workspace: Path, name: str, damage) -> Path:
    folder = workspace / "damaged" / name
    if not folder.exists():
        folder.parent.mkdir(exist_ok=True)
        folder.mkdir()
        for file in (workspace / "gan").iterdir():
            (folder / file.name).write_bytes(file.read_bytes())
        damage(folder)
    return folder


SAMPLE = ["sample", "gan", "--class-label", "1", "--num-images", "2"]


@pytest.mark.parametrize(
    ("args", "message", "installed"),
    [
        case([*SAMPLE, "--output", "x.png", "--device", "cuda:99"],
             r"--device cuda:99: this machine has (no|\d+) CUDA", True),
        case([*SAMPLE, "--output", "x.png", "--device", "gpu"], r"--device 'gpu' is not a torch device"),
        case([*SAMPLE, "--output", "x.png", "--batch-size", "0"], "--batch-size must be >= 1, got 0", True),
        case([*SAMPLE, "--output", "x.png", "--batch-size", "-1"], "--batch-size must be >= 1, got -1", True),
        case([*SAMPLE, "--output", "x.png", "--batch-size", "10000000"], r"--batch-size must be at most 342392"),
        case([*SAMPLE, "--output", "x.png", "--batch-size", "2.5"],
             "argument --batch-size: invalid int value: '2.5'", True),
        case(["sample", "gan", "--output", "x.png", "--num-images", "0", "--class-label", "1"],
             "--num-images must be >="),
        case(["sample", "gan", "--output", "x.png", "--num-images", "10000000000", "--class-label", "1"],
             r"--num-images must be at most \d+ for this model \(4 GiB of images\)"),
        case([*SAMPLE, "--output", "x.png", "--truncation", "0"], "--truncation must be a finite number > 0, got 0.0"),
        case([*SAMPLE, "--output", "x.png", "--truncation", "nan"],
             "--truncation must be a finite number > 0, got nan"),
        case([*SAMPLE, "--output", "x.png", "--class-label", "10"], r"--class-label must lie in \[0, 9\], got 10"),
        case([*SAMPLE, "--output", "x.jpg"], r"--output must end in one of \('.png', '.npz'\), got 'x.jpg'"),
        case([*SAMPLE, "--output", "images"], "must end in one of"),
        case([*SAMPLE, "--output", "folder.png"], "--output folder.png is a folder; name a file inside it"),
        case([*SAMPLE, "--output", "a-file/x.png"], "--output a-file/x.png: a-file is a file, not a folder", True),
        case([*SAMPLE, "--output", "existing.png", "--class-label", "11"], r"must lie in \[0, 9\]", True),
        case(["sample", "gan/config.json", "--output", "x.png"],
             r"gan/config.json is a file: pass the folder .*gan\)", True),
        case(["sample", f"gan/{WEIGHTS}", "--output", "x.png"], f"gan/{WEIGHTS} is a file"),
        case(["sample", "no/such/model", "--output", "x.png"], "no/such/model is neither a folder nor a Hub id"),
        case(["sample", "discriminator", "--output", "x.png"], "Discriminator models do not draw images"),
        case(["sample", "vae", "--output", "x.png", "--truncation", "0.5"],
             "--truncation applies to GAN generators only"),
        case(["sample", "gan", "--output", "x.png"], r"class-conditional \(10 classes\): pass --class-label K or"),
        case(["sample", "gan"], "the following arguments are required: --output"),
        case(["sample"], "the following arguments are required: model, --output"),
        case(["generate", "gan"], "argument command: invalid choice: 'generate'", True),
        case([], "the following arguments are required: command"),
    ],
)  # fmt: skip
def test_sample_errors(workspace, unchanged, hf_vaegan, args, message, installed):
    command = "sample" if args[:1] == ["sample"] else ""
    assert_one_line_error(hf_vaegan(args, workspace, installed), command, message)


def set_config(folder: Path, config) -> None:
    (folder / "config.json").write_text(json.dumps(config))


DAMAGES = {
    "truncated": (lambda f: (f / WEIGHTS).write_bytes((f / WEIGHTS).read_bytes()[:200]), rf"{WEIGHTS} is damaged \("),
    "zeroed": (lambda f: (f / WEIGHTS).write_bytes(bytes(1000)), rf"{WEIGHTS} is damaged \(.*header"),
    "no-weights": (lambda f: (f / WEIGHTS).unlink(), "holds no safetensors weights file"),
    "config-list": (lambda f: set_config(f, [1, 2]), "config.json of .* must hold a JSON object"),
    "no-class-name": (lambda f: set_config(f, {"latent_dim": 8}), r"does not name its model class \(`_class_name`"),
    "foreign-class": (lambda f: set_config(f, {"_class_name": "UNet2DModel"}), "holds a 'UNet2DModel' model, not"),
    "bad-value": (lambda f: set_config(f, {"_class_name": "Generator", "latent_dim": -2}), "`latent_dim` must be"),
}  # fmt: skip


@pytest.mark.parametrize("name", DAMAGES)
def test_damaged_models_are_named_and_left_alone(workspace, hf_vaegan, name):
    damage, message = DAMAGES[name]
    folder = damaged_copy(workspace, name, damage)
    before = digest(workspace)
    args = ["sample", str(folder), "--class-label", "1", "--output", "x.png"]
    result = hf_vaegan(args, workspace, installed=name in ("truncated", "config-list"))
    assert_one_line_error(result, "sample", message)
    assert digest(workspace) == before


EVALUATE = ["evaluate", "gan", "--num-samples", "20"]


@pytest.mark.parametrize(
    ("args", "message", "installed"),
    [
        case([*EVALUATE, "--data", FIXTURE, "--split", "bogus"],
             r"--split does not apply to .*\.npz: a .npz file", True),
        case([*EVALUATE, "--data", FIXTURE, "--split", "test"], "--split does not apply"),
        case([*EVALUATE, "--data", "images", "--split", "bogus"], r"split 'bogus' does not exist .*\['train'\]", True),
        case([*EVALUATE, "--data", "missing.npz"], "the local path 'missing.npz' does not exist"),
        case(["evaluate", "gan", "--data", FIXTURE, "--num-samples", "1"], "--num-samples must be >= 2, got 1"),
        case([*EVALUATE, "--data", FIXTURE, "--batch-size", "0"], "--batch-size must be >= 1, got 0"),
        case([*EVALUATE, "--data", FIXTURE, "--likelihood-images", "0"], "--likelihood-images must be >= 1"),
        case([*EVALUATE, "--data", FIXTURE, "--importance-samples", "-3"], "--importance-samples must be >= 1"),
        case([*EVALUATE, "--data", FIXTURE, "--device", "cuda:99"], "--device cuda:99"),
        case(["evaluate", "discriminator", "--data", FIXTURE], "Discriminator models do not draw images"),
        case(["evaluate", "gan"], "the following arguments are required: --data"),
    ],
)  # fmt: skip
def test_evaluate_errors(workspace, unchanged, hf_vaegan, args, message, installed):
    assert_one_line_error(hf_vaegan(args, workspace, installed), "evaluate", message)


def test_a_npz_is_reported_without_a_split(workspace, hf_vaegan):
    result = hf_vaegan([*EVALUATE, "--data", FIXTURE], workspace, installed=False)
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout.strip().splitlines()[-1])
    assert metrics["split"] is None and metrics["num_samples"] == 20


def test_tiny_truncation_returns_and_outputs_are_written_whole(workspace, tmp_path):
    output = tmp_path / "nested" / "grid.npz"
    result = run(*SAMPLE, "--truncation", "1e-9", "--output", str(output), cwd=workspace)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in output.parent.iterdir()) == ["grid.npz"]  # no temporary file left behind
    with np.load(output) as data:
        assert data["images"].shape == (2, 28, 28) and list(data["labels"]) == [1, 1]
