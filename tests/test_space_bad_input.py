"""Bad input to the virtual-wardrobe Space, over HTTP to `python spaces/app.py` as a crafted client sends it.

Every case gets an error whose message names the problem, and the server keeps serving: after each one a normal
request must still succeed. The groups:

- file references that Gradio did not receive (server files, `..`, symlinks out of the cache, URLs), for every input
  that takes a file, API endpoints and the UI's private events alike: refused, and the canary image they point at is
  never read (its access time, a local web server's log, and Gradio's cache show it);
- client-controlled numbers (truncation 1e-9 froze garment generation for everyone), counts, seeds, choices, the
  number of values, example indices;
- uploads that are not usable images (corrupt, empty, 0 x 0, 1 x 1, huge, not an image, unconvertible modes) and
  transparent cut-outs, which must come out as the models expect;
- the per-request time limit.

Timeouts here only detect a hang; no assertion is about time.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import struct
import threading
import time
import uuid
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import httpx
import numpy as np
import pytest
from gradio.data_classes import DataWithFiles
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image
from space_server import RunningSpace, client_scratch_dir, serve_space
from test_space import FIXTURE, make_tiny_models, open_image, tryon_arguments
from wardrobe_space import models as space_models
from wardrobe_space.canvas import MAX_DRAWING_BYTES, MAX_PENDING_DRAWINGS, BoundedSketchpad

from hf_vaegan.data.sketch import garment_to_sketch
from hf_vaegan.data.wardrobe import BodyShape

HANG = 120.0  # seconds: a request still unanswered by then is taken as hung
META = {"_type": "gradio.FileData"}
NOT_UPLOADED = "must be a file uploaded to this Space"
WRONG_FORM = " input takes "


@dataclass
class Outcome:
    """What the Space answered: `failed` with the error `message` it showed (None when Gradio hid it), or `data`."""

    failed: bool
    message: str | None = None
    data: Any = None


class RawClient:
    """Plain HTTP to the Space, as a crafted client sends it: `/gradio_api/call/<endpoint>` for the API,
    `/gradio_api/queue/join` with the event's index for the UI's private events."""

    def __init__(self, url: str):
        self.http = httpx.Client(base_url=url.rstrip("/"), trust_env=False, timeout=HANG)
        config = self.http.get("/config").json()
        self.event_index = {dependency["api_name"]: dependency["id"] for dependency in config["dependencies"]}

    def call(self, endpoint: str, data: Any) -> Outcome:
        """POSTs `{"data": data}` (NaN and infinities as JSON's NaN / Infinity) and waits for the result."""
        body = json.dumps({"data": data})
        response = self.http.post(f"/gradio_api/call/{endpoint}", content=body, headers=JSON)
        response.raise_for_status()
        event, payload = None, None
        with self.http.stream("GET", f"/gradio_api/call/{endpoint}/{response.json()['event_id']}") as stream:
            for line in stream.iter_lines():
                if line.startswith("event:"):
                    event = line.removeprefix("event:").strip()
                elif line.startswith("data:") and event in ("complete", "error"):
                    payload = json.loads(line.removeprefix("data:"))
                    break
        if event == "complete":
            return Outcome(False, data=payload)
        return Outcome(True, message=(payload or {}).get("error"))

    def event(self, name: str, data: list[Any]) -> Outcome:
        """Triggers the UI event registered under `name` (a private one included) with `data`."""
        session = uuid.uuid4().hex
        body = {"data": data, "fn_index": self.event_index[name], "session_hash": session, "trigger_id": None}
        self.http.post("/gradio_api/queue/join", content=json.dumps(body), headers=JSON).raise_for_status()
        with self.http.stream("GET", "/gradio_api/queue/data", params={"session_hash": session}) as stream:
            for line in stream.iter_lines():
                message = json.loads(line.removeprefix("data:")) if line.startswith("data:") else {}
                if message.get("msg") == "process_completed":
                    output = message.get("output") or {}
                    if message.get("success"):
                        return Outcome(False, data=output.get("data"))
                    return Outcome(True, message=output.get("error"))
        raise AssertionError(f"the event {name} never completed")

    def request(self, endpoint: str, data: list[Any]) -> Outcome:
        """An API endpoint by its name, else the UI event of that name."""
        return self.call(endpoint, data) if endpoint in PUBLIC_ENDPOINTS else self.event(endpoint, data)


JSON = {"Content-Type": "application/json"}
PUBLIC_ENDPOINTS = {
    *("generate_garments", "sample_styles", "interpolate_styles", "analyse_garment", "render_body", "random_body"),
    *("gan_garment", "tryon", "reference_tryon", "sketch_to_garment", "load_example"),
}


def assert_refused(outcome: Outcome, *fragments: str) -> None:
    assert outcome.failed, f"accepted: {outcome.data}"
    assert outcome.message is not None, "refused without a message for the client"
    for fragment in fragments:
        assert fragment in outcome.message, outcome.message


def assert_still_serving(raw: RawClient) -> None:
    outcome = raw.call("sample_styles", [1, 0, 1.0])
    assert not outcome.failed, outcome.message


class Canary:
    """A real garment PNG outside Gradio's cache whose reading would show: its access time is set two days back,
    and reading it moves it forward (if the file system records access times at all: checked first)."""

    def __init__(self, path: Path, image: np.ndarray):
        self.path = path
        Image.fromarray(image).save(path)
        self.content = path.read_bytes()
        self.arm()
        self.path.read_bytes()
        self.reads_visible = self.was_read()
        self.arm()

    def arm(self) -> None:
        past = time.time() - 2 * 86400
        os.utime(self.path, (past, self.path.stat().st_mtime))
        self._armed_at = self.path.stat().st_atime

    def was_read(self) -> bool:
        return self.path.stat().st_atime != self._armed_at


class CanaryWebServer:
    """A web server on 127.0.0.1 serving the canary image and counting the requests it gets."""

    def __init__(self, content: bytes):
        self.requests: list[str] = []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.end_headers()
                self.wfile.write(content)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/garment.png"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def fashion() -> dict[str, np.ndarray]:
    with np.load(FIXTURE) as data:
        return {"images": data["images"], "labels": data["labels"]}


@pytest.fixture(scope="module")
def space(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSpace]:
    with serve_space(make_tiny_models(tmp_path_factory.mktemp("bad-input-models"))) as running:
        yield running


@pytest.fixture(scope="module")
def raw(space: RunningSpace) -> Iterator[RawClient]:
    client = RawClient(space.url)
    yield client
    client.http.close()


@pytest.fixture(scope="module")
def client(space: RunningSpace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    downloads = tmp_path_factory.mktemp("bad-input-downloads")
    with client_scratch_dir():
        yield Client(space.url, verbose=False, download_files=str(downloads), analytics_enabled=False)


@pytest.fixture(scope="module")
def uploaded_garment(raw: RawClient, fashion: dict[str, np.ndarray], tmp_path_factory) -> dict[str, Any]:
    """A garment uploaded as the page uploads it: a reference Gradio's checks accept."""
    path = tmp_path_factory.mktemp("good-upload") / "garment.png"
    Image.fromarray(fashion["images"][0]).save(path)
    response = raw.http.post("/gradio_api/upload", files={"files": (path.name, path.read_bytes(), "image/png")})
    response.raise_for_status()
    return {"path": response.json()[0], "meta": META}


@pytest.fixture(scope="module")
def canary(tmp_path_factory: pytest.TempPathFactory, fashion: dict[str, np.ndarray]) -> Canary:
    return Canary(tmp_path_factory.mktemp("outside-the-cache") / "canary.png", fashion["images"][5])


@pytest.fixture(scope="module")
def canary_web(canary: Canary) -> Iterator[CanaryWebServer]:
    server = CanaryWebServer(canary.content)
    yield server
    server.close()


# Every input that takes a file, API and UI alike: (request name, its values with the file reference `f` in place).
FILE_INPUTS = {
    "analyse_garment": lambda f, good: ("analyse_garment", [f]),
    "interpolate_styles first": lambda f, good: ("interpolate_styles", [f, good, 4]),
    "interpolate_styles second": lambda f, good: ("interpolate_styles", [good, f, 4]),
    "tryon": lambda f, good: ("tryon", list(tryon_arguments(f))),
    "reference_tryon": lambda f, good: ("reference_tryon", list(tryon_arguments(f))),
    "sketch_to_garment": lambda f, good: ("sketch_to_garment", [f]),
    "canvas_sketch composite (UI)": lambda f, good: (
        "canvas_sketch",
        [{"background": None, "layers": [], "composite": f}, "canvas"],
    ),
    "canvas_sketch layer (UI)": lambda f, good: (
        "canvas_sketch",
        [{"background": None, "layers": [f], "composite": good}, "canvas"],
    ),
    "send_garment (UI)": lambda f, good: ("send_garment", [f, "Dress"]),
}


def planted_symlink(cache: Path, target: Path) -> Path:
    """A symlink inside Gradio's cache pointing at `target` outside it."""
    folder = cache / "planted"
    folder.mkdir(exist_ok=True)
    link = folder / "garment.png"
    if not link.is_symlink():
        link.symlink_to(target)
    return link


FOREIGN_PATHS = [
    *("server file", "image outside the cache", "../ out of the cache", "../ to a server file"),
    *("symlink in the cache", "http:// URL", "file:// URL", "data: URL", "relative path"),
]


@pytest.fixture(scope="module")
def foreign_paths(space: RunningSpace, canary: Canary, canary_web: CanaryWebServer) -> dict[str, str]:
    """Paths to files Gradio never received, the canary's among them, by kind (`FOREIGN_PATHS`)."""
    up_to_the_root = f"{space.cache}/{'../' * len(space.cache.parts)}"
    return {
        "server file": "/etc/passwd",
        "image outside the cache": str(canary.path),
        "../ out of the cache": up_to_the_root + str(canary.path.relative_to("/")),
        "../ to a server file": up_to_the_root + "etc/passwd",
        "symlink in the cache": str(planted_symlink(space.cache, canary.path)),
        "http:// URL": canary_web.url,
        "file:// URL": canary.path.as_uri(),
        "data: URL": "data:image/png;base64,iVBORw0KGgo=",
        "relative path": "data/heldout_garments.npz",  # the Space's own data, from its working directory
    }


def copies_in_the_cache(cache: Path, content: bytes) -> set[Path]:
    candidates = (p for p in cache.rglob("*") if p.is_file() and not p.is_symlink())
    return {p for p in candidates if p.stat().st_size == len(content) and p.read_bytes() == content}


@pytest.mark.parametrize("with_meta", [True, False], ids=["with meta", "without meta"])
@pytest.mark.parametrize("kind", FOREIGN_PATHS)
@pytest.mark.parametrize("slot", FILE_INPUTS)
def test_files_gradio_did_not_receive_are_refused_unread(
    raw, space, canary, canary_web, foreign_paths, uploaded_garment, slot, kind, with_meta
):
    reference = {"path": foreign_paths[kind], "meta": META} if with_meta else {"path": foreign_paths[kind]}
    endpoint, data = FILE_INPUTS[slot](reference, uploaded_garment)
    copies = copies_in_the_cache(space.cache, canary.content)
    canary.arm()
    outcome = raw.request(endpoint, data)
    if canary.reads_visible:
        assert not canary.was_read(), "the Space read the canary"
    assert not canary_web.requests, "the Space fetched the canary from the web"
    assert copies_in_the_cache(space.cache, canary.content) == copies, "Gradio copied the canary into its cache"
    assert_refused(outcome, NOT_UPLOADED)
    assert_still_serving(raw)


@pytest.mark.parametrize("slot", FILE_INPUTS)
@pytest.mark.parametrize(
    "value",
    ["/etc/passwd", 5, ["/etc/passwd"], {"path": 5}, {"path": ["/etc/passwd"]}],
    ids=["bare path", "number", "list", "number path", "list path"],
)
def test_file_inputs_refuse_values_of_the_wrong_form(raw, uploaded_garment, slot, value):
    endpoint, data = FILE_INPUTS[slot](value, uploaded_garment)
    assert_refused(raw.request(endpoint, data), WRONG_FORM)
    assert_still_serving(raw)


def test_a_file_reference_without_path_is_refused(raw):
    assert_refused(
        raw.call("analyse_garment", [{"url": "http://127.0.0.1:9/garment.png", "meta": META}]), NOT_UPLOADED
    )


def test_uploaded_files_and_examples_still_work(raw, uploaded_garment):
    """The allow-list lets through what Gradio received: an upload, an example, a result sent on."""
    assert not raw.call("analyse_garment", [uploaded_garment]).failed
    example = raw.call("load_example_1", [0]).data[0]["value"]  # the first example of the analysis
    assert not raw.call("analyse_garment", [example]).failed
    garment = raw.call("gan_garment", ["Coat", 0]).data[0]
    assert not raw.event("send_garment", [garment, "Coat"]).failed


# Client-controlled numbers, choices and counts: (request name, values, what the message must say).
GENERATE = "generate_garments"
TRUNCATION_RANGE = "Truncation must be 0 (off) or in [0.05, 2.0]"
BODY = list(BodyShape().to_dict().values())
BAD_VALUES = [
    *[
        (GENERATE, ["Dress", 4, 0, value], TRUNCATION_RANGE)
        for value in (1e-9, 1e-4, 0.049, -0.5, 2.05, 1e308, float("nan"), float("inf"), float("-inf"), "nan", "1e-9")
    ],
    *[(GENERATE, ["Dress", 4, 0, value], "Truncation must be a number") for value in ("strong", None, [], True)],
    *[
        (GENERATE, ["Dress", value, 0, 0], "Count must be a whole number in [1, 64]")
        for value in (0, -1, 65, 10**6, 10**400, 2.5, float("nan"), float("inf"))
    ],
    *[(GENERATE, ["Dress", value, 0, 0], "Count must be a number") for value in ("many", None, {}, False)],
    *[
        (GENERATE, ["Dress", 4, value, 0], "Seed must be a whole number in [0, 2147483647]")
        for value in (-1, 2**31, 1.5, 10**30)
    ],
    *[(GENERATE, [value, 4, 0, 0], "Class must be one of") for value in ("Hat", None, 3, ["Dress"], "")],
    *[
        ("sample_styles", [4, 0, value], "Temperature must be in [0.0, 2.0]")
        for value in (-1, 2.1, float("nan"), float("inf"))
    ],
    ("sample_styles", [4, 0, "hot"], "Temperature must be a number"),
    ("sample_styles", [10**6, 0, 1.0], "Count must be a whole number in [1, 64]"),
    *[
        ("interpolate_styles", [None, None, value], "Steps must be a whole number in [2, 16]")
        for value in (1, 17, 10**9, float("nan"))
    ],
    ("render_body", [2.0, *BODY[1:]], "Height must be in [0.78, 0.94], got 2.0"),
    ("render_body", [float("nan"), *BODY[1:]], "Height must be in [0.78, 0.94]"),
    ("render_body", [*BODY[:-1], "dark"], "Hair tone must be a number"),
    ("random_body", [-3], "Seed must be a whole number"),
    ("random_body", [10**400], "Seed must be a whole number"),
    ("gan_garment", ["Sandal", 0], "Garment class must be one of"),
    ("gan_garment", ["Coat", -1], "Seed must be a whole number"),
    ("tryon", ["Mine", 0, *BODY, None, "Dress", 0], "Avatar must be one of"),
    ("tryon", ["Gallery / seed", -1, *BODY, None, "Dress", 0], "Avatar seed must be a whole number"),
    ("tryon", ["Body shapes tab", 0, 9.0, *BODY[1:], None, "Dress", 0], "Height must be in"),
    ("reference_tryon", ["Gallery / seed", 0, *BODY, None, "Dress", 0], "No garment image"),
    ("sketch_to_garment", [None], "No sketch image: upload one or pick an example"),
    ("analyse_garment", [None], "No garment image: upload one or pick an example"),
    ("send_garment", [None, "Dress"], "No garment image"),
    ("send_garment", [None, "Sandal"], "Garment class must be one of"),
    # the number of values
    ("analyse_garment", [], "/analyse_garment takes 1 value (upload), got 0"),
    (GENERATE, ["Dress", 4, 0], "/generate_garments takes 4 values (class_name, count, seed, truncation), got 3"),
    (
        GENERATE,
        ["Dress", 4, 0, 0, 9],
        "/generate_garments takes 4 values (class_name, count, seed, truncation), got 5",
    ),
    ("tryon", ["Mine"], "/tryon takes 15 values (avatar_source, avatar_seed, height"),
    ("send_garment", [], "This event takes 2 values"),
    # example indices (the examples' files stay on the server)
    *[
        ("load_example", [value], "The example index must be a whole number in [0, 3]")
        for value in (99, -1, "0", None, True)
    ],
]


@pytest.mark.parametrize(
    ("endpoint", "data", "message"), BAD_VALUES, ids=[f"{case[0]}{case[1]!r:.60}" for case in BAD_VALUES]
)
def test_bad_values_get_clear_errors_and_the_server_keeps_serving(raw, endpoint, data, message):
    assert_refused(raw.request(endpoint, data), message)
    assert_still_serving(raw)


def test_truncation_that_froze_generation_is_refused_for_every_client(raw):
    """1e-9 used to spin both of the queue's workers for ever; the requests after them waited for ever too."""
    with ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(lambda value: raw.call(GENERATE, ["Dress", 64, 0, value]), [1e-9, 1e-9, 1e-4, 1e-9]))
    for outcome in outcomes:
        assert_refused(outcome, TRUNCATION_RANGE)
    grid = raw.call(GENERATE, ["Dress", 64, 0, 0.05])  # the smallest threshold, the largest count: it finishes
    assert not grid.failed, grid.message
    assert_still_serving(raw)


def test_requests_without_data_are_refused_by_gradio(raw):
    for body in ("{}", '{"data": 5}', "not json"):
        response = raw.http.post("/gradio_api/call/analyse_garment", content=body, headers=JSON)
        assert response.status_code == 422
        assert "data" in response.text or "JSON" in response.text
    assert_still_serving(raw)


def png_with_header(width: int, height: int) -> bytes:
    """A PNG claiming `width` x `height` pixels (8-bit grey) with two rows of pixel data at most."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"\x00" * (width + 1) * min(height, 2)
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def post_drawing(raw: RawClient, index: str, content: bytes) -> httpx.Response:
    """Posts a drawing's layer to the canvas, as the page does before it submits the drawing."""
    config = raw.http.get("/config").json()
    canvas = next(c["id"] for c in config["components"] if c.get("props", {}).get("elem_id") == "sketch-canvas")
    fields = {"component_id": str(canvas), "session_hash": "x", "fn_name": "accept_blobs", "id": uuid.uuid4().hex}
    files = {"file": ("blob", content, "image/png")}
    return raw.http.post("/gradio_api/component_server", data={**fields, "type": "layer", "index": index}, files=files)


def test_drawing_uploads_are_bounded(raw):
    """Gradio's image editor stretched its layer list to any index: 10**9 was 8 GB in one request."""
    refused = post_drawing(raw, str(10**9), b"png")
    assert refused.status_code == 400 and "The canvas has a single layer, 0" in refused.text
    too_big = post_drawing(raw, "0", b"x" * (MAX_DRAWING_BYTES + 1))
    assert too_big.status_code == 413 and f"at most {MAX_DRAWING_BYTES} bytes" in too_big.text
    assert post_drawing(raw, "0", b"png").status_code == 200
    assert_still_serving(raw)


def test_pending_drawings_are_bounded():
    canvas = BoundedSketchpad()
    for number in range(MAX_PENDING_DRAWINGS + 10):
        drawing = {"type": "composite", "index": "null", "id": f"drawing-{number}"}
        canvas.accept_blobs(DataWithFiles(data=drawing, files=[("blob", b"png")]))
    assert len(canvas.blob_storage) == MAX_PENDING_DRAWINGS
    assert "drawing-0" not in canvas.blob_storage and f"drawing-{MAX_PENDING_DRAWINGS + 9}" in canvas.blob_storage


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory: pytest.TempPathFactory, fashion: dict[str, np.ndarray]) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bad-files")
    garment = fashion["images"][3]
    Image.fromarray(garment).save(folder / "garment.png")
    contents = {
        "corrupt.png": os.urandom(4096),
        "empty.png": b"",
        "truncated.png": (folder / "garment.png").read_bytes()[:-60],
        "zero_by_zero.png": png_with_header(0, 0),
        "one_by_one.png": png_with_header(1, 1),
        "bomb.png": png_with_header(100_000, 100_000),
        "notes.txt": b"a garment, honestly",
        "drawing.svg": b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect width="9"/></svg>',
        "document.pdf": b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n",
        "archive.zip": b"PK\x05\x06" + b"\x00" * 18,
    }
    for name, content in contents.items():
        (folder / name).write_bytes(content)
    Image.new("L", (4, 4), 255).save(folder / "four_by_four.png")
    Image.new("1", (10_000, 10_000)).save(folder / "huge.png")  # 100 megapixels in a few kilobytes
    Image.fromarray(np.dstack([garment] * 3)).convert("LAB").save(folder / "lab.tif")
    Image.new("RGBA", (28, 28), (255, 255, 255, 0)).save(folder / "transparent.png")
    Image.fromarray(np.full((28, 28), -5.0, dtype=np.float32), mode="F").save(folder / "negative_float.tif")
    return {path.stem: path for path in folder.iterdir()}


