"""Model aliases: promotion through a quality gate, atomic moves, and resolution for serving.

An alias (``prod``) names one (model, index) pair of a project. A request resolves it once
(``AliasResolver.resolve`` or ``resolve_now``) into a ``Target``: both ids come from one row
read, so no request pairs one move's model with another move's index.

Promotion (``promote``) moves an alias to a tuned model only when the model's validation
score (``metrics.after[metric]``, the fine-tune's best evaluation) beats the current
alias model's by more than ``min_gain`` (with no alias yet: the score of the base model
before fine-tuning, ``metrics.before``), and its forgetting drop (``metrics.forgetting``,
written by a compare job with a forgetting dataset) is at most ``max_forgetting_drop``.
``force`` skips a failing gate; every move is an event naming who made it.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from core.errors import Conflict, InvalidInput, NotFound
from core.store import aliases as store
from core.store import repos
from core.store.tables import AliasRow, IndexRow, ModelRow, utcnow

ALIAS_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]{0,39}$"
RESERVED_PREFIXES = ("mdl_", "idx_", "ds_", "job_", "prj_")  # the ids rows are given
_ALIAS = re.compile(ALIAS_PATTERN)


class PromotionRefused(Conflict):
    """The gate refused a promotion; ``figures`` holds what it measured and its thresholds."""

    code = "promotion_refused"

    def __init__(self, message: str, *, figures: dict[str, Any]) -> None:
        super().__init__(message, param="model_id")
        self.figures = figures

    def details(self) -> dict[str, Any]:
        return {"figures": self.figures}


@dataclass(frozen=True)
class GateSpec:
    """The gate's thresholds (``EMBEDTUNE_PROMOTION_*``)."""

    metric: str = "ndcg@10"
    min_gain: float = 0.0  # the candidate must beat the current score by more than this
    max_forgetting_drop: float = 0.02  # base minus candidate on the forgetting dataset


@dataclass(frozen=True)
class Target:
    """What an alias resolved to for one request."""

    name: str
    model_id: str
    index_id: str | None
    version: int


@dataclass(frozen=True)
class Actor:
    """Who moves an alias: an API key's id and name."""

    key_id: str
    name: str


def is_alias_name(name: str) -> bool:
    """Whether ``name`` could be an alias (model ids, paths and hub ids never are)."""
    return bool(_ALIAS.match(name)) and not name.startswith(RESERVED_PREFIXES)


def judge(candidate: ModelRow, current: ModelRow | None, gate: GateSpec) -> tuple[dict, list[str]]:
    """The gate's figures for promoting ``candidate`` over ``current``, and why it fails
    (empty: it passes)."""
    score = candidate.metrics.get("after", {}).get(gate.metric)
    reference = current.metrics.get("after", {}) if current else candidate.metrics.get("before", {})
    baseline = reference.get(gate.metric)
    drop = candidate.metrics.get("forgetting", {}).get("drop", {}).get(gate.metric)
    figures = {
        "metric": gate.metric,
        "candidate_model_id": candidate.id,
        "candidate": score,
        "current_model_id": current.id if current else None,
        "current": baseline,
        "current_is": "the alias's model" if current else "the base model before fine-tuning",
        "gain": None if score is None or baseline is None else score - baseline,
        "min_gain": gate.min_gain,
        "forgetting_drop": drop,
        "max_forgetting_drop": gate.max_forgetting_drop,
    }
    reasons = []
    if score is None:
        reasons.append(f"model '{candidate.id}' has no validation {gate.metric}")
    elif baseline is not None and not score - baseline > gate.min_gain:
        reasons.append(
            f"validation {gate.metric} {score:.4f} is not better than {baseline:.4f} "
            f"({figures['current_is']}) by more than {gate.min_gain:.4f}"
        )
    if drop is not None and drop > gate.max_forgetting_drop:
        reasons.append(
            f"forgetting drop {drop:.4f} of {gate.metric} exceeds {gate.max_forgetting_drop:.4f}"
        )
    return figures, reasons


