import dataclasses
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hf_vaegan.data import (
    BODY_SHAPE_RANGES,
    GARMENT_GROUPS,
    GARMENT_LABELS,
    PARSE_LABELS,
    TEST_AVATAR_ID_OFFSET,
    BodyShape,
    Garment,
    Wardrobe,
    agnostic,
    build_wardrobe_dataset,
    dress,
    make_garment,
    render_avatar,
    split_garments,
    wardrobe_dataset_dict,
)

FIXTURE = Path(__file__).parent / "fixtures" / "fashion_mnist_1k.npz"
IMAGE_COLUMNS = ("image", "cloth", "cloth_mask", "agnostic", "agnostic_mask", "image_parse", "body_mask", "avatar")


@pytest.fixture(scope="module")
def fashion_mnist():
    with np.load(FIXTURE) as data:
        return data["images"], data["labels"]


@pytest.fixture(scope="module")
def wardrobe(fashion_mnist):
    return Wardrobe(*fashion_mnist, seed=0)


@pytest.fixture(scope="module")
def dataset_dict(fashion_mnist):
    return wardrobe_dataset_dict(*fashion_mnist, num_train=12, num_test=6, seed=3)


def first_of_label(labels, label, skip=0):
    return int(np.flatnonzero(labels == label)[skip])


def central_run(row):
    """Length of the run of True around the middle of a mask row."""
    middle = len(row) // 2
    left = np.flatnonzero(~row[:middle])
    right = np.flatnonzero(~row[middle:])
    return (middle + (right[0] if len(right) else len(row) - middle)) - ((left[-1] + 1) if len(left) else 0)


def raw_bytes(dataset, column):
    return [value["bytes"] for value in dataset.cast_column(column, datasets.Image(decode=False))[column]]


@pytest.mark.parametrize("name", ["height", "hip_width", "left_elbow_bend"])
@pytest.mark.parametrize("outside", [-1, 1])
def test_body_shape_out_of_range_raises_naming_the_parameter(name, outside):
    low, high = BODY_SHAPE_RANGES[name]
    value = low - 0.01 * (high - low) if outside < 0 else high + 0.01 * (high - low)
    with pytest.raises(ValueError, match=f"BodyShape.{name} must be in"):
        BodyShape(**{name: value})


def test_body_shape_sample_is_seeded_and_in_range():
    shape = BodyShape.sample(np.random.default_rng(5))
    assert shape == BodyShape.sample(5)
    assert shape != BodyShape.sample(6)
    for name, (low, high) in BODY_SHAPE_RANGES.items():
        assert low <= getattr(shape, name) <= high
    with pytest.raises(TypeError, match="skin_tone must be a number"):
        BodyShape(skin_tone="dark")


@pytest.mark.parametrize("label", [5, 7, 8, 9, 10])
def test_disallowed_garment_labels_raise(fashion_mnist, label):
    images, _ = fashion_mnist
    with pytest.raises(ValueError, match=f"label {label} .*allowed: 0 T-shirt/top, 1 Trouser"):
        make_garment(images[0], label, rng=0)


def test_make_garment_rejects_bad_images(fashion_mnist):
    images, _ = fashion_mnist
    with pytest.raises(ValueError, match=r"shape \(28, 28\)"):
        make_garment(images[:2], 0)
    with pytest.raises(TypeError, match="uint8"):
        make_garment(images[0].astype(np.float32), 0)


def test_cloth_mask_is_binary_and_covers_the_garment(wardrobe, fashion_mnist):
    _, labels = fashion_mnist
    for label in (0, 1, 2, 3, 4, 6):
        garment = wardrobe.garment(first_of_label(labels, label))
        assert garment.mask.dtype == bool and 0.1 < garment.mask.mean() < 0.8
        # Everything that is not white background is inside the mask.
        assert (garment.image[~garment.mask] == 255).all()
        assert (garment.image[garment.mask] != 255).any(axis=-1).mean() > 0.9


