"""A tracked local run writes MLflow output only where it was told: never into the working directory.

MLflow's defaults (``sqlite:///mlflow.db`` and ``./mlruns``) are relative to the working
directory, so a step that falls back on them litters wherever the user runs from.
"""

from __future__ import annotations

import os
from pathlib import Path

import mlflow
import mlflow.tracking._tracking_service.utils as mlflow_tracking_utils
import pytest
from mlflow import MlflowClient

from mlops.adapters.target import AwsTarget
from mlops.core.config import PlatformConfig
from mlops.local.emulator import Home, bootstrap
from mlops.local.pipeline import LocalPipelineRunner, RunOptions
from pipeline_steps import preprocess, train
from pipeline_steps.data import synthetic_dataset
from pipeline_steps.hyperparameters import Hyperparameters
from pipeline_steps.tracking import tracking


@pytest.fixture
def cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cwd"
    folder.mkdir()
    monkeypatch.chdir(folder)
    # As in a fresh process: no tracking URI anywhere, so MLflow's default is the working
    # directory. (Its process-wide URI is private state; monkeypatch puts it back after.)
    # MLflow writes the variable itself (set_tracking_uri): setting it through monkeypatch
    # first records its original state, so teardown restores that whatever MLflow wrote.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "")
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.setattr(mlflow_tracking_utils, "_tracking_uri", None)
    return folder


@pytest.mark.parametrize("with_artifact_root", [True, False], ids=["home", "tracking-uri-only"])
def test_a_tracked_run_writes_nothing_in_the_working_directory(
    emulator: AwsTarget, tmp_path: Path, cwd: Path, with_artifact_root: bool
) -> None:
    # "home" is the embedded default; "tracking-uri-only" is run-local against a target that
    # is not the emulator, with MLFLOW_TRACKING_URI pointing at a local database.
    config = PlatformConfig()
    home = Home(tmp_path / "home")
    home.mlflow_dir.mkdir(parents=True)
    runner = LocalPipelineRunner(
        target=emulator,
        resources=bootstrap(emulator, config),
        config=config,
        mlflow_tracking_uri=home.mlflow_tracking_uri,
        mlflow_artifact_root=home.mlflow_artifact_root if with_artifact_root else None,
    )
    result = runner.run(RunOptions())
    assert result.registered, result.reason
    assert result.mlflow_model_version  # tracked and registered in MLflow, not skipped

    assert sorted(os.listdir(cwd)) == []
    # The artifacts are in the home's artifact store, next to the database.
    run = MlflowClient(home.mlflow_tracking_uri).get_run(result.mlflow_run_id or "")
    assert run.info.artifact_uri.startswith(home.mlflow_artifact_root + "/")
    assert any((home.mlflow_dir / "artifacts").rglob("model.skops"))
    # MLflow's process-wide URI is as the run found it: unset, not pinned to anything.
    assert mlflow_tracking_utils._tracking_uri is None
    assert "MLFLOW_TRACKING_URI" not in os.environ
    assert mlflow.get_tracking_uri() != home.mlflow_tracking_uri


def test_the_train_step_on_its_own_keeps_artifacts_beside_its_database(
    tmp_path: Path, cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As `python -m pipeline_steps train` with a fresh sqlite store: the step itself creates
    # the experiment (the local runner creates it first, so this path is the step's own).
    data = tmp_path / "data"
    data.mkdir()
    synthetic_dataset(600, seed=1).to_csv(data / "data.csv", index=False)
    steps = tmp_path / "steps"
    preprocess.run(data, steps, seed=1, code_version="test")
    store = tmp_path / "store"
    store.mkdir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store / 'mlflow.db'}")
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "standalone")
    card = train.run(
        train_dir=steps / "train",
        validation_dir=steps / "validation",
        manifest_dir=steps / "manifest",
        model_dir=tmp_path / "model",
        params=Hyperparameters(max_iter=50),
    )
    assert card.mlflow_run_id

    assert sorted(os.listdir(cwd)) == []
    run = MlflowClient(f"sqlite:///{store / 'mlflow.db'}").get_run(card.mlflow_run_id)
    assert run.info.artifact_uri.startswith((store / "artifacts" / "standalone").as_uri() + "/")


def test_tracking_puts_back_the_uri_the_caller_had_set(
    tmp_path: Path, cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A caller (a notebook, say) chose a store; a step then runs with another in its env.
    chosen = f"sqlite:///{tmp_path / 'chosen.db'}"
    step = f"sqlite:///{tmp_path / 'step.db'}"
    mlflow.set_tracking_uri(chosen)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", step)
    with tracking() as tracked:
        assert tracked.get_tracking_uri() == step
    assert mlflow.get_tracking_uri() == chosen
    assert os.environ["MLFLOW_TRACKING_URI"] == step
