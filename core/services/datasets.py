"""Register uploaded datasets (validate, store, describe), load and delete them."""

from __future__ import annotations

import hashlib
import shutil
import uuid
from pathlib import Path

from sqlalchemy.orm import Session

from core.datasets.checks import MAX_LISTED
from core.datasets.corrections import Correction, apply_corrections
from core.datasets.io import load_dataset, save_dataset
from core.datasets.model import RetrievalDataset
from core.datasets.options import ReadOptions
from core.datasets.stats import ModelLengths, dataset_stats
from core.errors import Conflict
from core.names import check_name, child_path
from core.services.aliases import refuse_if_aliased
from core.services.models import embedder_for, model_location
from core.settings import Settings
from core.store import repos
from core.store.db import after_commit
from core.store.tables import DEFAULT_PROJECT, DatasetRow, new_id


def staging_dir(settings: Settings) -> Path:
    """A fresh folder to receive an upload before it is validated."""
    path = settings.data_dir / "uploads" / uuid.uuid4().hex
    path.mkdir(parents=True)
    return path


def dataset_root(staging: Path) -> Path:
    """The file or folder inside an upload that holds the dataset."""
    entries = [p for p in staging.iterdir() if not p.name.startswith(".")]
    if (staging / "corpus.jsonl").is_file() or len(entries) != 1:
        return staging
    only = entries[0]
    return dataset_root(only) if only.is_dir() else only


def register_dataset(
    session: Session,
    *,
    settings: Settings,
    staging: Path,
    project_id: str = DEFAULT_PROJECT,
    name: str | None = None,
    fmt: str | None = None,
    split: str = "train",
    source_job_id: str | None = None,
    options: ReadOptions | None = None,
    lengths_model: str | None = None,
) -> DatasetRow:
    """Validate the upload in ``staging`` (``DatasetInvalid`` on bad data), move it into the
    store and add its row. The staging folder is removed either way.

    ``options`` are kept in ``stats.read_options`` and used whenever the dataset is loaded;
    with ``lengths_model`` the stats give lengths in that model's tokens."""
    options = options or ReadOptions()
    try:
        check_name(split, param="split")
        if name is not None:
            check_name(name, param="name")
        root = dataset_root(staging)
        ds = load_dataset(root, fmt, split=split, options=options)
        lengths = (
            _model_lengths(session, settings, ds, lengths_model, project_id)
            if lengths_model
            else None
        )
        dataset_id = new_id("ds")
        final = settings.datasets_dir / dataset_id
        final.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    path = final / root.relative_to(staging)
    return repos.add_dataset(
        session,
        id=dataset_id,
        project_id=project_id,
        name=name or ds.name,
        format=ds.source_format,
        split=split,
        stats={**dataset_stats(ds, lengths).as_dict(), "read_options": options.as_dict()},
        path=str(path),
        checksum=_checksum(path),
        size_bytes=_size(path),
        source_job_id=source_job_id,
    )


def store_dataset(
    session: Session, *, settings: Settings, ds: RetrievalDataset, name: str, source_job_id: str
) -> DatasetRow:
    """Store a dataset a job produced (e.g. with mined negatives) as a BEIR folder, in the
    job's project."""
    staging = staging_dir(settings)
    save_dataset(ds, child_path(staging, name), "beir")
    return register_dataset(
        session,
        settings=settings,
        staging=staging,
        project_id=repos.job_project(session, job_id=source_job_id),
        name=name,
        fmt="beir",
        source_job_id=source_job_id,
    )


def correct_dataset(
    session: Session,
    *,
    settings: Settings,
    row: DatasetRow,
    corrections: list[Correction],
    split: str = "train",
    name: str | None = None,
) -> DatasetRow:
    """A new dataset (BEIR) in ``row``'s project: its data with the corrected negatives
    judged relevant in ``split`` (``DatasetInvalid`` for corrections that do not apply);
    ``row`` is left intact. ``stats.corrections`` names the source and what changed."""
    check_name(split, param="split")
    name = name or f"{row.name[:50]}-corrected"
    check_name(name, param="name")
    corrected = apply_corrections(load(row), corrections, split=split)
    staging = staging_dir(settings)
    try:
        save_dataset(corrected, child_path(staging, name), "beir")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    new = register_dataset(
        session,
        settings=settings,
        staging=staging,
        project_id=row.project_id,
        name=name,
        fmt="beir",
    )
    listed = [{"query_id": c.query_id, "doc_id": c.doc_id} for c in corrections[:MAX_LISTED]]
    new.stats = {
        **new.stats,
        "corrections": {
            "source_dataset_id": row.id,
            "split": split,
            "count": len(set(corrections)),
            "items": listed,
        },
    }
    return new


def load(row: DatasetRow) -> RetrievalDataset:
    """The stored dataset, read with the options it was uploaded with."""
    options = ReadOptions(**row.stats.get("read_options", {}))
    return load_dataset(row.path, row.format, split=row.split, options=options)


def _model_lengths(
    session: Session, settings: Settings, ds: RetrievalDataset, model: str, project_id: str
) -> ModelLengths:
    """Lengths in the tokens of ``model``: a client's reference (never a path) or one of the
    project's tuned models."""
    location = model_location(session, model, project_id=project_id)
    embedder = embedder_for(settings, location, allow_paths=location != model)
    return ModelLengths.of(
        ds, model=model, max_seq_length=embedder.max_seq_length, count=embedder.count_tokens
    )


def delete_dataset(session: Session, *, settings: Settings, dataset_id: str) -> None:
    """Delete a dataset, and its files once that is committed; refused while a queued or
    running job uses it."""
    row = repos.get_or_404(session, DatasetRow, dataset_id, "dataset")
    refuse_if_aliased(session, dataset_id=dataset_id)  # its indexes go with it
    if active := repos.active_jobs_using(session, dataset_id=dataset_id):
        raise Conflict(
            f"dataset '{dataset_id}' is used by active jobs: {', '.join(active)}",
            code="dataset_in_use",
            param="id",
        )
    session.delete(row)
    session.flush()
    folder = settings.datasets_dir / dataset_id
    after_commit(session, lambda: shutil.rmtree(folder, ignore_errors=True))


def _files(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]


def _checksum(path: Path) -> str:
    digest = hashlib.sha256()
    for file in _files(path):
        digest.update(file.relative_to(path).as_posix().encode() if path.is_dir() else b"")
        with file.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in _files(path))
