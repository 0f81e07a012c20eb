"""Import times of hf-vaegan against torch and diffusers, each in fresh interpreters, in one run.

    python benchmarks/import_time.py [--repeats 5]

Prints the CPU, a table of median wall times (seconds, fresh subprocess each, the interpreter's own start-up
subtracted) with ratios to `import torch`, and a final JSON line.
"""

import argparse
import json
import statistics
import subprocess
import sys
import time

from hf_vaegan.hardware import cpu_info

STATEMENTS = {
    "import torch": "import torch",
    "import diffusers": "import diffusers",
    "from diffusers import AutoencoderKL": "from diffusers import AutoencoderKL",
    "import hf_vaegan": "import hf_vaegan",
    "from hf_vaegan import VAE": "from hf_vaegan import VAE",
    "from hf_vaegan import GANPipeline": "from hf_vaegan import GANPipeline",
    "hf-vaegan --help": "from hf_vaegan.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass",
}


def wall_time(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="Fresh interpreters per statement (median taken).")
    args = parser.parse_args()
    print(f"CPU: {cpu_info().describe()}")
    # Rounds interleave the statements, so that a change of machine load hits them all alike.
    times: dict[str, list[float]] = {name: [] for name in ["python -c pass", *STATEMENTS]}
    for _ in range(args.repeats):
        times["python -c pass"].append(wall_time("pass"))
        for name, code in STATEMENTS.items():
            times[name].append(wall_time(code))
    startup = statistics.median(times.pop("python -c pass"))
    medians = {name: max(statistics.median(values) - startup, 0.0) for name, values in times.items()}
    torch_time = medians["import torch"]
    print(f"interpreter start-up {startup:.3f} s (subtracted); median of {args.repeats} fresh processes")
    print(f"{'statement':<36} {'seconds':>8} {'vs import torch':>16}")
    for name, seconds in medians.items():
        print(f"{name:<36} {seconds:>8.3f} {seconds / torch_time:>15.2f}x")
    print(json.dumps({"cpu": cpu_info().describe(), "seconds": {k: round(v, 4) for k, v in medians.items()}}))


if __name__ == "__main__":
    main()
