"""Files on this machine written whole or not at all, and never over another file: drift
results and reports, endpoint pages, DVC pointers."""

from __future__ import annotations

import os
import threading
from pathlib import Path


def write_new(path: Path, text: str) -> None:
    """Write ``path`` whole (written beside it, then linked into place: a full disk leaves no
    half file) and only if no file is there, also one that appeared meanwhile: FileExistsError.
    """
    partial = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.partial")
    try:
        partial.write_text(text, encoding="utf-8")
        os.link(partial, path)  # fails if the name is taken: nothing is overwritten
    finally:
        partial.unlink(missing_ok=True)