def test_render_avatar_outputs_and_parameters_act(fashion_mnist):
    avatar = render_avatar(BodyShape(), resolution=(128, 96))
    assert avatar.image.shape == (128, 96, 3) and avatar.image.dtype == np.uint8
    assert avatar.body_mask.dtype == bool and np.array_equal(avatar.body_mask, avatar.parse > 0)
    keypoints = avatar.keypoints
    assert keypoints.shape == (18, 3) and (keypoints[:, 2] == 1).all()
    assert ((keypoints[:, 0] >= 0) & (keypoints[:, 0] < 96) & (keypoints[:, 1] >= 0) & (keypoints[:, 1] < 128)).all()
    # OpenPose convention: the person's right shoulder is on the image's left.
    assert keypoints[2, 0] < keypoints[1, 0] < keypoints[5, 0]
    for part in ("hair", "face", "torso_skin", "left_arm", "right_arm", "left_leg", "right_leg", "left_shoe"):
        assert (avatar.parse == PARSE_LABELS.index(part)).any(), part

    arms_out = BodyShape(right_arm_angle=40.0, left_arm_angle=40.0)
    hip_row = int(round(keypoints[8, 1])) - 2
    slim, wide = (render_avatar(dataclasses.replace(arms_out, hip_width=width)) for width in (0.16, 0.25))
    assert wide.body_mask[hip_row].sum() > slim.body_mask[hip_row].sum() + 8
    tall = render_avatar(dataclasses.replace(BodyShape(), height=0.94))
    assert np.flatnonzero(tall.body_mask.any(axis=1))[0] < np.flatnonzero(avatar.body_mask.any(axis=1))[0] - 5
    raised = render_avatar(dataclasses.replace(BodyShape(), right_arm_angle=40.0))
    assert raised.keypoints[4, 0] < keypoints[4, 0] - 10


def test_garment_stays_inside_the_agnostic_region(wardrobe, fashion_mnist):
    _, labels = fashion_mnist
    avatar = wardrobe.avatar(1)
    for label in (0, 1, 3, 4):
        dressed = dress(avatar, wardrobe.garment(first_of_label(labels, label)))
        outside = ~dressed.agnostic_mask
        assert np.array_equal(dressed.image[outside], avatar.image[outside]), label
        assert (dressed.image[dressed.agnostic_mask] != avatar.image[dressed.agnostic_mask]).any(axis=-1).mean() > 0.3
        assert not (dressed.warped_cloth_mask & outside).any()
        person = agnostic(dressed.image, dressed.agnostic_mask)
        assert np.array_equal(person[outside], dressed.image[outside])
        assert (person[dressed.agnostic_mask] == 128).all()


def test_agnostic_region_depends_on_the_category_group_only(wardrobe, fashion_mnist):
    _, labels = fashion_mnist
    avatar = wardrobe.avatar(2)
    for group, group_labels in GARMENT_GROUPS.items():
        masks = [
            dress(avatar, wardrobe.garment(first_of_label(labels, label, skip))).agnostic_mask
            for label in group_labels
            for skip in (0, 5)
        ]
        assert all(np.array_equal(mask, masks[0]) for mask in masks), group


def test_garment_follows_the_body(wardrobe, fashion_mnist):
    _, labels = fashion_mnist
    avatar = render_avatar(BodyShape(height=0.9))
    rows = {name: int(round(avatar.keypoints[index, 1])) for name, index in (("hip", 8), ("knee", 9), ("ankle", 10))}
    trousers = dress(avatar, wardrobe.garment(first_of_label(labels, 1))).warped_cloth_mask
    assert trousers[rows["knee"]].any() and trousers[rows["ankle"] - 2].any()
    assert not trousers[: int(avatar.keypoints[1, 1]) + 5].any()
    dressed = dress(avatar, wardrobe.garment(first_of_label(labels, 3, skip=2)))
    widths = dressed.warped_cloth_mask.sum(axis=1)
    hem_row = np.flatnonzero(widths)[-1] - 2
    assert widths[hem_row] > widths[rows["hip"] - 4]
    assert (dressed.parse == PARSE_LABELS.index("dress")).sum() > 200

    slim, broad = (render_avatar(dataclasses.replace(BodyShape(), waist_width=w)) for w in (0.12, 0.21))
    pullover = wardrobe.garment(first_of_label(labels, 2))
    waist_row = int(round(slim.keypoints[8, 1] - 0.1 * 128))
    widths = [central_run(dress(avatar, pullover).warped_cloth_mask[waist_row]) for avatar in (slim, broad)]
    assert widths[1] > widths[0] + 8