# Uploads through every file input of the API: (endpoint -> values with the upload `f` in place, given a good
# garment upload, and the input's name in messages).
UPLOAD_INPUTS = {
    "analyse_garment": (lambda f, good: [f], "garment"),
    "interpolate_styles": (lambda f, good: [good, f, 4], "second garment"),
    "tryon": (lambda f, good: list(tryon_arguments(f)), "garment"),
    "reference_tryon": (lambda f, good: list(tryon_arguments(f)), "garment"),
    "sketch_to_garment": (lambda f, good: [f], "sketch"),
}
BAD_FILES = {
    "corrupt": "The {name} upload is not an image",
    "empty": "The {name} upload is not an image",
    "truncated": "The {name} upload is damaged",
    "zero_by_zero": "The {name} upload is not an image",
    "one_by_one": "The {name} image is 1 x 1 pixels; it needs at least 8 pixels per side",
    "four_by_four": "The {name} image is 4 x 4 pixels; it needs at least 8 pixels per side",
    "huge": "The {name} image is too large (10000 x 10000 = 100.0 megapixels); the limit is 16.8 megapixels",
    "bomb": "The {name} image is too large",
    "notes": "The {name} upload is not an image",
    "drawing": "The {name} upload is not an image",
    "document": "The {name} upload is not an image",
    "archive": "The {name} upload is not an image",
    "lab": "The {name} image is in the LAB colour mode, which cannot be converted",
    "negative_float": "holds values in [-5, -5], which are not pixels",
}


