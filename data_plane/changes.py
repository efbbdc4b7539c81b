"""Which source files changed since the last look (for the source-change sensor).

A cheap fingerprint (size and modification time) is compared first; only files whose fingerprint
moved are hashed, and a file counts as changed only when its content hash differs, so touching a
file or copying it back unchanged triggers nothing. Sources on object storage (``s3://``) are not
watched (their ingestion is requested with ``plane request`` or on a schedule).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from data_plane.ingest import file_sha256
from data_plane.sources import SourceSpec


@dataclass(frozen=True)
class SourceChange:
    source: str
    content_hash: str
    first_seen: bool


def detect_changes(
    specs: Iterable[SourceSpec], cursor: Mapping[str, Mapping[str, str]]
) -> tuple[list[SourceChange], dict[str, dict[str, str]], list[str]]:
    """Returns (changed sources, the new cursor, names of sources whose file is missing)."""
    new_cursor: dict[str, dict[str, str]] = {k: dict(v) for k, v in cursor.items()}
    changes: list[SourceChange] = []
    missing: list[str] = []
    for spec in specs:
        if spec.uri is not None:  # on object storage: not watched here
            continue
        try:
            stat = spec.path.stat()
        except FileNotFoundError:
            missing.append(spec.name)
            continue
        fingerprint = f"{stat.st_size}:{stat.st_mtime_ns}"
        previous = cursor.get(spec.name)
        if previous and previous.get("fingerprint") == fingerprint:
            continue
        digest = file_sha256(spec.path)
        new_cursor[spec.name] = {"fingerprint": fingerprint, "content_hash": digest}
        if previous and previous.get("content_hash") == digest:
            continue
        changes.append(SourceChange(spec.name, digest, first_seen=previous is None))
    return changes, new_cursor, missing