def test_bent_arms_occlude_the_garment(wardrobe, fashion_mnist):
    _, labels = fashion_mnist
    shape = dataclasses.replace(BodyShape(), right_elbow_bend=110.0, left_elbow_bend=100.0)
    avatar = render_avatar(shape)
    dressed = dress(avatar, wardrobe.garment(first_of_label(labels, 3)))
    arm_labels = [PARSE_LABELS.index("left_arm"), PARSE_LABELS.index("right_arm")]
    forearm_over_dress = np.isin(avatar.parse, arm_labels) & dressed.warped_cloth_mask
    assert forearm_over_dress.sum() > 20
    assert np.isin(dressed.parse[forearm_over_dress], arm_labels).all()


@pytest.mark.parametrize("label", [0, 1, 3, 4])
def test_the_renderers_flow_samples_the_garment_as_worn(wardrobe, fashion_mnist, label):
    _, labels = fashion_mnist
    shape = dataclasses.replace(BodyShape(), right_elbow_bend=60.0)
    garment = wardrobe.garment(first_of_label(labels, label))
    dressed = dress(render_avatar(shape), garment)
    flow = torch.from_numpy(dressed.warped_cloth_flow).permute(2, 0, 1)[None]
    assert np.array_equal(torch.isfinite(flow).all(dim=1)[0].numpy(), dressed.warped_cloth_mask)
    # Sampled where the flow says (as TryOnModel.warp does), the cloth gives the garment as worn, up to the
    # renderer's shading (a grey factor in [0.8, 1]); seams between parts and outlines blend two colours.
    height, width = dressed.warped_cloth_mask.shape
    identity = F.affine_grid(torch.eye(2, 3)[None], [1, 1, height, width], align_corners=False)
    grid = identity + torch.nan_to_num(flow).permute(0, 2, 3, 1)
    cloth = torch.from_numpy(garment.image).permute(2, 0, 1)[None].float() / 255
    sampled = F.grid_sample(cloth, grid, align_corners=False)[0].permute(1, 2, 0)
    worn = torch.from_numpy(dressed.warped_cloth).float() / 255
    shade = ((worn * sampled).sum(-1) / sampled.square().sum(-1).clamp(min=1e-6)).clamp(0.8, 1)
    error = (sampled * shade[..., None] - worn).abs().amax(-1)
    filled = torch.nan_to_num(flow, nan=9.0)
    neighbours = F.unfold(F.pad(filled, (1, 1, 1, 1), mode="replicate"), 3).view(2, 9, height, width)
    jumps = (neighbours - filled[0, :, None]).abs().amax(dim=(0, 1))
    smooth = torch.from_numpy(dressed.warped_cloth_mask) & (jumps < 0.03)
    assert smooth.sum() > 300
    assert torch.quantile(error[smooth], 0.99) < 0.01


def test_any_pair_renders_again_from_stored_columns(dataset_dict, fashion_mnist):
    row = dataset_dict["test"][0]
    wardrobe = Wardrobe(*fashion_mnist, seed=3)
    garment = Garment(
        np.asarray(row["unpaired_cloth"]), np.asarray(row["unpaired_cloth_mask"]) > 0, row["unpaired_garment_label"]
    )
    rendered = dress(wardrobe.avatar(row["avatar_id"]), garment).image
    assert np.array_equal(rendered, np.asarray(row["unpaired_image"]))


