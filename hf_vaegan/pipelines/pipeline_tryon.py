"""Virtual try-on with a `TryOnModel`: a person and a garment in, the dressed person and the warped garment out."""

import reprlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F
from diffusers.utils import BaseOutput

from ..data.images import images_to_tensor
from ..data.wardrobe import GARMENT_GROUPS, POSE_KEYPOINTS, Avatar, Garment, agnostic, agnostic_region
from ..models.tryon import TryOnModel
from .pipeline_utils import CHUNK_VALUES, SingleModelPipeline, check_count, check_output_type, in_chunks

PERSON_KEYS = ("agnostic", "agnostic_mask", "body_mask", "pose_keypoints")
GARMENT_KEYS = ("cloth", "cloth_mask")
# A pixel of a garment image without a mask is taken as background when all its channels are at least this light.
WHITE_THRESHOLD = 250


@dataclass
class TryOnPipelineOutput(BaseOutput):
    """
    Args:
        images (`list[PIL.Image.Image]`, `np.ndarray` or `torch.Tensor`): the persons wearing the garments: PIL
            images, `(N, H, W, 3)` in [0, 1], or `(N, 3, H, W)` in [-1, 1], as `output_type` asks.
        warped_garments (same type as `images`): the garments warped onto the bodies, on white (the unwarped
            garments for a model without warping).
    """

    images: list[PIL.Image.Image] | np.ndarray | torch.Tensor
    warped_garments: list[PIL.Image.Image] | np.ndarray | torch.Tensor | None = None


