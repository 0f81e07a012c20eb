"""Load test of the virtual-wardrobe Space: concurrent `gradio_client` clients, every request must succeed.

Each client opens its own session, then all start together and send their requests one after the other, cycling
through the Space's endpoints (GAN grid, VAE samples, interpolation, upload analysis, body-VAE avatar, try-on model,
try-on reference, sketch to garment) from a different starting point each. Then, as the baseline, one client alone
sends the same requests one after the other. Reports p50/p95/max latency per endpoint and overall for both, their
ratio, and the load average of the machine; exits with status 1 if any request failed.

    python benchmarks/space_load.py                         # starts the Space with the bundled models
    python benchmarks/space_load.py --clients 32 --requests 5 --output_json load.json
    python benchmarks/space_load.py --url http://127.0.0.1:7860/   # a Space that is already running
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from collections import defaultdict
from contextlib import nullcontext
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).parents[1]
sys.path[:0] = [str(ROOT / "spaces"), str(ROOT / "tests")]  # the Space's modules, and the harness that serves it
# The load clients talk to the Space only: no Gradio analytics, no Hub lookups (huggingface_hub reads these at
# import). The Space started here gets the caller's offline setting back, to load models from the Hub if asked.
SPACE_HUB_OFFLINE = os.environ.get("HF_HUB_OFFLINE", "0")
os.environ.update(GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1")

from gradio_client import Client, handle_file  # noqa: E402
from space_server import client_scratch_dir, serve_space  # noqa: E402
from wardrobe_space.models import HeldoutGarments  # noqa: E402

from hf_vaegan.data.sketch import garment_to_sketch  # noqa: E402
from hf_vaegan.data.wardrobe import BodyShape  # noqa: E402
from hf_vaegan.hardware import cpu_info  # noqa: E402

MODEL_ENV_VARS = {
    "gan": "HF_VAEGAN_GAN",
    "vae": "HF_VAEGAN_VAE",
    "body_vae": "HF_VAEGAN_BODY_VAE",
    "tryon": "HF_VAEGAN_TRYON",
    "sketch": "HF_VAEGAN_SKETCH",
}


def requests_to_send(garment: str, other_garment: str, sketch: str) -> list[tuple[str, tuple]]:
    """(endpoint, arguments) of each kind of request, as the UI sends them with its default settings."""
    body = tuple(BodyShape().to_dict().values())
    return [
        ("/generate_garments", ("Dress", 16, 0, 0.7)),
        ("/sample_styles", (16, 0, 1.0)),
        ("/interpolate_styles", (handle_file(garment), handle_file(other_garment), 8)),
        ("/analyse_garment", (handle_file(garment),)),
        ("/render_body", body),
        ("/tryon", ("Gallery / seed", 0, *body, handle_file(garment), "Dress", 0)),
        ("/reference_tryon", ("Body shapes tab", 0, *body, handle_file(garment), "Dress", 0)),
        ("/sketch_to_garment", (handle_file(sketch),)),
    ]


def percentile(latencies: list[float], q: float) -> float:
    return float(np.percentile(latencies, q)) if latencies else float("nan")


def run(url: str, schedule: list[list[tuple[str, tuple]]]) -> dict:
    """Sends each client's requests of `schedule` from its own session, all clients at once; returns latencies per
    endpoint (seconds), errors, and wall time."""
    clients = len(schedule)
    downloads = tempfile.mkdtemp(prefix="space-load-")
    sessions = [Client(url, verbose=False, download_files=downloads, analytics_enabled=False) for _ in range(clients)]
    latencies: dict[str, list[float]] = defaultdict(list)
    errors: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)

    def client_loop(index: int) -> None:
        start.wait()
        for endpoint, arguments in schedule[index]:
            began = time.perf_counter()
            try:
                sessions[index].predict(*arguments, api_name=endpoint)
            except Exception as error:  # every failure counts, whatever its kind
                with lock:
                    errors.append(f"{endpoint}: {type(error).__name__}: {error}")
                continue
            with lock:
                latencies[endpoint].append(time.perf_counter() - began)

    threads = [threading.Thread(target=client_loop, args=(index,)) for index in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    return {"latencies": dict(latencies), "errors": errors, "wall_time": time.perf_counter() - began}


def report(title: str, results: dict) -> dict:
    everything = [latency for values in results["latencies"].values() for latency in values]
    rows = {
        endpoint: {"n": len(values), "p50": percentile(values, 50), "p95": percentile(values, 95), "max": max(values)}
        for endpoint, values in sorted(results["latencies"].items())
    }
    rows["all"] = {
        "n": len(everything),
        "p50": percentile(everything, 50),
        "p95": percentile(everything, 95),
        "max": max(everything, default=float("nan")),
    }
    print(
        f"{title}: {results['wall_time']:.1f} s wall time, {len(everything) / results['wall_time']:.2f} requests/s, "
        f"{len(results['errors'])} errors"
    )
    print(f"{'endpoint':<22}{'n':>5}{'p50 (s)':>10}{'p95 (s)':>10}{'max (s)':>10}")
    for endpoint, row in rows.items():
        print(f"{endpoint:<22}{row['n']:>5}{row['p50']:>10.2f}{row['p95']:>10.2f}{row['max']:>10.2f}")
    for error in results["errors"][:10]:
        print("error:", error)
    return {"wall_time_s": results["wall_time"], "errors": results["errors"], "latency_s": rows}


def print_ratios(concurrent: dict, alone: dict) -> dict[str, float]:
    """p50 latency under load over p50 latency of one client alone, per endpoint and overall."""
    ratios = {
        endpoint: concurrent["latency_s"][endpoint]["p50"] / row["p50"]
        for endpoint, row in alone["latency_s"].items()
        if endpoint in concurrent["latency_s"]
    }
    print(f"{'endpoint':<22}{'p50 ratio (load / alone)':>26}")
    for endpoint, ratio in ratios.items():
        print(f"{endpoint:<22}{ratio:>26.1f}")
    return ratios


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def main() -> None:
    print(f"CPU: {cpu_info().describe()}", flush=True)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=32, help="Concurrent clients (default: 32).")
    parser.add_argument("--requests", type=int, default=5, help="Requests per client (default: 5).")
    parser.add_argument("--url", help="URL of a running Space; default: start one on a free local port.")
    for key, env_var in MODEL_ENV_VARS.items():
        parser.add_argument(f"--{key}", help=f"Hub id or folder of this model for the started Space ({env_var}).")
    parser.add_argument("--output_json", help="Also write the figures to this JSON file.")
    args = parser.parse_args()
    if args.clients < 1 or args.requests < 1:
        parser.error("--clients and --requests must be >= 1")

    env = {env_var: getattr(args, key) for key, env_var in MODEL_ENV_VARS.items() if getattr(args, key)}
    env["HF_HUB_OFFLINE"] = SPACE_HUB_OFFLINE
    figures = {"clients": args.clients, "requests_per_client": args.requests, "load_average_before": load_average()}
    print(f"load average (1, 5, 15 min) before: {figures['load_average_before']}")
    with client_scratch_dir() as scratch, nullcontext(None) if args.url else serve_space(env) as space:
        heldout = HeldoutGarments.load()
        garments = []
        for label in (3, 0):  # a dress and a T-shirt
            garments.append(str(scratch / f"garment-{label}.png"))
            Image.fromarray(heldout.images[np.flatnonzero(heldout.labels == label)[0]]).save(garments[-1])
        sketch = str(scratch / "sketch.png")
        garment_to_sketch(Image.open(garments[0]), jitter=0.6, seed=0).save(sketch)
        kinds = requests_to_send(*garments, sketch)
        schedule = [
            [kinds[(client + request) % len(kinds)] for request in range(args.requests)]
            for client in range(args.clients)
        ]
        url = args.url or space.url
        run(url, [kinds])  # warm-up: every endpoint once
        concurrent = run(url, schedule)
        figures["load_average_under_load"] = load_average()
        alone = run(url, [[request for requests in schedule for request in requests]])
    figures["concurrent"] = report(f"{args.clients} clients x {args.requests} requests at once", concurrent)
    figures["alone"] = report(f"the same {args.clients * args.requests} requests from one client", alone)
    figures["p50_ratio"] = print_ratios(figures["concurrent"], figures["alone"])
    figures["load_average_after"] = load_average()
    print(
        f"load average (1, 5, 15 min) after the load: {figures['load_average_under_load']}, at the end: "
        f"{figures['load_average_after']}"
    )
    if args.output_json:
        Path(args.output_json).write_text(json.dumps(figures, indent=1))
    sys.exit(1 if concurrent["errors"] or alone["errors"] else 0)


if __name__ == "__main__":
    main()
