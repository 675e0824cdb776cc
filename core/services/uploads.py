"""Upload safety: file names that stay inside their folder, archives extracted within limits."""

from __future__ import annotations

import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from core.errors import InvalidInput, TooLarge
from core.names import NAME_RULE, is_name

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")


@dataclass(frozen=True)
class ArchiveLimits:
    max_total_bytes: int = 2 << 30
    max_entries: int = 10_000
    max_ratio: float = 200.0  # uncompressed / compressed


def safe_relative_path(name: str, *, param: str = "files") -> PurePosixPath:
    """A relative path whose every part is a safe name (so no '..', roots, drive letters,
    backslashes or control characters)."""
    path = PurePosixPath(name)
    if not name or path.is_absolute() or not all(is_name(part) for part in path.parts):
        raise InvalidInput(
            f"unsafe file name {name[:80]!r}: each part must be {NAME_RULE}",
            code="unsafe_path",
            param=param,
        )
    return path


def is_archive(name: str) -> bool:
    return name.lower().endswith(ARCHIVE_SUFFIXES)


def extract_archive(archive: Path, dest: Path, limits: ArchiveLimits = ArchiveLimits()) -> None:
    """Extract ``archive`` into ``dest``: regular files only, every name checked, within limits."""
    compressed = max(archive.stat().st_size, 1)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            members = [m for m in zf.infolist() if not m.is_dir()]
            _check_sizes(len(members), sum(m.file_size for m in members), compressed, limits)
            for member in members:
                if (member.external_attr >> 16) & 0o170000 == 0o120000:
                    raise InvalidInput(
                        f"archive entry '{member.filename}' is a link",
                        code="unsafe_path",
                        param="files",
                    )
                _copy(zf.open(member), dest / safe_relative_path(member.filename), limits)
        return
    try:
        with tarfile.open(archive) as tf:
            members = [m for m in tf.getmembers() if not m.isdir()]
            if any(not m.isfile() for m in members):
                raise InvalidInput(
                    "archive holds links or special files", code="unsafe_path", param="files"
                )
            _check_sizes(len(members), sum(m.size for m in members), compressed, limits)
            for member in members:
                source = tf.extractfile(member)
                assert source is not None  # regular files always have content
                _copy(source, dest / safe_relative_path(member.name), limits)
    except tarfile.TarError as exc:
        raise InvalidInput(
            f"not a readable archive: {exc}", code="bad_archive", param="files"
        ) from None


def _check_sizes(entries: int, total: int, compressed: int, limits: ArchiveLimits) -> None:
    if entries > limits.max_entries:
        raise TooLarge(f"archive has {entries} entries (limit {limits.max_entries})", param="files")
    if total > limits.max_total_bytes or total / compressed > limits.max_ratio:
        raise TooLarge(f"archive expands to {total} bytes from {compressed}", param="files")


def _copy(source, target: Path, limits: ArchiveLimits) -> None:
    """Copy with a byte count, so a lying header cannot expand past the limit."""
    target.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with source, target.open("wb") as out:
        while chunk := source.read(1 << 20):
            written += len(chunk)
            if written > limits.max_total_bytes:
                raise TooLarge("archive entry expands past the size limit", param="files")
            out.write(chunk)
