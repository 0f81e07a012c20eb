"""What the `hf-vaegan` subcommands do (`hf_vaegan.cli` parses their flags and calls `sample` or `evaluate`)."""

import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np
import PIL.Image
import torch
from tqdm.auto import tqdm

from .auto import load_pretrained
from .cli import DEFAULT_SPLIT
from .data.loading import load_image_dataset
from .metrics import (
    GARMENT_CLASSIFIER_PATH,
    FashionClassifierFeatures,
    FeatureExtractor,
    InceptionV3Features,
    TransformersFeatures,
    evaluate_model,
    is_classifier_folder,
)
from .models import Generator
from .pipelines import GANPipeline, VAEPipeline
from .pipelines.pipeline_utils import max_batch_size

OUTPUT_SUFFIXES = (".png", ".npz")
# `sample` keeps its images in memory as uint8 and writes them in one file: at most 4 GiB of them.
MAX_SAMPLE_BYTES = 2**32
# zlib's fastest level: a 10,000-image grid saves in half the time of PIL's default (6) and is 8% larger
PNG_COMPRESS_LEVEL = 1


def resolve_device(name: str | None) -> str:
    """`--device`, or cuda when this machine has it, else cpu; raises `ValueError` for a device it does not have."""
    if name is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    check_device(name)
    return name


def class_labels_for(args, model) -> torch.Tensor | None:
    num_classes = model.config.get("num_classes", 0)
    if not num_classes:
        if args.class_label is not None or args.all_classes:
            raise ValueError(f"{args.model} is unconditional: drop --class-label / --all-classes.")
        return None
    if args.class_label is not None:
        if not 0 <= args.class_label < num_classes:
            raise ValueError(f"--class-label must lie in [0, {num_classes - 1}], got {args.class_label}.")
        return torch.full((args.num_images,), args.class_label)
    if args.all_classes:
        return torch.arange(args.num_images) % num_classes
    raise ValueError(
        f"{args.model} is class-conditional ({num_classes} classes): pass --class-label K or --all-classes."
    )


