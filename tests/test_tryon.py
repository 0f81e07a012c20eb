"""TryOnModel (shapes, composition, save/load, remote code) and TryOnPipeline (input contract and validation)."""

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from comparisons import assert_same_weights
from PIL import Image

import hf_vaegan
from hf_vaegan.data import GARMENT_LABELS, Wardrobe
from hf_vaegan.models.tryon import (
    SHADE_RANGE,
    TryOnModel,
    TryOnOutput,
    bilinear_taps,
    convex_upsample,
    keypoint_heatmaps,
)
from hf_vaegan.pipelines.pipeline_tryon import TryOnPipeline, paste_garment

FIXTURE = Path(__file__).parent / "fixtures" / "fashion_mnist_1k.npz"
SIZE = (32, 24)
TINY = {"sample_size": SIZE, "base_channels": 4, "num_downsamplings": 2, "num_residual_blocks": 1}


def inputs(batch_size: int = 2, size: tuple[int, int] = SIZE, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    height, width = size

    def image() -> torch.Tensor:
        return torch.rand(batch_size, 3, height, width, generator=generator) * 2 - 1

    def mask() -> torch.Tensor:
        return (torch.rand(batch_size, 1, height, width, generator=generator) > 0.5).float()

    keypoints = torch.rand(batch_size, 18, 3, generator=generator) * torch.tensor([width, height, 1.0])
    return {
        "agnostic": image(),
        "agnostic_mask": mask(),
        "body_mask": mask(),
        "keypoints": keypoints,
        "cloth": image(),
        "cloth_mask": mask(),
    }


def trained_like(model: TryOnModel) -> TryOnModel:
    """The model with random (non-zero) weights everywhere, so a zero-initialised flow does not hide anything."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator))
    return model.eval()


# Model


@pytest.mark.parametrize("use_warping", [True, False])
def test_shapes_and_composition(use_warping):
    model = trained_like(TryOnModel(use_warping=use_warping, **TINY))
    x = inputs()
    with torch.no_grad():
        out = model(**x)
    assert out.sample.shape == out.warped_cloth.shape == out.rendered.shape == (2, 3, *SIZE)
    assert out.warped_cloth_mask.shape == out.composition_mask.shape == (2, 1, *SIZE)
    assert out.sample.abs().max() <= 1
    outside = x["agnostic_mask"].expand_as(out.sample) == 0
    assert torch.equal(out.sample[outside], x["agnostic"][outside])
    # The composition can only take the garment where the (warped) garment is.
    assert (out.composition_mask <= out.warped_cloth_mask + 1e-6).all()
    if use_warping:
        assert out.flow.shape == (2, 2, *SIZE) and out.flow.abs().max() > 0
        assert not torch.allclose(out.warped_cloth, x["cloth"])
    else:
        assert out.flow is None and torch.equal(out.warped_cloth, x["cloth"])
    assert len(model(**x, return_dict=False)) == 6


def test_untrained_flow_leaves_the_garment_in_place():
    model = TryOnModel(**TINY).eval()
    x = inputs()
    with torch.no_grad():
        out = model(**x)
    assert torch.allclose(out.warped_cloth, x["cloth"], atol=1e-5)
    assert torch.allclose(out.warped_cloth_mask, x["cloth_mask"], atol=1e-5)


def test_output_fields_after_the_first_are_optional():
    assert TryOnOutput(sample=torch.zeros(1)).flow is None


def test_keypoint_heatmaps_peak_at_the_keypoints_and_skip_missing_ones():
    keypoints = torch.tensor([[[5.0, 9.0, 0.8], [3.0, 3.0, 0.0]]])
    heatmaps = keypoint_heatmaps(keypoints, 16, 12, sigma=1.5)
    assert heatmaps.shape == (1, 2, 16, 12)
    assert divmod(heatmaps[0, 0].argmax().item(), 12) == (9, 5) and heatmaps[0, 0].max() == 1
    assert heatmaps[0, 1].abs().max() == 0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"sample_size": (30, 24)}, "sample_size"),
        ({"sample_size": (32, 24), "warp_downsampling": 3}, "warp_downsampling"),
        ({"keypoint_sigma": 0}, "keypoint_sigma"),
        ({"use_warping": "yes"}, "use_warping"),
        ({"norm_type": "layer"}, "norm_type"),
        ({"flow_upsampling": "nearest"}, "flow_upsampling"),
        ({"flow_upsampling": "convex", "warp_downsampling": 1}, "flow_upsampling"),
    ],
)
def test_invalid_config_names_the_field(kwargs, field):
    with pytest.raises(ValueError, match=f"`{field}`"):
        TryOnModel(**(TINY | kwargs))


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("agnostic", torch.zeros(2, 1, *SIZE), r"`agnostic` must have shape \(batch, 3"),
        ("cloth_mask", torch.zeros(2, 1, 16, 12), "`cloth_mask` must have the batch size and size of `agnostic`"),
        ("keypoints", torch.zeros(2, 17, 3), r"`keypoints` must be a tensor of shape \(2, 18, 3\)"),
        ("body_mask", torch.zeros(2, 1, *SIZE, dtype=torch.long), "floating point"),
    ],
)
def test_bad_inputs_get_clear_errors(name, value, message):
    with pytest.raises((TypeError, ValueError), match=message):
        TryOnModel(**TINY)(**(inputs() | {name: value}))


def test_save_load_and_remote_code_without_hf_vaegan(tmp_path, run_python):
    model = trained_like(TryOnModel(**TINY))
    model.save_pretrained(tmp_path / "tryon")
    saved = {path.name for path in (tmp_path / "tryon").iterdir()}
    assert {"tryon.py", "unet_generator.py", "blocks.py", "modeling_utils.py"} <= saved
    config = json.loads((tmp_path / "tryon" / "config.json").read_text())
    assert config["auto_map"] == {"AutoModel": "tryon.TryOnModel"}
    loaded = TryOnModel.from_pretrained(tmp_path / "tryon").eval()
    assert_same_weights(model, loaded)
    x = inputs()
    with torch.no_grad():
        expected = model(**x)
        torch.testing.assert_close(loaded(**x).sample, expected.sample)
    torch.save({"x": x, "sample": expected.sample, "warped": expected.warped_cloth}, tmp_path / "io.pt")
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["hf_vaegan"] = None  # the package must not be needed
        import torch
        from diffusers import AutoModel

        model = AutoModel.from_pretrained({str(tmp_path / "tryon")!r}, trust_remote_code=True).eval()
        io = torch.load({str(tmp_path / "io.pt")!r}, weights_only=True)
        with torch.no_grad():
            out = model(**io["x"])
            torch.testing.assert_close(out.sample, io["sample"])
            torch.testing.assert_close(out.warped_cloth, io["warped"])
            exec(model.usage_snippet("ignored").split("# With hf-vaegan")[0].replace(
                'AutoModel.from_pretrained("ignored", trust_remote_code=True)', "model"))
        assert out.sample.shape == (1, 3, 32, 24)
        print("ok")
        """
    )
    assert run_python("-c", script, cwd=tmp_path).stdout.strip().endswith("ok")


