"""What a request may ask of the Space: files that Gradio received, the values its endpoint takes, bounded time.

Gradio 6.31 checks a file reference of a request (`{"path": ...}`) only when it carries `"meta": {"_type":
"gradio.FileData"}`: then a path outside its upload cache is refused (with an error it does not show the client) and
an http(s) URL is downloaded. A reference without `meta` reaches the event handler unchecked, with or without
Gradio's preprocessing (`gr.Image(type="filepath").preprocess` opens the path and hands it on). So the Space checks
every reference itself, with :func:`uploaded_file`, before Gradio opens, copies or downloads anything
(:class:`CheckedBlocks`) and again in the handler that opens the file.
"""

from __future__ import annotations

import html
import inspect
import os
import reprlib
import time
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.utils import get_upload_folder
from pydantic import ValidationError

# The compute time one request may take: the slowest request (a 16-megapixel upload) takes 0.7 s on one core.
REQUEST_TIME_LIMIT = 20.0

_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxdict = 2, 4, 4
_SHORT.maxstring = _SHORT.maxlong = _SHORT.maxother = 40


def shown(value: Any) -> str:
    """A short, HTML-safe rendering of a client's value for an error message."""
    return html.escape(_SHORT.repr(value))


def bad_input(message: str) -> gr.Error:
    """The error for a request the user can fix: shown in the UI and to API clients, not logged as a crash."""
    return gr.Error(message, title="Cannot do that", print_exception=False)


def not_uploaded(name: str | None = None) -> gr.Error:
    what = f"The {name} image" if name else "An image"
    return bad_input(
        f"{what} must be a file uploaded to this Space (from the page, or with gradio_client's handle_file); "
        "server paths and URLs are refused."
    )


def uploaded_file(path: str | os.PathLike, name: str | None = None) -> Path:
    """`path` with its symlinks and `..` resolved, if it lies in Gradio's upload cache: the folder holding what
    clients uploaded and the files Gradio serves (the app's examples and results). Nothing is opened.

    Raises:
        gr.Error: anything else (a server path, a URL, a symlink leading out of the cache), naming the input `name`.
    """
    try:
        resolved = Path(path).resolve()
    except (OSError, ValueError):  # a null byte, a name too long
        raise not_uploaded(name) from None
    if not resolved.is_relative_to(Path(get_upload_folder()).resolve()):
        raise not_uploaded(name)
    return resolved


def check_file_references(value: Any) -> None:
    """Refuses a request value holding a file reference (a dict with a string `path`, at any depth) that
    :func:`uploaded_file` refuses."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            if isinstance(item.get("path"), str):
                uploaded_file(item["path"])
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)


class CheckedBlocks(gr.Blocks):
    """`gr.Blocks` that checks each request before Gradio processes its values, with errors the client sees where
    Gradio's own are hidden from it: the request holds exactly the values its handler takes (Gradio ignores extra
    ones), each value of a file input has that input's form (an upload's `FileData`), an example's index exists, and
    every file reference lies in the upload cache (see the module docstring)."""

    async def preprocess_data(self, block_fn, inputs, state, explicit_call=False):
        expected = len(block_fn.inputs)
        if not isinstance(inputs, list) or len(inputs) != expected:
            got = len(inputs) if isinstance(inputs, list) else type(inputs).__name__
            values = "value" if expected == 1 else "values"
            raise bad_input(f"{_endpoint(block_fn)} takes {expected} {values}{_parameters(block_fn)}, got {got}.")
        for component, value in zip(block_fn.inputs, inputs, strict=True):
            if isinstance(component, gr.Dataset):  # an example's index (its samples stay on the server)
                _check_example_index(value, len(component.raw_samples))
            data_model = getattr(component, "data_model", None)
            if data_model is not None and value is not None:
                try:
                    data_model.model_validate(value)
                except ValidationError:
                    raise bad_input(_wrong_form(component, value)) from None
            check_file_references(value)
        return await super().preprocess_data(block_fn, inputs, state, explicit_call)


def _endpoint(block_fn: Any) -> str:
    return f"/{block_fn.api_name}" if block_fn.api_visibility == "public" else "This event"


def _parameters(block_fn: Any) -> str:
    try:
        names = list(inspect.signature(block_fn.fn).parameters)
    except (TypeError, ValueError):
        return ""
    return f" ({', '.join(names)})" if len(names) == len(block_fn.inputs) else ""


def _check_example_index(value: Any, num_examples: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < num_examples:
        raise bad_input(f"The example index must be a whole number in [0, {num_examples - 1}], got {shown(value)}.")


def _wrong_form(component: Any, value: Any) -> str:
    name = f'The "{component.label}" input' if getattr(component, "label", None) else "A file input"
    expected = (
        'an uploaded image, {"path": ..., "meta": {"_type": "gradio.FileData"}} as gradio_client\'s handle_file sends'
        if isinstance(component, gr.Image)
        else f"the value the page sends for a {component.get_block_name()} component"
    )
    return f"{name} takes {expected}, got {shown(value)}."


class Deadline:
    """The compute time a request may take, checked between its chunks of work.

    Python cannot stop a running thread, so the work of a request is bounded by construction first (counts, sizes
    and parameters are checked before anything is allocated, and no chunk grows with a client's number); the
    deadline then stops a request between chunks when the server is too busy to finish it in reasonable time.
    """

    def __init__(self, seconds: float):
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    def check(self) -> None:
        """Raises a `gr.Error` once the time is up."""
        if time.monotonic() >= self._end:
            raise gr.Error(
                f"This request ran out of time: a request may compute for at most {self.seconds:g} s, and the server "
                "is too busy to finish it. Try again, or ask for fewer images.",
                title="Time limit",
                print_exception=False,
            )
