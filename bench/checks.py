"""Time the data checks (``core.datasets.checks``) on a dataset and print what they found.

python bench/checks.py [--dataset ../shared/datasets/scifact] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from core.datasets.checks import dataset_checks
from core.datasets.io import load_dataset

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "scifact"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=DEFAULT)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    ds = load_dataset(args.dataset)
    seconds = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        checks = dataset_checks(ds)
        seconds.append(time.perf_counter() - start)
    print(
        f"{args.dataset.name}: {len(ds.corpus)} documents, {len(ds.queries)} queries, "
        f"splits {', '.join(ds.splits)}"
    )
    print(f"checks: best {min(seconds):.2f} s, worst {max(seconds):.2f} s of {args.repeat}")
    for name, result in checks.items():
        if isinstance(result, dict):
            print(f"  {name:<26} {result['count']:>6}  {result['items'][:3]}")


if __name__ == "__main__":
    main()