def test_dataset_columns(dataset_dict):
    train, test = dataset_dict["train"], dataset_dict["test"]
    assert len(train) == 12 and len(test) == 6
    assert "unpaired_image" in test.column_names and "unpaired_image" not in train.column_names
    assert train.features["garment_label"].names[3] == "Dress"
    for row in test:
        arrays = {name: np.asarray(row[name]) for name in IMAGE_COLUMNS}
        assert arrays["image"].shape == (128, 96, 3)
        for name in ("cloth_mask", "agnostic_mask", "body_mask"):
            assert set(np.unique(arrays[name])) <= {0, 255}, name
        outside = arrays["agnostic_mask"] == 0
        assert np.array_equal(arrays["image"][outside], arrays["agnostic"][outside])
        assert np.array_equal(arrays["image"][outside], arrays["avatar"][outside])
        assert np.array_equal(np.asarray(row["unpaired_image"])[outside], arrays["image"][outside])
        assert np.asarray(row["pose_keypoints"]).shape == (18, 3)
        flow = np.asarray(row["warped_cloth_flow"])
        assert flow.shape == (2, 128, 96) and test.features["warped_cloth_flow"].dtype == "float16"
        assert np.array_equal(np.isfinite(flow).all(axis=0), np.asarray(row["warped_cloth_mask"]) > 0)
        assert row["unpaired_garment_id"] != row["garment_id"]
        assert {row["unpaired_garment_label"], row["garment_label"]} <= next(
            set(labels) for labels in GARMENT_GROUPS.values() if row["garment_label"] in labels
        )
        for name, (low, high) in BODY_SHAPE_RANGES.items():
            assert low - 1e-4 <= row[name] <= high + 1e-4


def test_splits_share_no_avatar_and_no_garment(dataset_dict, fashion_mnist):
    train, test = dataset_dict["train"], dataset_dict["test"]
    assert set(train["avatar_id"]).isdisjoint(test["avatar_id"])
    assert min(test["avatar_id"]) >= TEST_AVATAR_ID_OFFSET
    assert set(train["garment_id"]).isdisjoint(set(test["garment_id"]) | set(test["unpaired_garment_id"]))
    shapes = {
        split: set(dataset.select_columns(list(BODY_SHAPE_RANGES)).to_pandas().itertuples(index=False))
        for split, dataset in dataset_dict.items()
    }
    assert shapes["train"].isdisjoint(shapes["test"]) and len(shapes["train"]) == 6
    split = split_garments(fashion_mnist[1], seed=3)
    assert set(train["garment_id"]) <= set(split["train"]) and set(test["garment_id"]) <= set(split["test"])


def test_same_seed_same_bytes_different_seed_different(fashion_mnist, dataset_dict):
    again = build_wardrobe_dataset(*fashion_mnist, num_samples=12, seed=3, split="train")
    other = build_wardrobe_dataset(*fashion_mnist, num_samples=12, seed=4, split="train")
    for column in IMAGE_COLUMNS:
        assert raw_bytes(again, column) == raw_bytes(dataset_dict["train"], column), column
    assert raw_bytes(other, "image") != raw_bytes(again, "image")
    assert again["garment_id"] == dataset_dict["train"]["garment_id"]


def test_save_to_disk_round_trip(dataset_dict, tmp_path):
    dataset_dict.save_to_disk(tmp_path / "wardrobe")
    loaded = datasets.load_from_disk(tmp_path / "wardrobe")
    for split in ("train", "test"):
        assert loaded[split].features == dataset_dict[split].features
        for column in IMAGE_COLUMNS:
            assert raw_bytes(loaded[split], column) == raw_bytes(dataset_dict[split], column)
        assert loaded[split]["pose_keypoints"] == dataset_dict[split]["pose_keypoints"]


@pytest.mark.parametrize("label", [0, 1, 3])
def test_a_small_flat_garment_image_dresses_like_the_garment_it_shows(wardrobe, fashion_mnist, label):
    """A 64x64 garment (what the colour garment GAN makes) is dressed as the same garment rendered at full size."""
    images, labels = fashion_mnist
    item = images[first_of_label(labels, label)]
    small = make_garment(item, label, rng=5, resolution=(64, 64))
    full = make_garment(item, label, rng=5)
    garment = Garment.from_image(small.image, label, full.resolution)
    assert garment.resolution == full.resolution and garment.label == label
    overlap = (garment.mask & full.mask).sum() / (garment.mask | full.mask).sum()
    assert overlap > 0.85, overlap
    colour_gap = np.abs(garment.image.astype(float) - full.image.astype(float))[garment.mask & full.mask].mean()
    assert colour_gap < 15, colour_gap  # same colours and patterns, resampled
    assert (garment.image[~garment.mask] == 255).all()
    avatar = wardrobe.avatar(0)
    worn, reference = dress(avatar, garment), dress(avatar, full)
    worn_overlap = (worn.warped_cloth_mask & reference.warped_cloth_mask).sum() / reference.warped_cloth_mask.sum()
    assert worn_overlap > 0.93, worn_overlap


