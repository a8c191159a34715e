"""Package the pipeline step code, deterministically, and name its version.

Two archives are built from ``pipeline_steps/*.py`` (same bytes every time for the same
sources: fixed timestamps, owners and order):

- ``steps.pyz``: a zipapp the processing jobs run (``python3 steps.pyz preprocess ...``);
- ``sourcedir.tar.gz``: the script-mode bundle the training job runs (``train.py`` at its root;
  with MLflow tracking on, a ``requirements.txt`` the container installs first).

The code version is a hash of the package's sources, the same whether the steps run in
SageMaker or locally, and it is recorded on every registered model.
"""

from __future__ import annotations

import gzip
import io
import tarfile
import zipfile
from pathlib import Path

from pipeline_steps.hashing import combined_sha256, file_sha256

PACKAGE = "pipeline_steps"
PACKAGE_DIR = Path(__file__).resolve().parents[2] / PACKAGE
ZIPAPP_NAME = "steps.pyz"
SOURCEDIR_NAME = "sourcedir.tar.gz"
# Installed by the training container before train.py runs, only when MLflow tracking is on
# (it needs PyPI or a mirror). The skinny client, not the server. Kept equal to uv.lock by a test.
TRAINING_REQUIREMENTS = ("mlflow-skinny==3.17.2", "sagemaker-mlflow==0.5.0", "skops==0.16.0")

_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
_ZIPAPP_MAIN = "from pipeline_steps.__main__ import main\n\nraise SystemExit(main())\n"
_TRAIN_SHIM = (
    '"""SageMaker script-mode entry point: the step lives in pipeline_steps.train."""\n'
    "from pipeline_steps.train import main\n\nraise SystemExit(main())\n"
)


def source_files() -> list[Path]:
    files = sorted(PACKAGE_DIR.glob("*.py"))
    if not files:
        raise FileNotFoundError(f"no Python sources in {PACKAGE_DIR}")
    return files


def code_version() -> str:
    """sha256 over the step package's file names and contents."""
    return combined_sha256({f"{PACKAGE}/{p.name}": file_sha256(p) for p in source_files()})


def _members() -> list[tuple[str, bytes]]:
    return [(f"{PACKAGE}/{p.name}", p.read_bytes()) for p in source_files()]


def build_zipapp(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / ZIPAPP_NAME
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in [("__main__.py", _ZIPAPP_MAIN.encode()), *_members()]:
            info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    _write_if_changed(target, buffer.getvalue())
    return target


def build_sourcedir(directory: Path, *, with_tracking: bool = False) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / SOURCEDIR_NAME
    members = [("train.py", _TRAIN_SHIM.encode()), *_members()]
    if with_tracking:
        members.append(("requirements.txt", ("\n".join(TRAINING_REQUIREMENTS) + "\n").encode()))
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, data in sorted(members):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            archive.addfile(info, io.BytesIO(data))
    _write_if_changed(target, gzip.compress(raw.getvalue(), mtime=0))
    return target


def _write_if_changed(target: Path, data: bytes) -> None:
    # Rewriting identical bytes would still bump mtimes that CDK's asset staging looks at.
    if not target.exists() or target.read_bytes() != data:
        tmp = target.with_suffix(target.suffix + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(target)