def check_device(name: str) -> None:
    """Raises `ValueError` unless `name` is a torch device this machine has."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"--device {name!r} is not a torch device: use cpu, cuda, cuda:1, mps...") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"--device {name}: this machine has no CUDA device; use --device cpu.")
        if device.index is not None and device.index >= count:
            raise ValueError(f"--device {name}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}.")
    try:
        torch.empty(1, device=device)
    except (RuntimeError, AssertionError) as error:
        raise ValueError(f"--device {name} cannot be used here ({error}); use --device cpu.") from None


def check_at_least(flag: str, value: int, minimum: int = 1) -> None:
    if value < minimum:
        raise ValueError(f"{flag} must be >= {minimum}, got {value}.")


def image_values(model) -> int:
    """Values of one image the model draws."""
    channels = model.config.get("in_channels", model.config.get("out_channels"))
    return channels * model.config.resolution**2


def check_batch_size(args, model) -> None:
    limit = max_batch_size(image_values(model))
    if args.batch_size > limit:
        raise ValueError(f"--batch-size must be at most {limit} for this model's images, got {args.batch_size}.")


def check_output(output: Path) -> None:
    """Refuses an --output that cannot be written, before any work."""
    if output.suffix not in OUTPUT_SUFFIXES:
        raise ValueError(f"--output must end in one of {OUTPUT_SUFFIXES}, got {output.name!r}.")
    if output.is_dir():
        raise ValueError(f"--output {output} is a folder; name a file inside it.")
    parent = next((folder for folder in output.parents if folder.exists()), Path("."))
    if not parent.is_dir():
        raise ValueError(f"--output {output}: {parent} is a file, not a folder.")


def draw_images(args, model, labels: torch.Tensor | None) -> np.ndarray:
    """`(num_images, H, W)` or `(num_images, H, W, C)` uint8, drawn in batches from one seeded generator."""
    if isinstance(model, Generator):
        pipe = GANPipeline(model)
    elif hasattr(model, "sample") and hasattr(model, "decode"):
        if args.truncation is not None:
            raise ValueError("--truncation applies to GAN generators only.")
        pipe = VAEPipeline(model)
    else:
        raise ValueError(f"{type(model).__name__} models do not draw images; `sample` takes generators and VAEs.")
    pipe.to(args.device)
    rng = torch.Generator(device=args.device).manual_seed(args.seed)
    batches = []
    for start in tqdm(range(0, args.num_images, args.batch_size), desc="sampling", disable=args.num_images <= 1000):
        size = min(args.batch_size, args.num_images - start)
        kwargs = {"generator": rng, "output_type": "pt"}
        if isinstance(model, Generator):
            kwargs.update(
                class_labels=None if labels is None else labels[start : start + size], truncation=args.truncation
            )
        batches.append(to_uint8(pipe(batch_size=size, **kwargs).images.float().cpu()))
    return np.concatenate(batches)


def tile(images: np.ndarray, columns: int) -> np.ndarray:
    """`(N, H, W[, C])` images -> one `(rows * H, columns * W[, C])` grid, row by row, black where none is left.

    One array reshape: 10,000 PIL tiles pasted one by one took longer than drawing them."""
    count, height, width = images.shape[:3]
    rows = math.ceil(count / columns)
    padded = np.zeros((rows * columns, *images.shape[1:]), dtype=images.dtype)
    padded[:count] = images
    grid = padded.reshape(rows, columns, height, width, -1).swapaxes(1, 2)
    return grid.reshape(rows * height, columns * width, *images.shape[3:])


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """`(N, C, H, W)` in [-1, 1] -> `(N, H, W)` or `(N, H, W, C)` uint8."""
    array = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return array[..., 0] if array.shape[-1] == 1 else array


def write_atomically(output: Path, write) -> None:
    """`write(file)` into a temporary file beside `output`, then renamed to it: `output` is whole or untouched."""
    output.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.", suffix=output.suffix)
    try:
        with os.fdopen(descriptor, "wb") as file:
            write(file)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp makes the file private
        os.replace(temporary, output)
    except BaseException:
        os.unlink(temporary)
        raise


def sample(args) -> None:
    output = Path(args.output)
    check_output(output)
    check_at_least("--num-images", args.num_images)
    check_at_least("--batch-size", args.batch_size)
    if args.truncation is not None and not (math.isfinite(args.truncation) and args.truncation > 0):
        raise ValueError(f"--truncation must be a finite number > 0, got {args.truncation}.")
    args.device = resolve_device(args.device)
    model = load_pretrained(args.model).eval()
    limit = MAX_SAMPLE_BYTES // image_values(model)
    if args.num_images > limit:
        raise ValueError(
            f"--num-images must be at most {limit} for this model (4 GiB of images), got {args.num_images}."
        )
    check_batch_size(args, model)
    labels = class_labels_for(args, model)
    with torch.no_grad():
        images = draw_images(args, model, labels)
    if output.suffix == ".npz":
        arrays = (
            {"images": images} if labels is None else {"images": images, "labels": labels.numpy().astype(np.int64)}
        )
        write_atomically(output, lambda file: np.savez_compressed(file, **arrays))
    else:
        # with --all-classes image i has label i % num_classes: one column per class
        columns = model.config.num_classes if args.all_classes else math.ceil(math.sqrt(len(images)))
        grid = PIL.Image.fromarray(tile(images, columns))
        write_atomically(output, lambda file: grid.save(file, format="PNG", compress_level=PNG_COMPRESS_LEVEL))
    print(f"wrote {len(images)} images to {output}")


def make_extractor(name: str, device: str) -> FeatureExtractor:
    if name == "fashion":
        return FashionClassifierFeatures(device=device)
    if name == "garments":
        return FashionClassifierFeatures.from_folder(GARMENT_CLASSIFIER_PATH, device=device)
    if is_classifier_folder(name):
        return FashionClassifierFeatures.from_folder(name, device=device)
    if name == "inception":
        return InceptionV3Features(device=device)
    return TransformersFeatures(name, device=device)


def evaluate(args) -> None:
    check_at_least("--num-samples", args.num_samples, 2)
    for flag, value in (
        ("--likelihood-images", args.likelihood_images),
        ("--importance-samples", args.importance_samples),
        ("--batch-size", args.batch_size),
    ):
        check_at_least(flag, value)
    single_split = os.path.isfile(args.data) and args.data.endswith(".npz")
    if single_split and args.split is not None:
        raise ValueError(f"--split does not apply to {args.data}: a .npz file holds a single split.")
    split = None if single_split else args.split or DEFAULT_SPLIT
    args.device = resolve_device(args.device)
    model = load_pretrained(args.model).eval().to(args.device)
    if not hasattr(model, "sample"):
        raise ValueError(f"{type(model).__name__} models do not draw images; `evaluate` takes generators and VAEs.")
    check_batch_size(args, model)
    channels = model.config.get("in_channels", model.config.get("out_channels"))
    data = load_image_dataset(args.data, split=split or DEFAULT_SPLIT, num_channels=channels)
    real_images, _ = data.to_tensors(model.config.resolution)
    with tqdm(total=args.num_samples, desc="generating", unit="img") as progress:
        metrics = evaluate_model(
            model,
            real_images.to(args.device),
            args.num_samples,
            make_extractor(args.extractor, args.device),
            dataset=args.data,
            split=split,
            seed=args.seed,
            likelihood_images=args.likelihood_images,
            num_importance_samples=args.importance_samples,
            batch_size=args.batch_size,
            progress=progress.update,
        )
    print(json.dumps({"model": str(args.model), "data": str(args.data), "split": split, **metrics}))
