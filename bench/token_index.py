"""Size and MaxSim search time of a ColBERT token index at SciFact's real token counts.

Token vectors are random unit vectors: size and search time do not depend on their values.
``python bench/token_index.py`` (documents cut at 180 tokens, 128 dims, 32-token queries).
"""

import json
import time

import numpy as np
from transformers import AutoTokenizer

from core.indexing.token_index import TokenIndex, estimate_bytes
from core.models.resolve import resolve_model

CORPUS, LENGTH, DIM = "../shared/datasets/scifact/corpus.jsonl", 180, 128


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.normal(size=(n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def main() -> None:
    path = resolve_model("sentence-transformers/all-MiniLM-L6-v2").path
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    with open(CORPUS, encoding="utf-8") as handle:
        docs = [json.loads(line) for line in handle]
    texts = [f"{d.get('title', '')} {d['text']}".strip() for d in docs]
    ids = tokenizer(texts, truncation=False)["input_ids"]
    counts = [min(len(i), LENGTH) for i in ids]
    size = estimate_bytes(counts, DIM)
    print(f"{len(counts)} documents, {sum(counts)} tokens ({np.mean(counts):.1f} per document)")
    print(f"index {size} bytes, {size / len(counts):.0f} bytes per document")
    rng = np.random.default_rng(0)
    index = TokenIndex.build([unit(rng, n) for n in counts], [str(i) for i in range(len(counts))])
    queries = [unit(rng, 32) for _ in range(20)]
    index.search(queries[:1], 10)
    start = time.perf_counter()
    for query in queries:
        index.search([query], 10)
    alone = (time.perf_counter() - start) / len(queries)
    start = time.perf_counter()
    index.search(queries, 10)
    batched = (time.perf_counter() - start) / len(queries)
    print(f"search: {alone * 1000:.0f} ms/query alone, {batched * 1000:.0f} ms/query in a batch")


if __name__ == "__main__":
    main()
