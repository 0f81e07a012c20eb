"""BodyShapeHead (least-squares fit, save/load) and BodyShapePipeline (sliders, sampling, interpolation, read-out),
plus examples/make_body_dataset.py and examples/fit_body_shape_head.py on a tiny VAE."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from comparisons import assert_same_weights

import hf_vaegan
from hf_vaegan.data import BODY_SHAPE_RANGES, BodyShape
from hf_vaegan.models import VAE
from hf_vaegan.models.body_shape import BodyShapeHead
from hf_vaegan.pipelines.pipeline_body_shape import BodyShapePipeline

REPO = Path(__file__).resolve().parents[1]
NAMES = list(BODY_SHAPE_RANGES)
RANGES = [BODY_SHAPE_RANGES[name] for name in NAMES]


def linear_data(count: int = 200, latent_dim: int = 6) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Parameters in their ranges and latents that are an exact affine function of them."""
    generator = torch.Generator().manual_seed(0)
    ranges = torch.tensor(RANGES)
    unit = torch.rand(count, len(NAMES), generator=generator)
    parameters = ranges[:, 0] + unit * (ranges[:, 1] - ranges[:, 0])
    mixing = torch.randn(len(NAMES), latent_dim, generator=generator)
    return unit @ mixing + 0.5, parameters, mixing


def test_fit_recovers_an_affine_relation_both_ways():
    # With fewer latent dimensions than parameters the read-out cannot be exact; the latents of given parameters can.
    latents, parameters, _ = linear_data(latent_dim=6)
    head = BodyShapeHead(latent_dim=6, parameter_names=NAMES, parameter_ranges=RANGES).fit(latents, parameters)
    assert torch.allclose(head.latents_for(parameters), latents, atol=1e-4)
    wide_latents, parameters, _ = linear_data(latent_dim=12)
    wide = BodyShapeHead(latent_dim=12, parameter_names=NAMES, parameter_ranges=RANGES).fit(wide_latents, parameters)
    assert torch.allclose(wide(wide_latents).parameters, parameters, atol=1e-3)


def test_head_config_and_input_checks():
    with pytest.raises(ValueError, match="one \\(low, high\\) pair per name"):
        BodyShapeHead(latent_dim=4, parameter_names=NAMES, parameter_ranges=RANGES[:-1])
    with pytest.raises(ValueError, match="low < high"):
        BodyShapeHead(latent_dim=4, parameter_names=["height"], parameter_ranges=[[1.0, 0.5]])
    head = BodyShapeHead(latent_dim=4, parameter_names=NAMES, parameter_ranges=RANGES)
    with pytest.raises(ValueError, match=r"`latents` must be a tensor of shape \(batch, 4\)"):
        head(torch.zeros(2, 5))
    with pytest.raises(ValueError, match="more than 10"):
        head.fit(torch.zeros(5, 4), torch.zeros(5, 10))


@pytest.fixture(scope="module")
def pipe() -> BodyShapePipeline:
    torch.manual_seed(0)
    vae = VAE(resolution=32, in_channels=3, latent_dim=6, base_channels=4, likelihood="laplace").eval()
    latents, parameters, _ = linear_data(latent_dim=6)
    head = BodyShapeHead(latent_dim=6, parameter_names=NAMES, parameter_ranges=RANGES).fit(latents, parameters)
    return BodyShapePipeline(vae, head.eval())


def test_sliders_give_avatars_and_read_back_their_parameters(pipe):
    shape = BodyShape(height=0.9, hip_width=0.24)
    output = pipe(body_shapes=[shape, {"waist_width": 0.2}])
    assert len(output.images) == 2 and output.images[0].size == (32, 32)
    # The fixture's latents are exactly linear in the parameters, so the read-out is close (not exact: 6 < 10 dims).
    assert set(output.body_shapes[0]) == set(NAMES)
    for recovered in output.body_shapes:
        BodyShape(**recovered)  # clamped into the ranges
    tensors = pipe(body_shapes={"height": 0.8}, output_type="pt").images
    assert tensors.shape == (1, 3, 32, 32) and tensors.abs().max() <= 1