def _image_array(value: Any, name: str) -> np.ndarray:
    """One image (see `hf_vaegan.data.images.images_to_tensor`; transparent pixels on white) -> (H, W, 3) uint8."""
    if isinstance(value, (list, tuple)):
        raise TypeError(f"`{name}` must be one image, got a {type(value).__name__}.")
    batch = images_to_tensor(value, 3, name=name)
    if len(batch) != 1:
        raise ValueError(f"`{name}` must be one image, got a batch of {len(batch)}.")
    return ((batch[0] + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()


def _mask_array(value: Any, name: str) -> np.ndarray:
    """A mask (PIL mode L or 1, or a 2D bool/uint8 array; nonzero = inside) -> (H, W) bool."""
    if isinstance(value, PIL.Image.Image):
        if value.mode not in ("L", "1"):
            raise ValueError(f"`{name}` must be a mode 'L' or '1' mask image, got mode {value.mode!r}.")
        array = np.asarray(value)
        return array > 127 if array.dtype == np.uint8 else array.astype(bool)
    if isinstance(value, np.ndarray):
        if value.ndim != 2 or value.dtype not in (np.bool_, np.uint8):
            raise ValueError(f"`{name}` must be an (H, W) bool or uint8 array, got {value.dtype} {value.shape}.")
        return value > 127 if value.dtype == np.uint8 else value
    raise TypeError(f"`{name}` must be a PIL image or a numpy array, got {type(value).__name__}.")


def _keypoints_array(value: Any, name: str) -> np.ndarray:
    try:
        array = np.asarray(value.cpu() if isinstance(value, torch.Tensor) else value, dtype=np.float32)
    except (TypeError, ValueError):
        expected = f"{len(POSE_KEYPOINTS)} x [x, y, confidence]"
        raise TypeError(f"`{name}` must be numbers, {expected}, got {reprlib.repr(value)}.") from None
    if array.shape != (len(POSE_KEYPOINTS), 3):
        raise ValueError(f"`{name}` must be {len(POSE_KEYPOINTS)} x [x, y, confidence], got shape {array.shape}.")
    if not np.isfinite(array).all():
        raise ValueError(f"`{name}` contains NaN or infinite values.")
    return array


def paste_garment(
    agnostic: torch.Tensor, agnostic_mask: torch.Tensor, cloth: torch.Tensor, cloth_mask: torch.Tensor
) -> torch.Tensor:
    """The naive try-on baseline: each garment, cut out by its mask and unwarped, stretched over the bounding box of
    the try-on region and pasted on the agnostic person (the rest of the region stays grey).

    Args:
        agnostic: `(B, 3, H, W)` in [-1, 1]; agnostic_mask: `(B, 1, H, W)` in [0, 1]; cloth: `(B, 3, H, W)` in
            [-1, 1]; cloth_mask: `(B, 1, H, W)` in [0, 1] (as `TryOnModel` takes them).

    Returns:
        `(B, 3, H, W)` in [-1, 1].
    """
    results = []
    for person, region, garment, mask in zip(agnostic, agnostic_mask, cloth, cloth_mask, strict=True):
        result = person.clone()
        boxes = [torch.nonzero(m[0] > 0.5, as_tuple=True) for m in (region, mask)]
        if all(len(rows) for rows, _ in boxes):
            (top, bottom, left, right), (g_top, g_bottom, g_left, g_right) = (
                (rows.min(), rows.max() + 1, cols.min(), cols.max() + 1) for rows, cols in boxes
            )
            cut = torch.cat([garment, mask])[None, :, g_top:g_bottom, g_left:g_right]
            stretched = F.interpolate(cut, size=(int(bottom - top), int(right - left)), mode="bilinear")[0]
            alpha = stretched[3:].clamp(0, 1)
            box = result[:, top:bottom, left:right]
            result[:, top:bottom, left:right] = alpha * stretched[:3] + (1 - alpha) * box
        results.append(result)
    return torch.stack(results)


class TryOnPipeline(SingleModelPipeline):
    r"""Dresses persons in garments with a trained `TryOnModel`.

    **Input contract.** All images must have the model's size, `tryon.config.sample_size` (height, width; 128x96
    for the bundled model): the keypoints are pixel coordinates, so the pipeline never resizes silently.

    - `person`: either an `Avatar` of the synthetic wardrobe (`hf_vaegan.data.render_avatar`, `Wardrobe.avatar`),
      from which the pipeline derives the cloth-agnostic representation itself (the region a garment of the
      garment's group can cover, greyed; the avatar's body mask and keypoints); or a mapping with the try-on columns
      `agnostic` (RGB), `agnostic_mask` and `body_mask` (masks: PIL `L`/`1` images or bool/uint8 arrays) and
      `pose_keypoints` (18 x [x, y, confidence] in pixels, OpenPose COCO-18 order), and optionally `avatar` (the
      person's own pixels, which a model with `composition="person"` shows where the garment does not; default:
      `agnostic`): a row of a wardrobe dataset or of `hf_vaegan.data.load_viton_hd` works as is.
    - `garment`: a `Garment` (`hf_vaegan.data.make_garment`, `Wardrobe.garment`); an image of the flat garment on
      white, with `garment_mask` or else the non-white pixels as its mask; or a mapping with `cloth` and
      `cloth_mask` (a dataset row), and optionally `garment_label`. A model with `num_garment_classes` reads the
      class (a `Garment`'s label, a mapping's `garment_label`); an image garment is of unknown class.
    - `garment_category` (`"upper"`, `"lower"` or `"dress"`): which region to grey out on an `Avatar`; needed when
      the garment is not a `Garment` (whose label tells it).

    Either may be a list (of equal lengths, or one of them of length 1 to pair with all). Images (`agnostic`,
    `cloth`, a garment image) follow every pipeline's contract (`hf_vaegan.data.images.images_to_tensor`: PIL
    images of any mode, transparent ones composited on white; numpy uint8 or floats in [0, 1]; tensors in [-1, 1]),
    converted to RGB. Wrong sizes, bad values and missing inputs raise `ValueError`/`TypeError` naming the input.

    ```python
    from hf_vaegan import TryOnPipeline
    from hf_vaegan.data import Wardrobe

    pipe = TryOnPipeline.from_pretrained("path/or/hub-id")
    wardrobe = Wardrobe(fashion_mnist_images, fashion_mnist_labels)
    result = pipe(person=wardrobe.avatar(0), garment=wardrobe.garment(123))
    result.images[0], result.warped_garments[0]  # PIL images
    ```
    """

    model_name = "tryon"
    model_class = TryOnModel
    model_cpu_offload_seq = "tryon"

    def __init__(self, tryon: TryOnModel):
        super().__init__()
        self.register_modules(tryon=tryon)

    def usage_example(self) -> str:
        height, width = self.resolution
        return f"""import numpy as np

# the try-on columns of a person (a wardrobe-dataset or VITON-HD row works as is), here drawn by hand
agnostic_mask = np.zeros(({height}, {width}), dtype=bool)
agnostic_mask[{height * 3 // 10}:{height * 7 // 10}, {width // 4}:{width * 3 // 4}] = True  # the region to dress
body_mask = np.zeros(({height}, {width}), dtype=bool)
body_mask[{height // 10}:{height - 4}, {width // 4}:{width * 3 // 4}] = True
agnostic = np.full(({height}, {width}, 3), 0.9)
agnostic[body_mask] = [0.8, 0.6, 0.5]
agnostic[agnostic_mask] = 0.5  # the try-on region, greyed
person = {{"agnostic": agnostic, "agnostic_mask": agnostic_mask, "body_mask": body_mask,
          "pose_keypoints": np.zeros((18, 3))}}  # [x, y, confidence] in pixels, COCO-18 order (none here)
garment = np.ones(({height}, {width}, 3))  # a flat garment on white: its non-white pixels are its mask
garment[{height // 4}:{height * 3 // 4}, {width // 5}:{width * 4 // 5}] = [0.7, 0.1, 0.2]
result = pipe(person=person, garment=garment)
result.images[0], result.warped_garments[0]  # PIL images, {height}x{width}"""

    @property
    def resolution(self) -> tuple[int, int]:
        """(height, width) every input must have."""
        return tuple(self.tryon.config.sample_size)

    @property
    def values_per_image(self) -> int:
        """Values of one try-on's outputs (the dressed person and the warped garment)."""
        height, width = self.resolution
        return 2 * 3 * height * width

    def _check_size(self, array: np.ndarray, name: str) -> None:
        if tuple(array.shape[:2]) != self.resolution:
            height, width = self.resolution
            raise ValueError(
                f"`{name}` is {array.shape[0]}x{array.shape[1]} (height x width), but this model takes "
                f"{height}x{width} images: resize every input (and scale the keypoints) to {height}x{width}."
            )

    def _garment(self, garment: Any, mask: Any, category: str | None, index: int) -> tuple[np.ndarray, ...]:
        """(cloth (H, W, 3) uint8, cloth mask (H, W) bool, group or None, class: the Fashion-MNIST label or -1)."""
        name = f"garment[{index}]"
        if garment is None:
            raise ValueError(f"No garment was given (`{name}` is None): pass a Garment, an RGB image or a mapping.")
        if isinstance(garment, Garment):
            group = next(group for group, labels in GARMENT_GROUPS.items() if garment.label in labels)
            if category is not None and category != group:
                raise ValueError(f"`garment_category` {category!r} contradicts {name}, a {group!r} Garment.")
            cloth, cloth_mask, label = garment.image, garment.mask, garment.label
        elif isinstance(garment, Mapping):
            missing = [key for key in GARMENT_KEYS if garment.get(key) is None]
            if missing:
                raise ValueError(f"`{name}` lacks {missing}: a garment mapping needs {GARMENT_KEYS}.")
            cloth = _image_array(garment["cloth"], f"{name}['cloth']")
            cloth_mask = _mask_array(garment["cloth_mask"], f"{name}['cloth_mask']")
            group = category
            label = garment.get("garment_label", -1)
            if label is None or isinstance(label, bool) or not isinstance(label, (int, np.integer)):
                raise TypeError(f"`{name}['garment_label']` must be an integer class, got {label!r}.")
        else:
            cloth = _image_array(garment, name)
            if mask is None:
                cloth_mask = (cloth < WHITE_THRESHOLD).any(axis=-1)
            else:
                cloth_mask = _mask_array(mask, f"garment_mask[{index}]")
            group = category
            label = -1
        for array, what in ((cloth, name), (cloth_mask, f"the mask of {name}")):
            self._check_size(array, what)
        if not cloth_mask.any():
            raise ValueError(f"The mask of `{name}` is empty: no garment pixel to try on.")
        return cloth, cloth_mask, group, np.int64(label)

    def _person(self, person: Any, group: str | None, index: int) -> tuple[np.ndarray, ...]:
        """(agnostic (H, W, 3) uint8, agnostic mask (H, W) bool, body mask (H, W) bool, keypoints (18, 3), the
        person's own pixels (H, W, 3) uint8: the avatar, or a mapping's `avatar`, else its agnostic image)."""
        name = f"person[{index}]"
        if person is None:
            raise ValueError(f"No person was given (`{name}` is None): pass an Avatar or a mapping of {PERSON_KEYS}.")
        if isinstance(person, Avatar):
            if group is None:
                raise ValueError(
                    f"`garment_category` is needed to grey out the try-on region of the Avatar `{name}` when the "
                    f"garment is not a Garment: one of {sorted(GARMENT_GROUPS)}."
                )
            if group not in GARMENT_GROUPS:
                raise ValueError(f"`garment_category` must be one of {sorted(GARMENT_GROUPS)}, got {group!r}.")
            self._check_size(person.image, name)
            region = agnostic_region(person, group)
            return agnostic(person.image, region), region, person.body_mask, person.keypoints, person.image
        if not isinstance(person, Mapping):
            raise TypeError(f"`{name}` must be an Avatar or a mapping of {PERSON_KEYS}, got {type(person).__name__}.")
        missing = [key for key in PERSON_KEYS if person.get(key) is None]
        if missing:
            raise ValueError(f"`{name}` lacks {missing}: a person mapping needs {PERSON_KEYS}.")
        arrays = (
            _image_array(person["agnostic"], f"{name}['agnostic']"),
            _mask_array(person["agnostic_mask"], f"{name}['agnostic_mask']"),
            _mask_array(person["body_mask"], f"{name}['body_mask']"),
        )
        for array, key in zip(arrays, PERSON_KEYS, strict=False):
            self._check_size(array, f"{name}['{key}']")
        own_pixels = arrays[0]
        if person.get("avatar") is not None:
            own_pixels = _image_array(person["avatar"], f"{name}['avatar']")
            self._check_size(own_pixels, f"{name}['avatar']")
        return (*arrays, _keypoints_array(person["pose_keypoints"], f"{name}['pose_keypoints']"), own_pixels)

    def prepare_inputs(
        self,
        person: Any,
        garment: Any,
        garment_category: str | None = None,
        garment_mask: Any = None,
    ) -> dict[str, torch.Tensor]:
        """Validated inputs (see the class docstring) -> the `TryOnModel` keyword arguments, on the pipeline's device.

        Returns `agnostic`, `cloth` and `person_image` (the person's own pixels) `(N, 3, H, W)` in [-1, 1],
        `agnostic_mask`, `body_mask` and `cloth_mask` `(N, 1, H, W)` in {0, 1}, `keypoints` `(N, 18, 3)` and
        `garment_class` `(N,)` (a `Garment`'s label or a mapping's `garment_label`; -1 when unknown).
        """
        persons = person if isinstance(person, Sequence) and not isinstance(person, str) else [person]
        garments = garment if isinstance(garment, Sequence) and not isinstance(garment, str) else [garment]
        masks = garment_mask if isinstance(garment_mask, Sequence) else [garment_mask] * len(garments)
        if not persons or not garments:
            raise ValueError("No person or no garment was given: the lists are empty.")
        if len(masks) != len(garments):
            raise ValueError(f"`garment_mask` must give one mask per garment ({len(garments)}), got {len(masks)}.")
        count = max(len(persons), len(garments))
        if {len(persons), len(garments)} - {1, count}:
            raise ValueError(f"Got {len(persons)} persons and {len(garments)} garments: pass as many of each, or one.")
        check_count("the number of persons and garments", count, self.values_per_image)
        rows = []
        for index in range(count):
            garment_index = index if len(garments) > 1 else 0
            cloth, cloth_mask, group, label = self._garment(
                garments[garment_index], masks[garment_index], garment_category, garment_index
            )
            person_arrays = self._person(persons[index if len(persons) > 1 else 0], group, index)
            rows.append((*person_arrays, cloth, cloth_mask, label))
        columns = [np.stack(column) for column in zip(*rows, strict=True)]
        agnostic_images, agnostic_masks, body_masks, keypoints, person_images, cloths, cloth_masks, labels = columns

        def images(array: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(array).permute(0, 3, 1, 2).float() / 127.5 - 1

        def masks_(array: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(array)[:, None].float()

        inputs = {
            "agnostic": images(agnostic_images),
            "agnostic_mask": masks_(agnostic_masks),
            "body_mask": masks_(body_masks),
            "keypoints": torch.from_numpy(keypoints),
            "cloth": images(cloths),
            "cloth_mask": masks_(cloth_masks),
            "person_image": images(person_images),
        }
        # One look-up: the pipeline's `device` property walks every module.
        device, dtype = self.tryon.device, self.tryon.dtype
        inputs = {name: tensor.to(device, dtype) for name, tensor in inputs.items()}
        return inputs | {"garment_class": torch.from_numpy(labels).to(device)}

    def _try_on(self, **inputs: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        return self.tryon(**inputs, return_dict=False)

    @torch.no_grad()
    def __call__(
        self,
        person: Any,
        garment: Any,
        garment_category: str | None = None,
        garment_mask: Any = None,
        output_type: str = "pil",
        return_dict: bool = True,
    ) -> TryOnPipelineOutput | tuple:
        """Dresses `person` in `garment` (see the class docstring for what each may be).

        Args:
            person: An `Avatar` or a mapping of the try-on columns, or a list of them.
            garment: A `Garment`, an RGB image on white, or a mapping with `cloth` and `cloth_mask`, or a list.
            garment_category: `"upper"`, `"lower"` or `"dress"`; needed for an `Avatar` with a non-`Garment` garment.
            garment_mask: The mask of an image garment (one per garment); default: its non-white pixels.
            output_type: `"pil"`, `"np"` (`(N, H, W, 3)` in [0, 1]) or `"pt"` (`(N, 3, H, W)` in [-1, 1]).
            return_dict: Return a `TryOnPipelineOutput` rather than a tuple `(images, warped_garments)`.
        """
        check_output_type(output_type)
        inputs = self.prepare_inputs(person, garment, garment_category, garment_mask)
        chunk_size = max(1, CHUNK_VALUES // self.values_per_image)
        sample, warped_cloth, warped_mask, *_ = in_chunks(self._try_on, chunk_size, **inputs)
        images = self.postprocess(sample, output_type)
        warped = self.postprocess(warped_mask * warped_cloth + (1 - warped_mask), output_type)
        return TryOnPipelineOutput(images=images, warped_garments=warped) if return_dict else (images, warped)
