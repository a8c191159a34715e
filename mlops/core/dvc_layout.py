"""The datasets bucket as a DVC remote: where DVC 3 keeps a file by its md5, the ``.dvc`` pointer
it writes, and the commands that fetch a dataset with ``dvc`` alone. Pure: no AWS here.

DVC 3's remote layout (dvc/data_cloud.py, dvc_objects/db.py): ``<remote URL>/files/md5/<first
two hex digits>/<the other 30>``, a folder's listing beside its files as ``<...>.dir``. The
md5 is of the file's bytes as they are (``hash: md5``; DVC 2's ``md5-dos2unix`` is not used).
"""

from __future__ import annotations

import re

# s3://<datasets bucket>/dvc is the DVC remote's URL; the named copies the pipeline reads
# (raw/...) stay where they are.
REMOTE_PREFIX = "dvc"
REMOTE_NAME = "mlops-datasets"
# The name `registry show` gives a model's training data when it writes its pointer.
FETCHED_NAME = "training-data"

_DIGEST = re.compile(r"[0-9a-f]{32}(\.dir)?")
_POINTER_MD5 = re.compile(r"^-?\s*md5:\s*(\S+)\s*$", re.MULTILINE)


def check_digest(digest: str) -> str:
    """``digest`` if it is a DVC md5 (32 hex digits, ``.dir`` for a folder); ValueError if not."""
    if not _DIGEST.fullmatch(digest):
        raise ValueError(f"not a DVC md5: {digest!r} (32 hex digits, .dir after a folder's)")
    return digest


def remote_url(bucket: str) -> str:
    return f"s3://{bucket}/{REMOTE_PREFIX}"


def object_key(digest: str) -> str:
    """The key of a file (or a folder's listing) in the datasets bucket, by its DVC md5."""
    check_digest(digest)
    return f"{REMOTE_PREFIX}/files/md5/{digest[:2]}/{digest[2:]}"


def pointer_text(digest: str, path: str, size: int | None = None) -> str:
    """A ``.dvc`` pointer file, as ``dvc add`` writes it for one file (``size`` may be left out:
    ``dvc pull`` does not need it)."""
    check_digest(digest)
    lines = ["outs:", f"- md5: {digest}"]
    if size is not None:
        lines.append(f"  size: {size}")
    lines += ["  hash: md5", f"  path: {path}"]
    return "\n".join(lines) + "\n"


def pointer_md5(text: str) -> str | None:
    """The md5 a one-output ``.dvc`` pointer records (None: it records none, or several)."""
    found = _POINTER_MD5.findall(text)
    return found[0] if len(found) == 1 else None


def fetch_commands(
    *, digest: str, bucket: str, endpoint_url: str | None = None, access_key: str | None = None
) -> list[str]:
    """Shell lines that fetch the dataset ``digest`` from the datasets bucket with ``dvc``:
    a new DVC project, the bucket as its remote, the pointer, ``dvc pull``. An emulator is
    reached through ``endpoint_url`` with its dummy ``access_key``."""
    path = FETCHED_NAME if check_digest(digest).endswith(".dir") else f"{FETCHED_NAME}.csv"
    lines = [
        '# in an empty folder, with `pip install "dvc[s3]"` (in a DVC project: skip dvc init)',
        "dvc init --no-scm",
        f"dvc remote add -d {REMOTE_NAME} {remote_url(bucket)}",
    ]
    if endpoint_url:
        lines.append(f"dvc remote modify {REMOTE_NAME} endpointurl {endpoint_url}")
    if access_key:
        lines += [
            f"dvc remote modify --local {REMOTE_NAME} access_key_id {access_key}",
            f"dvc remote modify --local {REMOTE_NAME} secret_access_key {access_key}",
        ]
    lines += [f"cat > {path}.dvc <<'EOF'", *pointer_text(digest, path).splitlines(), "EOF"]
    lines.append(f"dvc pull {path}.dvc")
    return lines