@pytest.mark.parametrize("kind", BAD_FILES)
@pytest.mark.parametrize("endpoint", UPLOAD_INPUTS)
def test_bad_uploads_get_clear_errors_and_the_server_keeps_serving(client, raw, bad_files, endpoint, kind):
    values, name = UPLOAD_INPUTS[endpoint]
    with pytest.raises(AppError) as error:
        client.predict(
            *values(handle_file(bad_files[kind]), handle_file(bad_files["garment"])), api_name=f"/{endpoint}"
        )
    assert BAD_FILES[kind].format(name=name) in str(error.value)
    assert_still_serving(raw)


@pytest.mark.parametrize(
    ("endpoint", "message"),
    [
        ("tryon", "The garment image is empty (no garment on its background)"),
        ("reference_tryon", "The garment image is empty (no garment on its background)"),
        ("sketch_to_garment", "The sketch is empty"),
    ],
)
def test_a_fully_transparent_upload_is_empty(client, raw, bad_files, endpoint, message):
    values, _ = UPLOAD_INPUTS[endpoint]
    with pytest.raises(AppError, match=re.escape(message)):
        client.predict(*values(handle_file(bad_files["transparent"]), None), api_name=f"/{endpoint}")
    assert_still_serving(raw)


def test_files_over_the_size_limit_are_refused_at_upload(raw):
    response = raw.http.post("/gradio_api/upload", files={"files": ("big.png", os.urandom(21 * 2**20), "image/png")})
    assert response.status_code == 413
    assert "maximum allowed size of 20971520 bytes" in response.text
    assert_still_serving(raw)


