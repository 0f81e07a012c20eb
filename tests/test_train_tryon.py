"""`examples/train_tryon.py` end to end on tiny models (the synthetic wardrobe rendered from the 1k fixture, a
VITON-HD-layout fixture), and the try-on training layer: data, losses, evaluation."""

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
from test_viton import make_viton_folder

from hf_vaegan.data import Wardrobe, build_wardrobe_dataset
from hf_vaegan.data.loading import make_dataloader
from hf_vaegan.data.tryon import TryOnDatasetInfo, load_tryon_dataset
from hf_vaegan.metrics.tryon import evaluate_tryon, flow_distances, tryon_region_crops
from hf_vaegan.models.patch_discriminator import PatchDiscriminator
from hf_vaegan.models.tryon import TryOnModel
from hf_vaegan.pipelines.pipeline_tryon import TryOnPipeline, paste_garment
from hf_vaegan.training.losses import flow_endpoint_error, multiscale_l1, total_variation

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "examples" / "train_tryon.py"
FIXTURE = REPO / "tests" / "fixtures" / "fashion_mnist_1k.npz"
TINY = [
    "--resolution", "32x24", "--base_channels", "4", "--discriminator_base_channels", "4", "--num_downsamplings", "2",
    "--num_residual_blocks", "1", "--discriminator_num_layers", "2", "--train_batch_size", "4",
    "--num_sample_images", "4", "--report_to", "none", "--seed", "0",
]  # fmt: skip
WEIGHTS = "diffusion_pytorch_model.safetensors"


