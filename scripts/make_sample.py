"""Cut the shipped SciFact sample from a full BEIR SciFact folder (made data/scifact-sample).

Keeps every query and judgment, every judged document, and a seeded random draw of the other
documents up to ``--docs`` in all.  Usage: python scripts/make_sample.py SRC DST [--docs 2000]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("src", type=Path)
    parser.add_argument("dst", type=Path)
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()

    judged = set()
    for qrels in sorted((args.src / "qrels").glob("*.tsv")):
        rows = qrels.read_text("utf-8").splitlines()[1:]
        judged.update(row.split("\t")[1] for row in rows if row.strip())
    lines = (args.src / "corpus.jsonl").read_text("utf-8").splitlines()
    others = [line for line in lines if json.loads(line)["_id"] not in judged]
    random.Random(args.seed).shuffle(others)
    keep = {json.loads(line)["_id"] for line in others[: max(args.docs - len(judged), 0)]} | judged

    (args.dst / "qrels").mkdir(parents=True, exist_ok=True)
    corpus = [line for line in lines if json.loads(line)["_id"] in keep]
    (args.dst / "corpus.jsonl").write_text("\n".join(corpus) + "\n", "utf-8")
    shutil.copy(args.src / "queries.jsonl", args.dst / "queries.jsonl")
    for qrels in (args.src / "qrels").glob("*.tsv"):
        shutil.copy(qrels, args.dst / "qrels" / qrels.name)
    print(f"{len(corpus)} documents, {len(judged)} judged")


if __name__ == "__main__":
    main()
