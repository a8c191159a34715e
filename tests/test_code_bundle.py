"""The step-code archives: deterministic, runnable, and versioned by content."""

from __future__ import annotations

import hashlib
import importlib.metadata
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from mlops import code_bundle


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_archives_are_byte_identical_across_builds(tmp_path: Path) -> None:
    first = (code_bundle.build_zipapp(tmp_path / "a"), code_bundle.build_sourcedir(tmp_path / "a"))
    second = (code_bundle.build_zipapp(tmp_path / "b"), code_bundle.build_sourcedir(tmp_path / "b"))
    assert [digest(p) for p in first] == [digest(p) for p in second]


def test_zipapp_holds_the_package_and_runs_a_step(tmp_path: Path) -> None:
    archive = code_bundle.build_zipapp(tmp_path)
    names = zipfile.ZipFile(archive).namelist()
    assert names[0] == "__main__.py"
    assert {f"pipeline_steps/{p.name}" for p in code_bundle.source_files()} <= set(names)
    usage = subprocess.run(
        [sys.executable, str(archive)], capture_output=True, text=True, check=False
    )
    assert usage.returncode == 2
    assert "usage: pipeline_steps {preprocess,train,evaluate}" in usage.stderr
    # A real step from the archive, as the processing job runs it (-I: nothing from the repo).
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    step = subprocess.run(
        [
            sys.executable,
            "-I",
            str(archive),
            "preprocess",
            "--input",
            str(empty),
            "--output",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert step.returncode == 1
    assert "invalid input data: empty.csv: the file is empty" in step.stderr


def test_sourcedir_has_the_training_entry_point(tmp_path: Path) -> None:
    with tarfile.open(code_bundle.build_sourcedir(tmp_path)) as archive:
        members = {m.name: m for m in archive.getmembers()}
        assert {"train.py", "requirements.txt", "pipeline_steps/train.py"} <= set(members)
        assert all(m.mtime == 0 and m.uid == 0 for m in members.values())
        shim = archive.extractfile("train.py")
        assert shim is not None
        assert b"from pipeline_steps.train import main" in shim.read()


def test_training_requirements_match_the_lock() -> None:
    # The training container installs these; keep them equal to what was tested here.
    for requirement in code_bundle.TRAINING_REQUIREMENTS:
        name, version = requirement.split("==")
        assert importlib.metadata.version(name) == version, requirement


def test_code_version_follows_the_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / "pipeline_steps"
    shutil.copytree(code_bundle.PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(code_bundle, "PACKAGE_DIR", copy)
    before = code_bundle.code_version()
    assert before == code_bundle.code_version()
    (copy / "train.py").write_text((copy / "train.py").read_text() + "\n# changed\n")
    assert code_bundle.code_version() != before
