"""Content hashes: the identity of data, code and models across runs."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path

_CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    return _file_digest(path, hashlib.sha256())


def file_md5(path: Path) -> str:
    """The file's md5 as DVC 3 computes it (``hash: md5``): of the bytes as they are."""
    return _file_digest(path, hashlib.md5(usedforsecurity=False))


def _file_digest(path: Path, digest: hashlib._Hash) -> str:
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


def dvc_dir_listing(md5s: Mapping[str, str]) -> bytes:
    """DVC's listing of a folder (its ``.dir`` object): the files' md5s by relative posix path,
    sorted by path, serialized as dvc-data's ``Tree.as_bytes`` does."""
    entries = [{"md5": md5, "relpath": path} for path, md5 in sorted(md5s.items())]
    return json.dumps(entries, sort_keys=True).encode()


def dvc_digest(md5s: Mapping[str, str]) -> str:
    """DVC's md5 of a dataset of files {relative path: md5}: a lone file's own md5 (a ``.dvc``
    pointer to that file fetches it), for several files the md5 of their listing plus ``.dir``
    (a pointer to the folder, whose listing object is stored beside the files)."""
    if not md5s:
        raise ValueError("a dataset holds at least one file")
    if len(md5s) == 1:
        return next(iter(md5s.values()))
    return hashlib.md5(dvc_dir_listing(md5s), usedforsecurity=False).hexdigest() + ".dir"