def test_prior_samples_interpolation_and_read_out(pipe):
    first = pipe(batch_size=3, generator=torch.Generator().manual_seed(1), output_type="np")
    again = pipe(batch_size=3, generator=torch.Generator().manual_seed(1), output_type="np")
    np.testing.assert_array_equal(first.images, again.images)
    assert first.images.shape == (3, 32, 32, 3) and len(first.body_shapes) == 3
    strip = pipe.interpolate({"height": 0.78}, {"height": 0.94}, num_steps=5)
    assert len(strip.images) == 5
    heights = [shape["height"] for shape in strip.body_shapes]
    assert heights[0] < heights[-1]
    assert len(pipe.read_body_shapes(strip.images[:2])) == 2


@pytest.mark.parametrize(
    ("body_shapes", "message"),
    [
        ({"height": 2.0}, "'height' must be in \\[0.78, 0.94\\]"),
        ({"neck_length": 0.1}, "unknown body parameters \\['neck_length'\\]"),
        (torch.zeros(2, 3), "must be \\(batch, 10\\)"),
        ([], "is empty"),
    ],
)
def test_bad_body_shapes_raise_clear_errors(pipe, body_shapes, message):
    with pytest.raises(ValueError, match=message):
        pipe(body_shapes=body_shapes)


def test_save_and_load_round_trip(pipe, tmp_path):
    pipe.save_pretrained(tmp_path / "bodies")
    assert (tmp_path / "bodies" / "shape_head" / "config.json").is_file()
    loaded = BodyShapePipeline.from_pretrained(tmp_path / "bodies")
    values = {"height": 0.85, "left_arm_angle": 30.0}
    assert_same_weights(pipe.vae, loaded.vae)
    assert_same_weights(pipe.shape_head, loaded.shape_head)
    torch.testing.assert_close(
        loaded(body_shapes=values, output_type="pt").images, pipe(body_shapes=values, output_type="pt").images
    )


@pytest.mark.slow
def test_dataset_and_fit_scripts(tmp_path):
    data = tmp_path / "bodies"
    for command in (
        ["examples/make_body_dataset.py", "--output_dir", str(data), "--resolution", "32", "--num_train", "40",
         "--num_test", "12"],
    ):  # fmt: skip
        subprocess.run([sys.executable, *command], cwd=REPO, check=True, capture_output=True)
    with np.load(data / "train.npz") as arrays:
        assert arrays["images"].shape == (40, 32, 32, 3) and arrays["body_shapes"].shape == (40, 10)
        assert list(arrays["body_shape_names"]) == NAMES
    model_dir = tmp_path / "vae"
    VAE(resolution=32, in_channels=3, latent_dim=6, base_channels=4, likelihood="laplace").save_pretrained(model_dir)
    (model_dir / "README.md").write_text("# A body VAE\n\n## Training\n\nSome text.\n")
    command = [sys.executable, "examples/fit_body_shape_head.py", "--model_dir", str(model_dir), "--dataset_dir"]
    for _ in range(2):  # the card section is replaced, not repeated
        result = subprocess.run([*command, str(data)], cwd=REPO, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
    assert "R^2             height:" in result.stdout
    card = (model_dir / "README.md").read_text()
    assert card.count("## Body-shape head") == 1 and "## Training" in card and "body_shape_sliders.png" in card
    assert (model_dir / "body_shape_sliders.png").is_file()
    assert BodyShapePipeline.from_pretrained(model_dir)(body_shapes={"height": 0.9}).images[0].size == (32, 32)


def test_the_bundled_body_vae_follows_its_sliders():
    pipe = BodyShapePipeline.from_pretrained(Path(hf_vaegan.__file__).parent / "pretrained" / "wardrobe-body-vae")
    short, tall = pipe(body_shapes=[{"height": 0.78}, {"height": 0.94}], output_type="np").images
    assert short.shape == (64, 64, 3)
    # The taller avatar's head starts higher: its first row darker than the background comes earlier.
    first_row = [int(np.argmax(image.min(axis=(1, 2)) < 0.6)) for image in (short, tall)]
    assert first_row[1] < first_row[0]
