"""Rebuild `heldout_garments.npz` from the Fashion-MNIST test split: `python make_heldout.py path/to/test.npz`.

Per class, the test images ranked 100-199 in the official order (the test fixture of the package holds ranks 0-99, so
the two never overlap). The Space shows the first few of each class as examples and calibrates the anomaly threshold
on the rest. Arrays: `images` (uint8, 1000 x 28 x 28, 0 = background) and `labels` (uint8, 0-9).
"""

import sys
from pathlib import Path

import numpy as np

FIRST_RANK, PER_CLASS = 100, 100


def main(test_npz: str) -> None:
    data = np.load(test_npz)
    images, labels = data["images"], data["labels"]
    ranks = [np.flatnonzero(labels == c)[FIRST_RANK : FIRST_RANK + PER_CLASS] for c in range(10)]
    index = np.sort(np.concatenate(ranks))
    out = Path(__file__).with_name("heldout_garments.npz")
    np.savez_compressed(out, images=images[index], labels=labels[index])
    print(f"wrote {out} ({len(index)} images)")


if __name__ == "__main__":
    main(sys.argv[1])