def test_an_unframed_garment_image_fills_the_cloth_frame(fashion_mnist):
    """A photo cropped to its garment (no margin, `framed=False`) is dressed as the framed image of it."""
    images, labels = fashion_mnist
    small = make_garment(images[first_of_label(labels, 3)], 3, rng=2, resolution=(64, 64))
    framed = Garment.from_image(small.image, 3)
    margin = (64 - round(0.88 * 64)) // 2
    unframed = Garment.from_image(small.image[margin : 64 - margin, margin : 64 - margin], 3, framed=False)
    overlap = (framed.mask & unframed.mask).sum() / (framed.mask | unframed.mask).sum()
    assert overlap > 0.95, overlap


def test_garment_from_image_refuses_what_it_cannot_read():
    with pytest.raises(ValueError, match=r"square \(S, S, 3\) uint8"):
        Garment.from_image(np.full((64, 48, 3), 255, np.uint8), 0)
    with pytest.raises(ValueError, match="no pixel is off white by more than 0.12"):
        Garment.from_image(np.full((64, 64, 3), 250, np.uint8), 0)
    with pytest.raises(ValueError, match="not a wearable garment"):
        Garment.from_image(np.zeros((64, 64, 3), np.uint8), 9)
    with pytest.raises(ValueError, match=r"background_threshold must be in \(0, 1\)"):
        Garment.from_image(np.zeros((64, 64, 3), np.uint8), 0, background_threshold=1.5)


GARMENT_PARSE = [PARSE_LABELS.index(name) for name in ("upper_clothes", "coat")]


def flat_top(sleeve_rows: slice | None, straps: bool = False) -> np.ndarray:
    """A 28 x 28 Fashion-MNIST-like top: a torso, straps above it or sleeves out to the frame's sides over
    ``sleeve_rows``."""
    item = np.zeros((28, 28), np.uint8)
    item[8 if straps else 2 :, 7:21] = 180
    if straps:
        item[:8, 8:10] = item[:8, 18:20] = 180
    if sleeve_rows is not None:
        item[sleeve_rows, 1:27] = 180
    return item


@pytest.mark.parametrize(
    ("label", "item", "sleeve"),
    [
        (0, flat_top(None, straps=True), "none"),  # a tank top: its sides run down to the hem
        (0, flat_top(slice(2, 9)), "short"),
        (2, flat_top(slice(2, 27)), "long"),  # a pullover's sleeves hang down to its hem
    ],
)
def test_sleeves_follow_the_flat_garment(label, item, sleeve):
    avatar = render_avatar(BodyShape())
    garment = make_garment(item, label, 0, avatar.resolution)
    arms = np.isin(avatar.parse, [PARSE_LABELS.index("left_arm"), PARSE_LABELS.index("right_arm")])
    # Arms are drawn in front of the garment's body, sleeves in front of the arms.
    worn_on_arms = (np.isin(dress(avatar, garment).parse, GARMENT_PARSE) & arms).sum() / arms.sum()
    assert {"none": worn_on_arms < 0.02, "short": 0.05 < worn_on_arms < 0.5, "long": worn_on_arms > 0.5}[sleeve], (
        worn_on_arms
    )


def drawn_dress(colour: tuple[int, int, int]) -> np.ndarray:
    """A 64 x 64 colour dress on white, laid out like a colour garment GAN's sample."""
    image = np.full((64, 64, 3), 255, np.uint8)
    image[6:58, 20:44] = colour
    return image