# Pipeline


@pytest.fixture(scope="module")
def wardrobe() -> Wardrobe:
    with np.load(FIXTURE) as data:
        return Wardrobe(data["images"], data["labels"], resolution=SIZE, seed=0)


@pytest.fixture(scope="module")
def garment_ids(wardrobe) -> dict[int, int]:
    """The first garment id of each wearable label."""
    return {label: int(np.flatnonzero(wardrobe.labels == label)[0]) for label in GARMENT_LABELS}


@pytest.fixture(scope="module")
def pipe() -> TryOnPipeline:
    torch.manual_seed(0)
    return TryOnPipeline(trained_like(TryOnModel(**TINY)))


def test_avatar_and_garment_give_pil_images(pipe, wardrobe, garment_ids):
    avatar = wardrobe.avatar(0)
    result = pipe(person=avatar, garment=[wardrobe.garment(garment_ids[0]), wardrobe.garment(garment_ids[1])])
    assert len(result.images) == len(result.warped_garments) == 2
    assert all(image.size == (24, 32) and image.mode == "RGB" for image in result.images + result.warped_garments)
    # The person is kept outside the try-on region, which differs for a top and trousers.
    tensors = pipe(person=avatar, garment=wardrobe.garment(garment_ids[0]), output_type="pt").images
    assert tensors.shape == (1, 3, *SIZE) and tensors.abs().max() <= 1


