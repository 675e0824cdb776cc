"""Offline query generators: pseudo-queries made from the chunks themselves, no LLM.

- ``title``: a document's title is the query of its chunks (title → body pairs), for corpora
  whose documents have titles (papers, pages, Markdown headings).
- ``inverse_cloze``: one sentence of the chunk is the query (Lee et al., 2019, "Latent
  Retrieval for Weakly Supervised Open Domain Question Answering").
- ``crop``: a random span of the chunk's words is the query (independent cropping, Izacard
  et al., 2021, "Unsupervised Dense Information Retrieval with Contrastive Learning").

Each candidate names the chunks it is relevant to and the generator that made it, so the
report can say which generator each training query came from.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Literal

from core.datasets.model import Document

OfflineGenerator = Literal["title", "inverse_cloze", "crop"]
OFFLINE: tuple[OfflineGenerator, ...] = ("title", "inverse_cloze", "crop")
EXTRACTIVE = frozenset({"inverse_cloze", "crop"})  # queries copied out of the chunk by design
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[。！？；])")
CROP_WORDS = (8, 24)


@dataclass(frozen=True)
class Candidate:
    """A synthesized query and the chunk ids it is relevant to."""

    text: str
    chunk_ids: tuple[str, ...]
    generator: str


def source_of(doc: Document) -> str:
    """The source document a chunk came from (its own id when it has no provenance)."""
    return str(doc.metadata.get("doc_id", doc.id))


def title_of(doc: Document) -> str:
    return doc.title or str(doc.metadata.get("title", ""))


def by_title(corpus: dict[str, Document], chosen: list[Document]) -> list[Candidate]:
    """One query per titled source document of the ``chosen`` chunks: its title, relevant to
    every chunk of that document in ``corpus`` (so none of them is mined as a negative)."""
    wanted = {source_of(doc) for doc in chosen}
    groups: dict[str, tuple[str, list[str]]] = {}
    for doc in corpus.values():
        title = title_of(doc).strip()
        if title and source_of(doc) in wanted:
            groups.setdefault(source_of(doc), (title, []))[1].append(doc.id)
    return [Candidate(title, tuple(ids), "title") for title, ids in groups.values()]


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def by_inverse_cloze(chosen: list[Document], seed: int) -> list[Candidate]:
    """One sentence per chunk, chosen at random (seeded) among its sentences of 4+ words
    (of 8+ characters for unspaced scripts), when the chunk has at least two sentences."""
    out: list[Candidate] = []
    for doc in chosen:
        rng = random.Random(f"{seed}:{doc.id}")
        parts = [s for s in sentences(doc.text) if len(s.split()) >= 4 or len(s) >= 8]
        if len(sentences(doc.text)) >= 2 and parts:
            out.append(Candidate(rng.choice(parts), (doc.id,), "inverse_cloze"))
    return out


def by_crop(chosen: list[Document], seed: int) -> list[Candidate]:
    """A random span of 8–24 words per chunk (seeded)."""
    out: list[Candidate] = []
    for doc in chosen:
        rng = random.Random(f"{seed}:{doc.id}")
        words = doc.text.split()
        if len(words) < CROP_WORDS[0] * 2:
            continue
        size = rng.randint(*CROP_WORDS)
        start = rng.randrange(0, max(len(words) - size, 1))
        out.append(Candidate(" ".join(words[start : start + size]), (doc.id,), "crop"))
    return out


def offline_candidates(
    corpus: dict[str, Document], chosen: list[Document], generator: str, seed: int
) -> list[Candidate]:
    """The candidates of one offline generator for the ``chosen`` chunks of ``corpus``."""
    if generator == "title":
        return by_title(corpus, chosen)
    if generator == "inverse_cloze":
        return by_inverse_cloze(chosen, seed)
    if generator == "crop":
        return by_crop(chosen, seed)
    raise ValueError(f"unknown offline generator {generator!r}")
