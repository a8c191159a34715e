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

from mlops.adapters import code_bundle


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
        assert {"train.py", "pipeline_steps/train.py"} <= set(members)
        # Without tracking the container installs nothing: no PyPI access needed.
        assert "requirements.txt" not in members
        assert all(m.mtime == 0 and m.uid == 0 for m in members.values())
        shim = archive.extractfile("train.py")
        assert shim is not None
        assert b"from pipeline_steps.train import main" in shim.read()


def test_requirements_only_with_tracking(tmp_path: Path) -> None:
    with tarfile.open(code_bundle.build_sourcedir(tmp_path, with_tracking=True)) as archive:
        requirements = archive.extractfile("requirements.txt")
        assert requirements is not None
        assert requirements.read().decode().split() == list(code_bundle.TRAINING_REQUIREMENTS)


def test_the_container_contract(tmp_path: Path) -> None:
    """Run the archives the way SageMaker's containers do, outside this repository (-I):
    the zipapp's preprocess, the script-mode train.py with SM_* variables and toolkit-style
    arguments, then the zipapp's evaluate on the packed model.tar.gz."""
    from mlops.local.pipeline import pack_model  # noqa: PLC0415
    from pipeline_steps.data import bundled_dataset_path  # noqa: PLC0415

    steps = code_bundle.build_zipapp(tmp_path / "code")
    source = tmp_path / "opt-ml-code"
    with tarfile.open(code_bundle.build_sourcedir(tmp_path / "code")) as archive:
        archive.extractall(source, filter="data")
    data, out = tmp_path / "input", tmp_path / "processing"
    data.mkdir()
    shutil.copy(bundled_dataset_path(), data / "randhie.csv")

    def run(command: list[str], **env: str) -> subprocess.CompletedProcess[str]:
        full_env = {"PATH": "/usr/bin:/bin", "CODE_VERSION": "contract", **env}
        result = subprocess.run(
            command, capture_output=True, text=True, check=False, env=full_env, cwd=tmp_path
        )
        assert result.returncode == 0, result.stderr[-2000:]
        return result

    run(
        [
            sys.executable,
            "-I",
            str(steps),
            "preprocess",
            "--input",
            str(data),
            "--output",
            str(out),
            "--seed",
            "42",
        ]
    )
    model_dir = tmp_path / "opt-ml-model"
    run(
        [sys.executable, str(source / "train.py"), "--algorithm", "logistic", "--seed", "42"],
        SM_CHANNEL_TRAIN=str(out / "train"),
        SM_CHANNEL_VALIDATION=str(out / "validation"),
        SM_CHANNEL_MANIFEST=str(out / "manifest"),
        SM_MODEL_DIR=str(model_dir),
    )
    model_input = tmp_path / "model-input"
    model_input.mkdir()
    pack_model(model_dir, model_input / "model.tar.gz")
    evaluated = run(
        [sys.executable, "-I", str(steps), "evaluate", "--model", str(model_input), "--test", str(out / "test"),
         "--manifest", str(out / "manifest"), "--output", str(tmp_path / "evaluation")],
    )  # fmt: skip
    assert '"auc": 0.66' in evaluated.stdout
    report = (tmp_path / "evaluation" / "evaluation.json").read_text()
    assert '"code_version": "contract"' in report


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
