"""Job encodes by token budget against the previous path (chunks of 256 texts through
``SentenceTransformer.encode_document``, batch 64), interleaved in one process.

    PYTHONPATH=. python bench/token_batches.py [--docs 300] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from core.models.embedder import CHUNK, load_embedder

CORPUS = Path(__file__).resolve().parents[1].parent / "shared/datasets/scifact/corpus.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--docs", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rows = [json.loads(line) for line in CORPUS.read_text("utf-8").splitlines()[: args.docs]]
    texts = [f"{r.get('title', '')} {r['text']}".strip() for r in rows]
    embedder = load_embedder("sentence-transformers/all-MiniLM-L6-v2")

    def previous() -> np.ndarray:
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out = np.empty((len(texts), embedder.st.get_embedding_dimension() or 0), np.float32)
        for start in range(0, len(texts), CHUNK):
            idx = order[start : start + CHUNK]
            out[idx] = embedder.st.encode_document(
                [texts[i] for i in idx], prompt="", batch_size=64, normalize_embeddings=True
            )
        return out

    def by_tokens() -> np.ndarray:
        return embedder.encode(texts, "document", counted=False)

    by_tokens()  # warm-up
    lengths = np.minimum(embedder.count_tokens(texts, "document"), embedder.max_seq_length)
    print(f"{len(texts)} documents, mean {lengths.mean():.1f} tokens after truncation")
    seconds: dict[str, list[float]] = {"previous": [], "by tokens": []}
    vectors = {}
    for _ in range(args.rounds):
        for name, run in (("previous", previous), ("by tokens", by_tokens)):
            t0 = time.perf_counter()
            vectors[name] = run()
            seconds[name].append(time.perf_counter() - t0)
            print(f"{name:<10} {seconds[name][-1]:.2f}s", flush=True)
    best = {k: min(v) for k, v in seconds.items()}
    diff = np.abs(vectors["previous"] - vectors["by tokens"]).max()
    print(
        f"best: previous {best['previous']:.2f}s, by tokens {best['by tokens']:.2f}s; "
        f"max |difference| {diff:.2e}"
    )


if __name__ == "__main__":
    main()