def train(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return run_script([sys.executable, str(SCRIPT), *TINY, *args], cwd=REPO, env=env)


def check(result: subprocess.CompletedProcess) -> str:
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output


@pytest.fixture(scope="module")
def fashion_mnist() -> tuple[np.ndarray, np.ndarray]:
    with np.load(FIXTURE) as data:
        return data["images"], data["labels"]


# Scripts


@pytest.mark.slow
def test_synthetic_wardrobe_from_the_npz_trains_and_loads_in_the_pipeline(tmp_path, fashion_mnist):
    output_dir = tmp_path / "tryon"
    output = check(
        train(
            "--dataset_name", str(FIXTURE), "--num_wardrobe_samples", "12", "--num_validation_examples", "4",
            "--max_train_steps", "3", "--checkpointing_steps", "2", "--sample_steps", "2", "--output_dir",
            str(output_dir),
        )
    )  # fmt: skip
    assert "12 training pairs (rendered) at 32x24" in output
    assert (output_dir / "checkpoint-2").is_dir()
    assert sorted(p.name for p in (output_dir / "samples").iterdir()) == ["step-0000002.png", "step-0000003.png"]
    # Rows: garment, agnostic, warped garment, result, ground truth; one column per held-out example.
    assert Image.open(output_dir / "samples.png").size == (4 * 24, 5 * 32)
    card = (output_dir / "README.md").read_text()
    assert "SSIM (higher is better)" in card and "examples/train_tryon.py" in card and "appearance flow" in card
    assert "1.0 x distance to the renderer's flow (px)" in card
    assert PatchDiscriminator.from_pretrained(output_dir / "discriminator").config.in_channels == 6

    pipe = TryOnPipeline.from_pretrained(output_dir)
    wardrobe = Wardrobe(*fashion_mnist, resolution=(32, 24))
    garment_id = int(np.flatnonzero(wardrobe.labels == 0)[0])
    result = pipe(person=wardrobe.avatar(0), garment=wardrobe.garment(garment_id))
    assert result.images[0].size == (24, 32) and result.warped_garments[0].size == (24, 32)


def test_viton_hd_layout_trains_with_the_warp_target_from_the_parse(tmp_path):
    root = tmp_path / "viton"
    make_viton_folder(root)
    output_dir = tmp_path / "tryon"
    output = check(
        train(
            "--dataset_name", str(root), "--num_validation_examples", "4", "--max_train_steps", "2",
            "--checkpointing_steps", "2", "--sample_steps", "2", "--cache_dir", str(tmp_path / "cache"),
            "--output_dir", str(output_dir),
        )
    )  # fmt: skip
    assert "4 training pairs (viton-hd) at 32x24" in output
    card = (output_dir / "README.md").read_text()
    assert "(viton-hd, split `train`)" in card and "renderer's flow" not in card
    assert all(torch.isfinite(t).all() for t in load_file(output_dir / WEIGHTS).values())


@pytest.mark.slow
def test_ablation_resumes_exactly_after_sigkill(tmp_path):
    flags = [
        "--dataset_name", str(FIXTURE), "--num_wardrobe_samples", "10", "--num_validation_examples", "0",
        "--no-use_warping", "--max_train_steps", "6", "--checkpointing_steps", "3", "--sample_steps", "3",
        "--ema_decay", "0.9", "--diffaugment", "translation,color", "--gradient_accumulation_steps", "2",
    ]  # fmt: skip
    check(train(*flags, "--output_dir", str(tmp_path / "uninterrupted")))
    interrupted = tmp_path / "interrupted"
    killed = kill_when(
        [sys.executable, str(SCRIPT), *TINY, *flags, "--output_dir", str(interrupted)], interrupted / "checkpoint-3"
    )
    assert killed.returncode == -9, killed.stderr
    output = check(train(*flags, "--output_dir", str(interrupted), "--resume_from_checkpoint", "latest"))
    assert "Resumed from" in output
    expected, resumed = load_file(tmp_path / "uninterrupted" / WEIGHTS), load_file(interrupted / WEIGHTS)
    assert not any(key.startswith("warper.") for key in expected)
    assert [name for name in expected if not torch.equal(expected[name], resumed[name])] == []


@pytest.fixture(scope="module")
def train_tryon_module():
    spec = importlib.util.spec_from_file_location("train_tryon", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--random_flip"], "--random_flip and --no-center_crop do not apply"),
        (["--resolution", "40x24"], "must be a multiple of --warp_downsampling x 2**--num_downsamplings = 16"),
        (["--image_column", "person"], "--image_column does not apply"),
        (["--flow_upsampling", "convex", "--warp_downsampling", "1"], "--flow_upsampling convex needs"),
        (["--warp_weight", "-1"], "--warp_weight must be >= 0"),
        (["--loss", "wgan-gp"], "argument --loss: invalid choice"),
    ],
)
def test_bad_flags_fail_before_anything_runs(train_tryon_module, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        train_tryon_module.parse_args(["--dataset_name", str(FIXTURE), *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_a_dataset_without_tryon_columns_fails_clearly(tmp_path):
    datasets.Dataset.from_dict({"image": [Image.new("RGB", (24, 32))] * 2}).save_to_disk(tmp_path / "images")
    result = train("--dataset_name", str(tmp_path / "images"), "--output_dir", str(tmp_path / "out"))
    assert result.returncode == 1
    assert "is not a try-on dataset: it lacks the columns ['cloth'" in result.stderr
    assert "Traceback" not in result.stderr


# Training layer


def test_transform_resizes_images_masks_and_keypoints(fashion_mnist):
    rows = build_wardrobe_dataset(*fashion_mnist, num_samples=2, resolution=(64, 48), split="test", unpaired=True)
    batch = next(iter(make_dataloader(TryOnDatasetInfo(rows, "wardrobe").with_transform((32, 24)), 2, shuffle=False)))
    assert batch["image"].shape == batch["cloth"].shape == batch["unpaired_image"].shape == (2, 3, 32, 24)
    for name in ("agnostic_mask", "body_mask", "cloth_mask", "warped_cloth_mask", "unpaired_cloth_mask"):
        assert batch[name].shape == (2, 1, 32, 24) and set(batch[name].unique().tolist()) <= {0.0, 1.0}
    original = torch.tensor(rows[0]["pose_keypoints"])
    assert torch.allclose(batch["pose_keypoints"][0, :, :2], original[:, :2] / 2)
    # The renderer's flow is in units of the whole image: resized, its values stay as they are.
    flow = torch.from_numpy(np.asarray(rows[0]["warped_cloth_flow"], dtype=np.float32))
    assert batch["warped_cloth_flow"].shape == (2, 2, 32, 24) and batch["warped_cloth_flow"].dtype == torch.float32
    torch.testing.assert_close(batch["warped_cloth_flow"][0], flow[:, ::2, ::2], rtol=0, atol=0, equal_nan=True)


def test_viton_rows_get_the_worn_garment_from_the_parse(tmp_path):
    make_viton_folder(tmp_path / "viton")
    info = load_tryon_dataset(str(tmp_path / "viton"), "train", (64, 48), cache_dir=str(tmp_path / "cache"))
    assert info.source == "viton-hd" and "warped_cloth" not in info.dataset.column_names
    example = info.with_transform((64, 48))[0]
    # The fixture's upper clothes (parse label 5) fill rows 16-40, columns 8-40.
    expected = torch.zeros(64, 48)
    expected[16:40, 8:40] = 1
    assert torch.equal(example["warped_cloth_mask"][0], expected)
    inside = expected.bool().expand(3, -1, -1)
    assert torch.equal(example["warped_cloth"][inside], example["image"][inside])
    assert (example["warped_cloth"][~inside] == 1).all()


def test_losses():
    images = torch.rand(2, 3, 16, 12) * 2 - 1
    assert multiscale_l1(images, images) == 0 and multiscale_l1(images, -images) > 0
    assert total_variation(torch.full((1, 2, 16, 12), 0.3)) == 0
    ramp = torch.zeros(1, 2, 16, 12)
    ramp[:, 0] = torch.linspace(-1, 1, 12)  # 2/11 per column in grid units = 12/11 pixel per column
    assert torch.isclose(total_variation(ramp), torch.tensor(6 / 11 / 2 * 2 / 2), atol=1e-5)


def test_flow_endpoint_error_is_in_pixels_where_the_target_is_known():
    flow = torch.zeros(1, 2, 16, 12, requires_grad=True)
    target = torch.full((1, 2, 16, 12), float("nan"))
    target[..., :8, :] = 0
    target[:, 0, :8, :] = 2 / 12 * 3  # 3 pixels to the right
    target[:, 1, :8, :] = 2 / 16 * 4  # and 4 down: 5 pixels away
    loss = flow_endpoint_error(flow, target)
    assert torch.isclose(loss, torch.tensor(5.0), atol=1e-4)
    loss.backward()
    assert torch.isfinite(flow.grad).all() and (flow.grad[..., 8:, :] == 0).all()
    assert flow_endpoint_error(flow, torch.full_like(target, float("nan"))) == 0


def test_region_crops_are_square_and_centred_on_the_region():
    images = -torch.ones(1, 3, 32, 24)
    images[..., 10:20, 4:10] = 1
    masks = torch.zeros(1, 1, 32, 24)
    masks[..., 10:20, 4:10] = 1
    crops = tryon_region_crops(images, masks, size=20)
    assert crops.shape == (1, 3, 20, 20)
    assert crops[..., 5:15, 7:13].min() > 0.9 and crops[..., :, :2].max() < -0.9


def test_evaluation_ranks_the_ground_truth_above_the_naive_paste(fashion_mnist):
    rows = build_wardrobe_dataset(*fashion_mnist, num_samples=8, resolution=(32, 24), split="test", unpaired=True)
    batches = list(make_dataloader(TryOnDatasetInfo(rows, "wardrobe").with_transform((32, 24)), 4, shuffle=False))
    truth = iter(batch["image"] for batch in batches)
    predictors = {
        "truth": lambda inputs: next(truth),
        "paste": lambda inputs: paste_garment(
            inputs["agnostic"], inputs["agnostic_mask"], inputs["cloth"], inputs["cloth_mask"]
        ),
    }
    results = evaluate_tryon(predictors, batches)
    assert results["truth"]["ssim"] == pytest.approx(1) and results["truth"]["l1"] == 0
    assert results["truth"]["fid"] == pytest.approx(0, abs=1e-3)
    assert results["paste"]["ssim"] < 1 and results["paste"]["l1_region"] > results["paste"]["l1"] > 0
    unpaired = evaluate_tryon({"paste": predictors["paste"]}, batches, unpaired=True)
    assert unpaired["paste"]["l1"] > 0


def test_flow_distances_measure_the_warp_against_the_renderers(fashion_mnist):
    rows = build_wardrobe_dataset(*fashion_mnist, num_samples=4, resolution=(32, 24), split="test")
    batches = list(make_dataloader(TryOnDatasetInfo(rows, "wardrobe").with_transform((32, 24)), 2, shuffle=False))
    # A new model's flow is zero (the garment in place): its distance is the renderer's warp itself, in pixels.
    model = TryOnModel(sample_size=(32, 24), base_channels=4, num_downsamplings=2).eval()
    distances = flow_distances(model, batches)
    expected = torch.cat(
        [
            (batch["warped_cloth_flow"] * torch.tensor([12.0, 16.0]).view(1, 2, 1, 1)).norm(dim=1)[
                torch.isfinite(batch["warped_cloth_flow"]).all(dim=1)
            ]
            for batch in batches
        ]
    )
    assert len(distances) == sum(int((batch["warped_cloth_mask"] > 0).sum()) for batch in batches) > 0
    torch.testing.assert_close(distances, expected)
    without_warp = TryOnModel(sample_size=(32, 24), base_channels=4, num_downsamplings=2, use_warping=False)
    assert flow_distances(without_warp, batches) is None
    assert flow_distances(model, [{k: v for k, v in batches[0].items() if k != "warped_cloth_flow"}]) is None
