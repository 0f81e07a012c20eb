"""Load any hf-vaegan model from a folder or Hub id without naming its class: a model's own folder, or a pipeline's
(diffusers' layout), of which it loads the main model."""

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


def main_component(index: dict, where: str | os.PathLike = "the pipeline") -> str:
    """The component of a pipeline's model_index.json that holds its main model (`model_name` of an hf-vaegan
    pipeline: the generator of a GANPipeline, the VAE of a BodyShapePipeline), or its only component."""
    from . import pipelines

    class_name = index.get("_class_name")
    if isinstance(class_name, (list, tuple)) and len(class_name) == 2:
        class_name = class_name[1]  # [module, class], as a pipeline whose source travels with it names itself
    pipeline_class = getattr(pipelines, class_name, None) if isinstance(class_name, str) else None
    if isinstance(pipeline_class, type) and issubclass(pipeline_class, pipelines.SingleModelPipeline):
        return pipeline_class.model_name
    components = [name for name, entry in index.items() if not name.startswith("_") and isinstance(entry, list)]
    if len(components) != 1:
        raise ValueError(
            f"{where} holds a {class_name!r} pipeline, not one of hf-vaegan's, with the components {components}: "
            "pass the one to load as `subfolder`."
        )
    return components[0]


def load_pretrained(pretrained_model_name_or_path: str | os.PathLike, **kwargs) -> VaeGanModelMixin:
    """Loads the model saved at `pretrained_model_name_or_path` as the class its config.json names.

    A pipeline's folder or repo (model_index.json and a subfolder per component) gives its main model (see
    `main_component`). Takes `from_pretrained` arguments (`cache_dir`, `revision`, `token`, `torch_dtype` ...).
    """
    from .pipelines.pipeline_utils import in_subfolder, model_index

    index = model_index(pretrained_model_name_or_path, **kwargs)
    if index is not None:
        component = main_component(index, pretrained_model_name_or_path)
        kwargs["subfolder"] = in_subfolder(kwargs.get("subfolder"), component)
    class_name = VaeGanModelMixin.saved_class_name(pretrained_model_name_or_path, **kwargs)
    classes = model_classes()
    if class_name not in classes:
        raise ValueError(
            f"{pretrained_model_name_or_path} holds a {class_name!r} model, not one of hf-vaegan's: {sorted(classes)}."
        )
    return classes[class_name].from_pretrained(pretrained_model_name_or_path, **kwargs)