@pytest.fixture(scope="module")
def cutouts(tmp_path_factory: pytest.TempPathFactory, fashion: dict[str, np.ndarray]) -> dict[str, tuple[Path, Path]]:
    """Garments and sketches on transparent backgrounds, as photo cut-outs and drawing apps save them, each with the
    opaque image the models should see: (cut-out, opaque equivalent)."""
    folder = tmp_path_factory.mktemp("cutouts")
    garment = np.asarray(Image.fromarray(fashion["images"][3]).resize((112, 112), Image.Resampling.BILINEAR))
    mask = np.where(garment > 20, 255, 0).astype(np.uint8)
    white = np.full_like(garment, 255)
    strokes = np.zeros((280, 280), np.uint8)
    strokes[60:220, 90:104] = strokes[60:220, 176:190] = strokes[60:74, 90:190] = 255  # trousers' outline
    small_garment, small_mask = fashion["images"][3], mask[::4, ::4]
    images = {
        # a white garment, its transparent pixels stored white (as most editors do) or black
        "white_garment": (np.dstack([white] * 3 + [mask]), mask),
        "white_garment_black_under_alpha": (np.dstack([mask] * 3 + [mask]), mask),
        "light_garment": (np.dstack([garment] * 3 + [mask]), np.where(mask, garment, 0)),
        "greyscale_alpha_garment": (np.dstack([small_garment, small_mask]), np.where(small_mask, small_garment, 0)),
        # white lines on a transparent canvas: the sketch is dark lines on white
        "white_strokes": (np.dstack([np.full_like(strokes, 255)] * 3 + [strokes]), 255 - strokes),
    }
    paths = {}
    for name, (pixels, opaque) in images.items():
        paths[name] = (folder / f"{name}.png", folder / f"{name}-opaque.png")
        Image.fromarray(pixels.astype(np.uint8)).save(paths[name][0])
        Image.fromarray(opaque.astype(np.uint8)).save(paths[name][1])
    return paths