def test_a_dataset_row_gives_what_the_avatar_gives(pipe, wardrobe, garment_ids):
    garment_id = garment_ids[3]
    # As a datasets row decodes: images as PIL images, the renderer's flow (an array feature) as it is.
    row = {
        name: Image.fromarray(value) if isinstance(value, np.ndarray) and value.dtype == np.uint8 else value
        for name, value in wardrobe.example(1, garment_id).items()
    }
    from_row = pipe(person=row, garment=row, output_type="np")
    from_avatar = pipe(person=wardrobe.avatar(1), garment=wardrobe.garment(garment_id), output_type="np")
    np.testing.assert_allclose(from_row.images, from_avatar.images, atol=1e-6)
    # An image garment with its mask and category is the same garment.
    garment = wardrobe.garment(garment_id)
    from_image = pipe(
        person=wardrobe.avatar(1),
        garment=Image.fromarray(garment.image),
        garment_mask=garment.mask,
        garment_category="dress",
        output_type="np",
    )
    np.testing.assert_allclose(from_image.warped_garments, from_avatar.warped_garments, atol=1e-6)


def test_an_image_garment_without_mask_uses_its_non_white_pixels(pipe, wardrobe, garment_ids):
    garment = wardrobe.garment(garment_ids[2])
    inputs = pipe.prepare_inputs(wardrobe.avatar(0), Image.fromarray(garment.image), garment_category="upper")
    assert inputs["cloth_mask"].shape == (1, 1, *SIZE)
    overlap = (inputs["cloth_mask"][0, 0].numpy() > 0) == garment.mask
    assert overlap.mean() > 0.95


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda w, g: {"garment": None}, ValueError, "No garment was given"),
        (lambda w, g: {"garment": []}, ValueError, "No person or no garment"),
        (lambda w, g: {"person": None}, ValueError, "No person was given"),
        (lambda w, g: {"person": "me.png"}, TypeError, "must be an Avatar or a mapping"),
        (
            lambda w, g: {"garment": Image.fromarray(g.image).resize((48, 64)), "garment_category": "upper"},
            ValueError,
            r"`garment\[0\]` is 64x48 \(height x width\), but this model takes 32x24 images",
        ),
        (lambda w, g: {"garment": Image.fromarray(g.image)}, ValueError, "`garment_category` is needed"),
        (
            lambda w, g: {"garment": Image.fromarray(g.image), "garment_category": "hat"},
            ValueError,
            "`garment_category` must be one of",
        ),
        (lambda w, g: {"garment_category": "lower"}, ValueError, "contradicts garment"),
        (lambda w, g: {"garment": {"cloth": Image.fromarray(g.image)}}, ValueError, r"lacks \['cloth_mask'\]"),
        (
            lambda w, g: {"garment": Image.fromarray(g.image), "garment_mask": np.zeros(SIZE, bool),
                          "garment_category": "upper"},
            ValueError,
            "is empty",
        ),
        (lambda w, g: {"person": [w.avatar(0)] * 2, "garment": [g] * 3}, ValueError, "2 persons and 3 garments"),
        (lambda w, g: {"person": {"agnostic": Image.new("RGB", (24, 32))}}, ValueError, "lacks"),
    ],
)  # fmt: skip
def test_bad_inputs_raise_clear_errors(pipe, wardrobe, garment_ids, call, error, message):
    garment = wardrobe.garment(garment_ids[0])
    arguments = {"person": wardrobe.avatar(0), "garment": garment} | call(wardrobe, garment)
    with pytest.raises(error, match=message):
        pipe(**arguments)


