"""The sketch canvas, with the drawing uploads of Gradio's image editor bounded.

Defining a component class makes Gradio write a type stub (`canvas.pyi`) beside this file, as it does for its own
components; `spaces/.gitignore` keeps it out of the repository.
"""

from __future__ import annotations

import gradio as gr
from fastapi import HTTPException
from gradio.components.base import server
from gradio.data_classes import DataWithFiles

from .safety import shown

# A drawing's images wait on the server between their upload and the click that submits them: at most this many
# drawings, of at most this many bytes each image (the Space's 280 x 280 canvas makes PNGs of a few kilobytes).
MAX_PENDING_DRAWINGS = 64
MAX_DRAWING_BYTES = 2**21


class BoundedSketchpad(gr.Sketchpad):
    """`gr.Sketchpad` whose drawing uploads are bounded.

    Gradio 6.31's image editor keeps every image a client posts to its `accept_blobs` server function in memory until
    that drawing is submitted, under any id the client picks, and stretches its layer list to whatever index the
    client names (index 10**9: 8 GB in one request). Here a drawing has one layer (index 0), each image at most
    `MAX_DRAWING_BYTES`, and at most `MAX_PENDING_DRAWINGS` drawings wait, the oldest dropped first.
    """

    def get_block_name(self) -> str:
        return "imageeditor"  # drawn by gr.Sketchpad's frontend, which is gr.ImageEditor's

    @server
    def accept_blobs(self, data: DataWithFiles) -> None:
        index = data.data.get("index")
        if data.data.get("type") == "layer" and str(index) not in ("0", "None", "null"):
            raise HTTPException(400, f"The canvas has a single layer, 0; got layer index {shown(index)}.")
        if any(len(content) > MAX_DRAWING_BYTES for _, content in data.files):
            raise HTTPException(413, f"A drawing's image may hold at most {MAX_DRAWING_BYTES} bytes.")
        super().accept_blobs(data)
        while len(self.blob_storage) > MAX_PENDING_DRAWINGS:
            del self.blob_storage[next(iter(self.blob_storage))]