def test_drawn_garments_join_the_train_split_only(fashion_mnist):
    images, labels = fashion_mnist
    drawn = (np.stack([drawn_dress((200, 30, 40)), drawn_dress((20, 150, 60))]), np.array([3, 3]))
    wardrobe = Wardrobe(images, labels, seed=0, drawn_garments=drawn)
    garment = wardrobe.garment(len(images) + 1)
    assert garment.label == 3 and np.array_equal(garment.image, Garment.from_image(drawn[0][1], 3).image)
    with pytest.raises(ValueError, match="garment_id must be in"):
        wardrobe.garment(len(images) + 2)

    # Few Fashion-MNIST garments and many rows: every drawn garment is worn in train, none in test.
    few = np.flatnonzero(labels == 3)[:10]
    dataset = wardrobe_dataset_dict(images[few], labels[few], num_train=12, num_test=2, drawn_garments=drawn)
    assert {10, 11} <= set(dataset["train"]["garment_id"])
    assert max([*dataset["test"]["garment_id"], *dataset["test"]["unpaired_garment_id"]]) < 10
    worn = dataset["train"].filter(lambda row: row["garment_id"] == 10)[0]
    assert (
        np.abs(np.asarray(worn["warped_cloth"])[np.asarray(worn["warped_cloth_mask"]) > 0] - (200, 30, 40)).mean() < 12
    )


@pytest.mark.parametrize(
    ("drawn", "message"),
    [
        ((np.zeros((2, 64, 64), np.uint8), np.array([3, 3])), r"\(M, S, S, 3\) uint8"),
        ((np.zeros((2, 64, 48, 3), np.uint8), np.array([3, 3])), r"\(M, S, S, 3\) uint8"),
        ((np.zeros((2, 64, 64, 3), np.uint8), np.array([3, 8])), "classes of"),
        ((np.zeros((2, 64, 64, 3), np.uint8), np.array([3])), "classes of"),
    ],
)
def test_drawn_garments_are_checked(fashion_mnist, drawn, message):
    with pytest.raises(ValueError, match=message):
        Wardrobe(*fashion_mnist, drawn_garments=drawn)


def test_make_wardrobe_dataset_adds_a_colour_gans_garments_to_train(fashion_mnist, tmp_path):
    import importlib.util

    from hf_vaegan import Generator

    images, labels = fashion_mnist
    folder = tmp_path / "fashion_mnist"
    folder.mkdir()
    for split in ("train", "test"):
        np.savez(folder / f"{split}.npz", images=images[:500], labels=labels[:500])
    gan = tmp_path / "gan"
    Generator(resolution=64, out_channels=3, latent_dim=8, base_channels=8, num_classes=6).save_pretrained(gan)
    script = Path(__file__).resolve().parents[1] / "examples" / "make_wardrobe_dataset.py"
    spec = importlib.util.spec_from_file_location("make_wardrobe_dataset", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    base = ["--fashion_mnist", str(folder), "--num_train", "24", "--num_test", "4", "--preview_rows", "2"]
    with pytest.raises(SystemExit):
        module.parse_args([*base, "--output_dir", str(tmp_path / "out"), "--num_gan_garments", "6"])

    drawn, drawn_labels = module.draw_gan_garments(gan, 9, seed=0)
    assert drawn.shape == (9, 64, 64, 3) and drawn.dtype == np.uint8
    assert list(drawn_labels) == [*GARMENT_LABELS, *GARMENT_LABELS[:3]]  # the wearable classes in turn
    module.main([*base, "--output_dir", str(tmp_path / "out"), "--garment_gan", str(gan), "--num_gan_garments", "30"])
    dataset = datasets.load_from_disk(str(tmp_path / "out"))
    assert any(garment_id >= 1000 for garment_id in dataset["train"]["garment_id"])  # train + test items: 1,000
    assert max(dataset["test"]["garment_id"]) < 1000


def test_a_garment_gan_takes_its_own_class_for_each_wearable_class():
    from hf_vaegan.data import garment_gan_label

    assert [garment_gan_label(index, 6) for index in range(6)] == list(range(6))
    assert [garment_gan_label(index, 10) for index in range(6)] == list(GARMENT_LABELS)
    with pytest.raises(ValueError, match="wearable classes or the 10 of Fashion-MNIST, not 3"):
        garment_gan_label(0, 3)