def test_wrong_person_sizes_are_refused(pipe, wardrobe, garment_ids):
    garment = wardrobe.garment(garment_ids[0])
    big = Wardrobe(wardrobe.images, wardrobe.labels, resolution=(64, 48))
    with pytest.raises(ValueError, match=r"`person\[0\]` is 64x48 \(height x width\), but this model takes 32x24"):
        pipe(person=big.avatar(0), garment=garment)
    row = {
        "agnostic": Image.new("RGB", (24, 32)),
        "agnostic_mask": Image.new("L", (24, 32)),
        "body_mask": Image.new("L", (48, 64)),
        "pose_keypoints": np.zeros((18, 3)),
    }
    with pytest.raises(ValueError, match=r"person\[0\]\['body_mask'\]` is 64x48"):
        pipe(person=row, garment=garment)
    with pytest.raises(ValueError, match="18 x"):
        pipe(person=row | {"body_mask": Image.new("L", (24, 32)), "pose_keypoints": [[0, 0]]}, garment=garment)


def test_pipeline_save_and_load_round_trip(pipe, wardrobe, garment_ids, tmp_path):
    pipe.save_pretrained(tmp_path / "pipe")
    loaded = TryOnPipeline.from_pretrained(tmp_path / "pipe")
    avatar, garment = wardrobe.avatar(2), wardrobe.garment(garment_ids[4])
    np.testing.assert_array_equal(
        pipe(avatar, garment, output_type="np").images, loaded(avatar, garment, output_type="np").images
    )


def test_paste_garment_fills_the_region_box_and_keeps_the_rest():
    x = inputs(batch_size=1)
    region = torch.zeros(1, 1, *SIZE)
    region[..., 8:24, 6:18] = 1
    cloth_mask = torch.zeros(1, 1, *SIZE)
    cloth_mask[..., 4:28, 4:20] = 1
    cloth = torch.full((1, 3, *SIZE), 0.5)
    pasted = paste_garment(x["agnostic"], region, cloth, cloth_mask)
    assert torch.allclose(pasted[..., 8:24, 6:18], torch.tensor(0.5))
    keep = torch.ones(SIZE, dtype=torch.bool)
    keep[8:24, 6:18] = False
    assert torch.equal(pasted[..., keep], x["agnostic"][..., keep])


def test_the_bundled_model_dresses_an_avatar_of_its_size():
    pipe = TryOnPipeline.from_pretrained(Path(hf_vaegan.__file__).parent / "pretrained" / "wardrobe-tryon")
    assert pipe.resolution == (128, 96) and pipe.tryon.config.use_warping
    with np.load(FIXTURE) as data:
        wardrobe = Wardrobe(data["images"], data["labels"], resolution=pipe.resolution, seed=0)
    garment = wardrobe.garment(int(np.flatnonzero(wardrobe.labels == 0)[0]))
    result = pipe(person=wardrobe.avatar(0), garment=garment, output_type="np")
    assert result.images.shape == result.warped_garments.shape == (1, 128, 96, 3)
    # The trained warp moves the garment off its flat position onto the body.
    assert np.abs(result.warped_garments[0] - garment.image / 255).mean() > 0.05


# The "person" composition: the person's own pixels outside the garment, the garment's colours shaded inside


