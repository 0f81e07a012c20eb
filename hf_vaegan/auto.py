"""Load any hf-vaegan model from a folder or Hub id without naming its class."""

import os

from .models import VaeGanModelMixin


def model_classes() -> dict[str, type[VaeGanModelMixin]]:
    """Every imported hf-vaegan model class, by name."""
    classes, pending = {}, [VaeGanModelMixin]
    while pending:
        for subclass in pending.pop().__subclasses__():
            classes[subclass.__name__] = subclass
            pending.append(subclass)
    return classes


def load_pretrained(pretrained_model_name_or_path: str | os.PathLike, **kwargs) -> VaeGanModelMixin:
    """Loads the model saved at `pretrained_model_name_or_path` as the class its config.json names.

    Takes `from_pretrained` arguments (`cache_dir`, `revision`, `token`, `torch_dtype` ...).
    """
    class_name = VaeGanModelMixin.saved_class_name(pretrained_model_name_or_path, **kwargs)
    classes = model_classes()
    if class_name not in classes:
        raise ValueError(
            f"{pretrained_model_name_or_path} holds a {class_name!r} model, not one of hf-vaegan's: {sorted(classes)}."
        )
    return classes[class_name].from_pretrained(pretrained_model_name_or_path, **kwargs)
