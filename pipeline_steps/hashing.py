"""Content hashes: the identity of data, code and models across runs."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path

_CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def tree_hashes(root: Path, files: Iterable[Path] | None = None) -> dict[str, str]:
    """{relative posix path: sha256} for every file under ``root`` (or the given files)."""
    paths = sorted(p for p in root.rglob("*") if p.is_file()) if files is None else sorted(files)
    return {p.relative_to(root).as_posix(): file_sha256(p) for p in paths}


def combined_sha256(hashes: Mapping[str, str]) -> str:
    """One hash for a set of named files: independent of order and of where they were read."""
    canonical = json.dumps(dict(sorted(hashes.items())), separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