def test_person_composition_takes_only_the_garment_and_the_persons_pixels():
    model = trained_like(TryOnModel(composition="person", **TINY))
    x = inputs() | {"person_image": inputs(seed=3)["agnostic"]}
    with torch.no_grad():
        out = model(**x)
    assert out.sample.shape == out.rendered.shape == (2, 3, *SIZE) and out.sample.abs().max() <= 1
    assert len(model(**x, return_dict=False)) == 6
    outside = x["agnostic_mask"].expand_as(out.sample) == 0
    assert torch.equal(out.sample[outside], x["agnostic"][outside])
    # Inside: a blend of the shaded warped garment and the person's own pixels, by the composition mask ...
    mask = out.composition_mask
    dressed = mask * out.rendered + (1 - mask) * x["person_image"]
    inside = ~outside
    torch.testing.assert_close(out.sample[inside], dressed[inside])
    # ... the garment shaded by a grey factor in SHADE_RANGE, the same for the three channels: no new hue.
    low, high = SHADE_RANGE
    lit = (out.warped_cloth + 1) > 0.1
    shade = (out.rendered + 1)[lit] / (out.warped_cloth + 1)[lit]
    assert shade.min() >= low - 1e-5 and shade.max() <= high + 1e-5
    factors = (out.rendered + 1) / (out.warped_cloth + 1).clamp(min=1e-3)
    everywhere_lit = lit.all(dim=1, keepdim=True).expand_as(factors)
    spread = factors.amax(dim=1, keepdim=True) - factors.amin(dim=1, keepdim=True)
    assert spread.expand_as(factors)[everywhere_lit].max() < 1e-4
    assert (mask <= out.warped_cloth_mask + 1e-6).all()


def test_person_composition_without_the_garment_is_the_person():
    model = trained_like(TryOnModel(composition="person", **TINY))
    x = inputs() | {"cloth_mask": torch.zeros(2, 1, *SIZE), "person_image": inputs(seed=3)["agnostic"]}
    with torch.no_grad():
        out = model(**x)
    region = x["agnostic_mask"]
    torch.testing.assert_close(out.sample, region * x["person_image"] + (1 - region) * x["agnostic"])
    # Without `person_image`, the agnostic image stands for the person's pixels.
    with torch.no_grad():
        torch.testing.assert_close(model(**(x | {"person_image": None})).sample, x["agnostic"])


def test_the_rendered_composition_ignores_the_person_image():
    model = trained_like(TryOnModel(**TINY))
    assert model.config.composition == "rendered"
    x = inputs()
    with torch.no_grad():
        torch.testing.assert_close(model(**x).sample, model(**x, person_image=inputs(seed=3)["cloth"]).sample)


def test_person_composition_save_load_round_trip(tmp_path):
    model = trained_like(TryOnModel(composition="person", **TINY))
    model.save_pretrained(tmp_path / "tryon")
    assert json.loads((tmp_path / "tryon" / "config.json").read_text())["composition"] == "person"
    loaded = TryOnModel.from_pretrained(tmp_path / "tryon").eval()
    assert loaded.config.composition == "person"
    assert_same_weights(model, loaded)
    x = inputs() | {"person_image": inputs(seed=3)["agnostic"]}
    with torch.no_grad():
        torch.testing.assert_close(loaded(**x).sample, model(**x).sample)


def test_models_saved_before_the_composition_field_load_as_rendered(tmp_path):
    model = trained_like(TryOnModel(**TINY))
    model.save_pretrained(tmp_path / "old")
    config_path = tmp_path / "old" / "config.json"
    config = json.loads(config_path.read_text())
    del config["composition"]
    config_path.write_text(json.dumps(config))
    loaded = TryOnModel.from_pretrained(tmp_path / "old").eval()
    assert loaded.config.composition == "rendered"
    with torch.no_grad():
        torch.testing.assert_close(loaded(**inputs()).sample, model(**inputs()).sample)
    config["composition"] = "painted"
    config_path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match="`composition`"):
        TryOnModel.from_pretrained(tmp_path / "old")


def test_a_wrong_person_image_is_refused():
    model = TryOnModel(composition="person", **TINY)
    with pytest.raises(ValueError, match="`person_image` must have the batch size and size of `agnostic`"):
        model(**inputs(), person_image=torch.zeros(2, 3, 16, 12))


