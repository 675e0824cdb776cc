"""The quality loop on a real dataset: what re-mining, merging, recipe search and NUDGE add.

Every method trains on the same 80% of the train queries and chooses on the other 20%
(validation); merge weights are chosen on validation plus the forgetting set's ``train``
split. The test split of both datasets is scored once per method, at the end of its row.

    python bench/quality_loop.py --dataset ../shared/datasets/scifact \\
        --forgetting ../shared/datasets/cmrc2018 --stages base,adapter,rounds,merge,nudge,search

Stages run in order and each row is written to ``<out>/rows.jsonl`` as it finishes; a rerun
skips the rows already there (so a long run can be continued).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.datasets.io import load_dataset
from core.datasets.split import hold_out, split_by_query
from core.evaluation.evaluator import EvalSpec, evaluate
from core.models.cache import EmbeddingCache
from core.models.embedder import Embedder, load_embedder
from core.nudge import NudgeSpec, run_nudge
from core.training import FinetuneSpec, run_finetune
from core.training.merge import BaseVectors, MergeSpec, SharedDocuments, run_merge
from core.training.recipe_search import SEARCHABLE, SearchSpec, search_recipe

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
STAGES = (
    "base",
    "adapter",
    "rounds",
    "merge",
    "merge-strict",
    "nudge",
    "search",
    "full-search",
    "full-round3",
    "full",
    "table",
)


class Loop:
    """The datasets, the base model, the cache and the rows written so far."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args, self.out = args, Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.ds = load_dataset(Path(args.dataset))
        self.other = load_dataset(Path(args.forgetting))
        held = hold_out(self.ds, "train", "test")[0]
        self.train = split_by_query(held, source="train", val_fraction=0.2, seed=0)
        self.cache = EmbeddingCache(Path(args.cache))
        self.base = load_embedder(args.model, max_seq_length=args.max_seq_length)
        self.docs = BaseVectors(self.base, self.cache)
        self.rows_file = self.out / "rows.jsonl"
        lines = self.rows_file.read_text("utf-8").splitlines() if self.rows_file.exists() else []
        self.rows = {r["method"]: r for r in map(json.loads, lines)}

    def done(self, method: str) -> bool:
        return method in self.rows

    def folder(self, method: str) -> Path:
        """Where ``method``'s model is: a search keeps its best trial in ``model``."""
        path = self.out / method
        return path / "model" if (path / "model").is_dir() else path

    def model(self, path: Path, shared_docs: bool) -> Embedder:
        """A tuned model; one whose documents are the base's reuses the base vectors."""
        embedder = load_embedder(str(path))
        if not shared_docs:
            return embedder
        return SharedDocuments(embedder.model, embedder.st, embedder.fingerprint, docs=self.docs)

    def score(self, method: str, embedder: Embedder, cost: dict[str, Any], **extra: Any) -> None:
        """Test metrics on the dataset and the forgetting set; one row."""
        cache = None if isinstance(embedder, SharedDocuments) else self.cache
        test = evaluate(self.ds, embedder, EvalSpec(split="test"), cache=cache).metrics
        forget = evaluate(self.other, embedder, EvalSpec(split="test"), cache=cache).metrics
        self.row(method, test, forget["ndcg@10"], cost, **extra)

    def row(self, method: str, test: dict, forget: float | None, cost: dict, **extra: Any) -> None:
        row = {
            "method": method,
            "ndcg@10": test["ndcg@10"],
            "recall@10": test["recall@10"],
            "forgetting_ndcg@10": forget,
            **cost,
            **extra,
        }
        self.rows[method] = row
        with self.rows_file.open("a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)

    def finetune(self, name: str, spec: FinetuneSpec) -> tuple[Path, Any]:
        began = time.perf_counter()
        result = run_finetune(spec, self.train, self.out / name, cache=self.cache)
        return result.model_dir, {"seconds": time.perf_counter() - began, "result": result}


def stage_base(loop: Loop) -> None:
    if not loop.done("base"):
        val = evaluate(loop.train, loop.base, EvalSpec(split="val"), cache=loop.cache).metrics
        loop.score("base", loop.base, {"seconds": 0.0, "corpus_encodes": 0}, val=val["ndcg@10"])


def stage_finetune(loop: Loop, name: str, spec: FinetuneSpec, shared_docs: bool) -> None:
    if loop.done(name):
        return
    path, info = loop.finetune(name, spec)
    result = info["result"]
    rounds = [
        {"round": r["round"], "val": r["metrics_after"]["ndcg@10"], "mined": r["mined"]}
        for r in result.rounds
    ]
    cost = {"seconds": info["seconds"], "corpus_encodes": 0 if shared_docs else spec.rounds}
    loop.score(
        name,
        loop.model(path, shared_docs),
        cost,
        val=result.metrics_after["ndcg@10"],
        rounds=rounds,
    )


def stage_merge(
    loop: Loop, name: str, tuned: str, shared_docs: bool, max_forgetting: float | None = None
) -> None:
    if loop.done(name) or not (loop.out / tuned).is_dir():
        return
    began = time.perf_counter()
    result = run_merge(
        loop.base,
        [load_embedder(str(loop.out / tuned))],
        target=(loop.train, "val"),
        forgetting=(loop.other, "train"),
        output_dir=loop.out / name,
        spec=MergeSpec(
            max_forgetting=loop.args.max_forgetting if max_forgetting is None else max_forgetting
        ),
        cache=loop.cache,
        on_event=print,
    )
    cost = {"seconds": time.perf_counter() - began, "corpus_encodes": result.corpus_encodes}
    loop.score(
        name,
        loop.model(result.model_dir, shared_docs),
        cost,
        val=result.chosen.target,
        weights=result.weights,
        candidates=[(c.weights[1], c.target, c.forgetting) for c in result.candidates],
    )


def stage_nudge(loop: Loop, name: str, source: str | None, shared_docs: bool) -> None:
    """NUDGE-N on the base or on ``source``'s model."""
    if loop.done(name) or (source and not loop.folder(source).is_dir()):
        return
    embedder = loop.model(loop.folder(source), shared_docs) if source else loop.base
    began = time.perf_counter()
    shared = isinstance(embedder, SharedDocuments)
    result = run_nudge(loop.ds, embedder, NudgeSpec(), cache=None if shared else loop.cache)
    report = result.report
    forget = loop.rows.get(source or "base", {}).get("forgetting_ndcg@10")
    cost = {"seconds": time.perf_counter() - began, "corpus_encodes": 0}
    test = {"ndcg@10": report.test_after["ndcg@10"], "recall@10": report.test_after["recall@10"]}
    loop.row(name, test, forget, cost, val=report.val_after["ndcg@10"], step=report.step)


def stage_search(loop: Loop, name: str, base: FinetuneSpec, shared_docs: bool) -> None:
    if loop.done(name):
        return
    params = tuple(loop.args.search_params.split(","))
    budget = SearchSpec(trials=loop.args.trials, minutes=loop.args.minutes, params=params)
    result = search_recipe(
        base,
        loop.train,
        loop.out / name,
        train_split="train",
        val_split="val",
        spec=budget,
        cache=loop.cache,
    )
    trials = [(t["params"], t["value"], round(t["seconds"])) for t in result.trials]
    cost = {"seconds": result.seconds, "corpus_encodes": 0 if shared_docs else len(trials)}
    model = loop.model(result.model_dir, shared_docs)
    loop.score(name, model, cost, val=result.value, recipe=result.params, trials=trials)
    (loop.out / f"{name}.recipe.json").write_text(json.dumps(result.params), "utf-8")


def stage_remine(loop: Loop, name: str, source: str, search: str, base: FinetuneSpec) -> None:
    """One more round: mine with ``source``'s model, train it again on ``search``'s recipe."""
    recipe_file = loop.out / f"{search}.recipe.json"
    if loop.done(name) or not recipe_file.is_file():
        return
    recipe = json.loads(recipe_file.read_text("utf-8"))
    spec = replace(base, **recipe, base_model=str(loop.folder(source)))
    path, info = loop.finetune(name, spec)
    result = info["result"]
    cost = {"seconds": info["seconds"], "corpus_encodes": 1}
    before, after = loop.rows[source]["val"], result.metrics_after["ndcg@10"]
    loop.score(
        name, loop.model(path, False), cost, val=after, remined={"from": source, "val": before}
    )


def table(rows: dict[str, dict[str, Any]]) -> str:
    """The rows as one markdown table, changes in points (x100) against the base."""
    base = rows["base"]
    lines = [
        "| method | nDCG@10 | Recall@10 | Δ nDCG@10 | CMRC2018 nDCG@10 | Δ forgetting | "
        "val nDCG@10 | time | corpus encodes | how |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        forget = r["forgetting_ndcg@10"]
        how = _how(r)
        lines.append(
            f"| {name} | {r['ndcg@10']:.4f} | {r['recall@10']:.4f} | "
            f"{100 * (r['ndcg@10'] - base['ndcg@10']):+.1f} | {forget:.4f} | "
            f"{100 * (forget - base['forgetting_ndcg@10']):+.1f} | {r['val']:.4f} | "
            f"{r['seconds']:.0f} s | {r['corpus_encodes']} | {how} |"
        )
    return "\n".join(lines)


def _how(row: dict[str, Any]) -> str:
    if "weights" in row:
        return f"weights base/tuned {row['weights'][0]:.1f}/{row['weights'][1]:.1f}"
    if "step" in row:
        return f"step {row['step']}"
    if "recipe" in row:
        return f"{len(row['trials'])} trials; " + ", ".join(
            f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in row["recipe"].items()
        )
    if "remined" in row:
        source = row["remined"]
        return f"re-mined from {source['from']}: val {source['val']:.4f} → {row['val']:.4f}"
    if len(row.get("rounds", [])) > 1:
        return "rounds: val " + " → ".join(f"{r['val']:.4f}" for r in row["rounds"])
    return ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", default="../shared/datasets/scifact")
    parser.add_argument("--forgetting", default="../shared/datasets/cmrc2018")
    parser.add_argument("--stages", default="base,adapter,rounds,merge,nudge,search")
    parser.add_argument("--model", default=MODEL)
    parser.add_argument("--max-seq-length", type=int, default=256)
    parser.add_argument("--out", default="var/quality-loop")
    parser.add_argument("--cache", default="var/cache/embeddings")
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--search-params", default=",".join(SEARCHABLE))
    parser.add_argument("--full-epochs", type=float, default=3.0, help="full fine-tunes' epochs")
    parser.add_argument(
        "--full-recipe", type=Path, help="a recipe.json (spec fields) the full-search starts from"
    )
    parser.add_argument("--max-forgetting", type=float, default=0.005)
    args = parser.parse_args()
    loop = Loop(args)
    adapter = FinetuneSpec(
        method="adapter", base_model=args.model, max_seq_length=args.max_seq_length
    )
    recipe = json.loads(args.full_recipe.read_text("utf-8")) if args.full_recipe else {}
    full = replace(adapter, method="full", **recipe, epochs=args.full_epochs)
    for stage in args.stages.split(","):
        if stage == "base":
            stage_base(loop)
        elif stage == "adapter":
            stage_finetune(loop, "adapter", adapter, shared_docs=True)
        elif stage == "rounds":
            stage_finetune(loop, "adapter-2rounds", replace(adapter, rounds=2), shared_docs=True)
        elif stage == "merge":
            stage_merge(loop, "adapter+merge", "adapter", shared_docs=True)
            stage_merge(loop, "adapter-2rounds+merge", "adapter-2rounds", shared_docs=True)
        elif stage == "merge-strict":  # no drop at all allowed on the forgetting set
            stage_merge(loop, "adapter+merge-strict", "adapter", True, max_forgetting=0.0)
            stage_nudge(loop, "adapter+merge-strict+nudge-n", "adapter+merge-strict", True)
        elif stage == "nudge":
            stage_nudge(loop, "nudge-n", None, shared_docs=False)
            for source in ("adapter", "adapter+merge", "adapter-2rounds+merge"):
                stage_nudge(loop, f"{source}+nudge-n", source, shared_docs=True)
        elif stage == "search":
            stage_search(loop, "adapter-search", adapter, shared_docs=True)
        elif stage == "table":
            print(table(loop.rows))
        elif stage == "full-search":  # the search over full fine-tunes, then a round 2
            stage_search(loop, "full-search", full, shared_docs=False)
            stage_nudge(loop, "full-search+nudge-n", "full-search", shared_docs=False)
            stage_remine(loop, "full-search+remine", "full-search", "full-search", full)
            stage_nudge(loop, "full-search+remine+nudge-n", "full-search+remine", False)
        elif stage == "full-round3":  # one more re-mined round after full-search's
            remined = "full-search+remine"
            stage_remine(loop, f"{remined}+remine", remined, "full-search", full)
        elif stage == "full":
            stage_finetune(loop, "full-2rounds", replace(full, rounds=2), shared_docs=False)
            stage_merge(loop, "full-2rounds+merge", "full-2rounds", shared_docs=False)
            stage_nudge(loop, "full-2rounds+nudge-n", "full-2rounds", shared_docs=False)
        else:
            raise SystemExit(f"unknown stage {stage!r}: {', '.join(STAGES)}")


if __name__ == "__main__":
    main()