def same_image(first: str, second: str) -> bool:
    return np.array_equal(np.asarray(open_image(first)), np.asarray(open_image(second)))


@pytest.mark.parametrize(
    "kind", ["white_garment", "white_garment_black_under_alpha", "light_garment", "greyscale_alpha_garment"]
)
def test_a_light_garment_cut_out_is_analysed_light_on_black(client, cutouts, kind):
    """It used to be composited on white, then inverted for its light border: an all-black model input."""
    cutout, opaque = (handle_file(path) for path in cutouts[kind])
    model_input, _, _, details = client.predict(cutout, api_name="/analyse_garment")
    pixels = np.asarray(open_image(model_input).convert("L"), dtype=np.float32)
    assert pixels[:, :8].mean() < 10 and pixels[96:128, 96:128].mean() > 100  # light garment, black background
    assert details["inverted_upload"] is False
    assert same_image(model_input, client.predict(opaque, api_name="/analyse_garment")[0])


@pytest.mark.parametrize("endpoint", ["tryon", "reference_tryon"])
def test_a_light_garment_cut_out_dresses_the_avatar(client, cutouts, endpoint):
    """It used to be refused as an empty garment."""
    cutout, opaque = (handle_file(path) for path in cutouts["white_garment"])
    result = client.predict(*tryon_arguments(cutout), api_name=f"/{endpoint}")
    expected = client.predict(*tryon_arguments(opaque), api_name=f"/{endpoint}")
    assert all(same_image(got, want) for got, want in zip(result, expected, strict=True))