def test_the_pipeline_passes_the_persons_own_pixels(wardrobe, garment_ids):
    pipe = TryOnPipeline(trained_like(TryOnModel(composition="person", **TINY)))
    avatar, garment = wardrobe.avatar(0), wardrobe.garment(garment_ids[0])
    prepared = pipe.prepare_inputs(avatar, garment)
    expected = torch.from_numpy(avatar.image).permute(2, 0, 1).float() / 127.5 - 1
    torch.testing.assert_close(prepared["person_image"][0], expected)
    row = wardrobe.example(0, garment_ids[0])
    person = {key: row[key] for key in ("agnostic", "agnostic_mask", "body_mask", "pose_keypoints")}
    from_row = pipe.prepare_inputs(person, garment)
    torch.testing.assert_close(from_row["person_image"], from_row["agnostic"])
    with_avatar = pipe.prepare_inputs(person | {"avatar": row["avatar"]}, garment)
    torch.testing.assert_close(with_avatar["person_image"][0], expected)
    assert pipe(person=avatar, garment=garment, output_type="np").images.shape == (1, *SIZE, 3)


# The garment's class


def test_the_garment_class_reaches_both_unets_and_unknown_reads_as_empty():
    model = trained_like(TryOnModel(composition="person", num_garment_classes=10, **TINY))
    x = inputs() | {"person_image": inputs(seed=3)["agnostic"]}
    with torch.no_grad():
        coat, pullover = (model(**x, garment_class=torch.tensor([label, label])) for label in (4, 2))
        unknown = model(**x, garment_class=torch.tensor([-1, -1]))
        default = model(**x)
    assert not torch.allclose(coat.sample, pullover.sample)
    assert not torch.allclose(coat.flow, pullover.flow)
    torch.testing.assert_close(unknown.sample, default.sample)
    planes = model.class_planes(torch.tensor([4, -1]), x["agnostic"])[0]
    assert planes.shape == (2, 10, *SIZE) and planes[0, 4].min() == 1 and planes[0].sum() == SIZE[0] * SIZE[1]
    assert planes[1].abs().sum() == 0
    # A model without classes ignores them.
    plain = trained_like(TryOnModel(**TINY))
    with torch.no_grad():
        torch.testing.assert_close(plain(**x, garment_class=torch.tensor([4, 2])).sample, plain(**x).sample)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (torch.tensor([10, 0]), r"in \[0, 10\) or -1"),
        (torch.tensor([0.5, 1.0]), "must be 2 integers"),
        (torch.tensor([1]), "must be 2 integers"),
    ],
)
def test_bad_garment_classes_are_refused(value, message):
    with pytest.raises(ValueError, match=message):
        TryOnModel(num_garment_classes=10, **TINY)(**inputs(), garment_class=value)


def test_the_pipeline_passes_the_garment_class(wardrobe, garment_ids):
    pipe = TryOnPipeline(trained_like(TryOnModel(composition="person", num_garment_classes=10, **TINY)))
    avatar, coat = wardrobe.avatar(0), wardrobe.garment(garment_ids[4])
    assert pipe.prepare_inputs(avatar, coat)["garment_class"].tolist() == [4]
    image_garment = pipe.prepare_inputs(avatar, coat.image, garment_category="upper")
    assert image_garment["garment_class"].tolist() == [-1]
    row = wardrobe.example(0, garment_ids[4])
    mapping = {"cloth": row["cloth"], "cloth_mask": row["cloth_mask"], "garment_label": row["garment_label"]}
    assert pipe.prepare_inputs(avatar, mapping, garment_category="upper")["garment_class"].tolist() == [4]
    with pytest.raises(TypeError, match="garment_label"):
        pipe.prepare_inputs(avatar, mapping | {"garment_label": "coat"}, garment_category="upper")
    assert pipe(person=[avatar, avatar], garment=[coat, coat.image], garment_category="upper").images[1].size == (
        SIZE[1],
        SIZE[0],
    )


def test_a_model_widened_to_read_classes_computes_the_same_until_fine_tuned():
    model = trained_like(TryOnModel(composition="person", **TINY))
    widened = model.with_garment_classes(10).eval()
    assert widened.config.num_garment_classes == 10 and model.config.num_garment_classes == 0
    x = inputs() | {"person_image": inputs(seed=3)["agnostic"]}
    with torch.no_grad():
        torch.testing.assert_close(widened(**x, garment_class=torch.tensor([4, 2])).sample, model(**x).sample)
    with pytest.raises(ValueError, match="already reads 10 garment classes"):
        widened.with_garment_classes(6)