def promote(
    session: Session,
    *,
    project_id: str,
    name: str,
    model_id: str,
    index_id: str | None,
    force: bool,
    actor: Actor,
    gate: GateSpec,
) -> AliasRow:
    """Point alias ``name`` at (``model_id``, ``index_id``) if the gate passes or ``force``;
    ``PromotionRefused`` (409, with the figures) otherwise. Moves of one alias are
    serialized by a row lock; a move to the pair it already names changes nothing."""
    check_alias_name(name)
    candidate = _target(session, project_id, model_id, index_id)
    by = f"{actor.name} ({actor.key_id})"
    row = store.lock_alias(
        session, project_id=project_id, name=name, model_id=model_id, figures={}, updated_by=by
    )
    fresh = row.version == 0
    if not fresh and (row.model_id, row.index_id) == (model_id, index_id):
        return row
    current = None if fresh else session.get(ModelRow, row.model_id)
    figures, reasons = ({}, []) if current is candidate else judge(candidate, current, gate)
    if reasons and not force:
        raise PromotionRefused(
            f"promotion of '{model_id}' refused: {'; '.join(reasons)}", figures=figures
        )
    previous = (None, None) if fresh else (row.model_id, row.index_id)
    row.model_id, row.index_id, row.figures, row.updated_by = model_id, index_id, figures, by
    row.version += 1
    row.updated_at = utcnow()
    store.add_alias_event(
        session,
        project_id=project_id,
        alias=name,
        action="forced" if reasons else "promoted",
        model_id=model_id,
        index_id=index_id,
        previous_model_id=previous[0],
        previous_index_id=previous[1],
        forced=bool(reasons),
        actor_key_id=actor.key_id,
        actor_name=actor.name,
        figures={**figures, "refusals": reasons} if reasons else figures,
    )
    return row


def _target(session: Session, project_id: str, model_id: str, index_id: str | None) -> ModelRow:
    """The project's tuned embedder ``model_id``, checked with the index built with it."""
    model = repos.get_or_404(session, ModelRow, model_id, "model", project_id=project_id)
    if model.kind != "finetuned":
        raise InvalidInput(
            f"model '{model_id}' is a {model.kind}, not an embedder",
            code="not_an_embedder",
            param="model_id",
        )
    if index_id is not None:
        index = repos.get_or_404(session, IndexRow, index_id, "index", project_id=project_id)
        if index.model != model_id:
            raise InvalidInput(
                f"index '{index_id}' was built with '{index.model}', not '{model_id}'",
                code="index_model_mismatch",
                param="index_id",
            )
    return model


def delete_alias(session: Session, *, project_id: str, name: str, actor: Actor) -> None:
    row = get_alias(session, project_id=project_id, name=name)
    store.add_alias_event(
        session,
        project_id=project_id,
        alias=name,
        action="deleted",
        previous_model_id=row.model_id,
        previous_index_id=row.index_id,
        forced=False,
        actor_key_id=actor.key_id,
        actor_name=actor.name,
        figures={},
    )
    session.delete(row)


def get_alias(session: Session, *, project_id: str, name: str) -> AliasRow:
    row = (
        store.get_alias(session, project_id=project_id, name=name) if is_alias_name(name) else None
    )
    if row is None:
        raise NotFound(f"alias '{name}' does not exist", code="alias_not_found", param="name")
    return row


def check_alias_name(name: str) -> None:
    if not is_alias_name(name):
        raise InvalidInput(
            f"alias '{name[:80]}' must match {ALIAS_PATTERN} and not start with "
            f"{', '.join(RESERVED_PREFIXES)}",
            code="invalid_alias_name",
            param="name",
        )


def refuse_if_aliased(
    session: Session, *, model_id: str | None = None, dataset_id: str | None = None
) -> None:
    """``Conflict`` while an alias points at the model, or at an index of the dataset."""
    names = store.aliases_using(session, model_id=model_id, dataset_id=dataset_id)
    if names:
        what = f"model '{model_id}'" if model_id else f"dataset '{dataset_id}'"
        raise Conflict(
            f"{what} is used by aliases: {', '.join(names)}", code="alias_in_use", param="id"
        )


def resolve_now(session: Session, *, project_id: str, name: str) -> Target | None:
    """The alias ``name`` of the project as one read gives it; None when there is none."""
    if not is_alias_name(name):
        return None
    row = store.get_alias(session, project_id=project_id, name=name)
    return None if row is None else Target(name, row.model_id, row.index_id, row.version)


class AliasResolver:
    """Resolves model names that may be aliases, answers cached ``ttl`` seconds per
    (project, name), so that a busy client costs no database round trip per request. Each
    cached answer is a whole ``Target``; a move made by this process is seen at once
    (``forget``), one made by another API process within ``ttl``."""

    def __init__(self, factory: sessionmaker[Session], ttl: float, size: int = 4096) -> None:
        self.factory, self.ttl, self.size = factory, ttl, size
        self._cache: dict[tuple[str, str], tuple[Target | None, float]] = {}

    async def resolve(self, project_id: str, name: str) -> Target | None:
        if not is_alias_name(name):
            return None
        key, now = (project_id, name), time.monotonic()
        cached = self._cache.get(key)
        if cached is not None and now - cached[1] < self.ttl:
            return cached[0]
        target = await asyncio.to_thread(self._lookup, project_id, name)
        if len(self._cache) >= self.size:
            self._cache.pop(next(iter(self._cache)))
        self._cache[key] = (target, now)
        return target

    def forget(self, project_id: str, name: str) -> None:
        self._cache.pop((project_id, name), None)

    def _lookup(self, project_id: str, name: str) -> Target | None:
        with self.factory() as session:
            return resolve_now(session, project_id=project_id, name=name)