def test_white_strokes_on_transparency_are_a_sketch(client, cutouts):
    """They used to vanish on white: "the sketch is empty"."""
    cutout, opaque = (handle_file(path) for path in cutouts["white_strokes"])
    model_input, garment = client.predict(cutout, api_name="/sketch_to_garment")
    pixels = np.asarray(open_image(model_input).convert("L"))
    assert pixels.min() < 60 and np.median(pixels) > 200  # dark lines on white
    expected = client.predict(opaque, api_name="/sketch_to_garment")
    assert same_image(model_input, expected[0]) and same_image(garment, expected[1])


@pytest.fixture
def in_process_space(monkeypatch, tmp_path, tmp_path_factory):
    """The Space's handlers in this process with tiny models and a time limit of 0 s; uploads go to `tmp_path`,
    standing in for Gradio's cache."""
    for name, value in make_tiny_models(tmp_path_factory.mktemp("in-process-models")).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path))
    from app import WardrobeSpace

    return WardrobeSpace(space_models.load_models(), space_models.HeldoutGarments.load(), time_limit=0)


def test_requests_over_the_time_limit_stop_with_a_clear_error(in_process_space, tmp_path, fashion):
    space = in_process_space
    garment = tmp_path / "garment.png"
    Image.fromarray(fashion["images"][3]).save(garment)
    sketch = tmp_path / "sketch.png"
    Image.fromarray(garment_to_sketch(fashion["images"][3])).save(sketch)
    requests = [
        lambda: space.generate_garments("Dress", 64, 0, 0.5),
        lambda: space.sample_styles(64, 0, 1.0),
        lambda: space.interpolate_styles(str(garment), str(garment), 16),
        lambda: space.analyse_garment(str(garment)),
        lambda: space.model_tryon("Gallery / seed", 0, *BODY, str(garment), "Dress", 0),
        lambda: space.sketch_to_garment(str(sketch)),
    ]
    for request in requests:
        with pytest.raises(gr.Error, match=r"This request ran out of time: a request may compute for at most 0 s"):
            request()
    # Bad values are still named first: the time limit is no excuse for a vaguer message.
    with pytest.raises(gr.Error, match="Count must be a whole number"):
        space.generate_garments("Dress", 65, 0, 0.5)