@pytest.mark.parametrize("factor", [2, 3, 4])
def test_convex_upsampling_at_bilinear_weights_is_bilinear_upsampling(factor):
    flow = torch.randn(2, 2, 5, 7, generator=torch.Generator().manual_seed(0))
    indices, weights = bilinear_taps(factor)
    assert len(indices) == len(weights) == 4 * factor**2 and set(indices) <= set(range(9))
    logits = torch.tensor(weights).log().view(1, -1, 1, 1).expand(2, -1, 5, 7)
    bilinear = F.interpolate(flow, scale_factor=factor, mode="bilinear", align_corners=False)
    torch.testing.assert_close(convex_upsample(flow, logits, factor), bilinear)


def test_convex_upsampling_keeps_a_jump_in_the_flow_sharp():
    """Two regions of constant flow meeting between coarse pixels: bilinear upsampling blends them over two fine
    pixels, weights that pick each fine pixel's own side reproduce the jump exactly."""
    factor, coarse_width = 2, 6
    flow = torch.zeros(1, 2, 4, coarse_width)
    flow[..., coarse_width // 2 :] = 1.0
    indices, weights = bilinear_taps(factor)
    fine_columns = torch.arange(coarse_width * factor)
    # Per tap and sub-pixel: the coarse column the tap reads, relative to the fine pixel's own coarse pixel.
    tap_columns = torch.tensor([index % 3 - 1 for index in indices]).view(4, factor, factor)
    own_side = fine_columns // factor >= coarse_width // 2
    logits = torch.full((1, 4, factor, factor, 4, coarse_width), -30.0)
    for coarse_x in range(coarse_width):
        for sub_x in range(factor):
            fine_x = coarse_x * factor + sub_x
            read = (coarse_x + tap_columns[:, :, sub_x]).clamp(0, coarse_width - 1) >= coarse_width // 2
            logits[0, :, :, sub_x, :, coarse_x] = torch.where(read == own_side[fine_x], 0.0, -30.0)[..., None]
    sharp = convex_upsample(flow, logits.view(1, -1, 4, coarse_width), factor)
    expected = own_side.float().expand(1, 2, 4 * factor, -1)
    torch.testing.assert_close(sharp, expected)
    blended = F.interpolate(flow, scale_factor=factor, mode="bilinear", align_corners=False)
    assert ((blended > 0) & (blended < 1)).any()


def test_a_model_given_convex_flow_upsampling_computes_the_same_until_fine_tuned():
    model = trained_like(TryOnModel(composition="person", num_garment_classes=10, **TINY))
    convex = model.with_convex_flow_upsampling().eval()
    assert convex.config.flow_upsampling == "convex" and model.config.flow_upsampling == "bilinear"
    assert convex.warper.to_output.out_channels == 2 + 4 * 2**2
    x = inputs() | {"person_image": inputs(seed=3)["agnostic"], "garment_class": torch.tensor([4, -1])}
    with torch.no_grad():
        before, after = model(**x), convex(**x)
    torch.testing.assert_close(after.flow, before.flow)
    torch.testing.assert_close(after.sample, before.sample)
    with pytest.raises(ValueError, match="only a warping model with bilinear flow upsampling"):
        convex.with_convex_flow_upsampling()
    with pytest.raises(ValueError, match="use_warping=False"):
        TryOnModel(use_warping=False, **TINY).with_convex_flow_upsampling()


def test_convex_flow_upsampling_learns_and_round_trips(tmp_path):
    model = trained_like(TryOnModel(flow_upsampling="convex", **TINY))
    x = inputs()
    model.train()
    model(**x).flow.square().mean().backward()
    upsampling_weights = model.warper.to_output.weight.grad[2:]
    assert upsampling_weights.abs().sum() > 0  # the upsampling weights get gradients
    model.eval().save_pretrained(tmp_path)
    loaded = TryOnModel.from_pretrained(tmp_path).eval()
    assert loaded.config.flow_upsampling == "convex"
    with torch.no_grad():
        torch.testing.assert_close(loaded(**x).sample, model(**x).sample)
