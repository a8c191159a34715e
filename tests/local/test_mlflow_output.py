"""A tracked local run writes MLflow output only where it was told: never into the working directory.

MLflow's defaults (``sqlite:///mlflow.db`` and ``./mlruns``) are relative to the working
directory, so a step that falls back on them litters wherever the user runs from.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import mlflow
import mlflow.tracking._tracking_service.utils as mlflow_tracking_utils
import pytest
from mlflow import MlflowClient

from mlops.adapters import s3io
from mlops.adapters.envvars import patched_environ
from mlops.adapters.target import AwsTarget
from mlops.core.config import PlatformConfig
from mlops.local.emulator import Home, bootstrap, mlflow_artifact_root
from mlops.local.pipeline import LocalPipelineRunner, RunOptions
from pipeline_steps import preprocess, train
from pipeline_steps.data import synthetic_dataset
from pipeline_steps.hyperparameters import Hyperparameters
from pipeline_steps.schema import FEATURE_NAMES
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
    resources = bootstrap(emulator, config)
    root = mlflow_artifact_root(resources)
    runner = LocalPipelineRunner(
        target=emulator,
        resources=resources,
        config=config,
        mlflow_tracking_uri=home.mlflow_tracking_uri,
        mlflow_artifact_root=root if with_artifact_root else None,
    )
    result = runner.run(RunOptions())
    assert result.registered, result.reason
    assert result.mlflow_model_version  # tracked and registered in MLflow, not skipped

    assert sorted(os.listdir(cwd)) == []
    run = MlflowClient(home.mlflow_tracking_uri).get_run(result.mlflow_run_id or "")
    keys = s3io.list_keys(emulator.client("s3"), resources.artifacts_bucket, "mlflow/")
    if with_artifact_root:
        # The embedded default's artifact store: the emulated artifacts bucket, not the disk.
        assert root == "s3://mlops-dev-artifacts/mlflow"
        assert run.info.artifact_uri.startswith(f"{root}/mlops-dev-training/")
        assert any(k.endswith("/model.skops") for k in keys)
        assert any(k.endswith("/data/manifest.json") for k in keys)
        assert not list(home.mlflow_dir.rglob("model.skops"))
    else:
        # A local database on its own keeps the artifacts next to it.
        assert run.info.artifact_uri.startswith((home.mlflow_dir / "artifacts").as_uri() + "/")
        assert any((home.mlflow_dir / "artifacts").rglob("model.skops"))
        assert keys == []
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


@pytest.mark.parametrize(
    ("algorithm", "params"),
    [
        ("logistic", {"algorithm", "seed", "max_iter", "c"}),
        ("gradient_boosting", {"algorithm", "seed", "max_iter", "learning_rate"}),
    ],
)
def test_a_run_records_its_data_signature_and_only_the_parameters_it_uses(
    tmp_path: Path, cwd: Path, monkeypatch: pytest.MonkeyPatch, algorithm: str, params: set[str]
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    synthetic_dataset(600, seed=1).to_csv(data / "data.csv", index=False)
    manifest = preprocess.run(data, tmp_path / "steps", seed=1, code_version="test")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    steps = tmp_path / "steps"
    card = train.run(
        train_dir=steps / "train",
        validation_dir=steps / "validation",
        manifest_dir=steps / "manifest",
        model_dir=tmp_path / "model",
        params=Hyperparameters(algorithm=algorithm, max_iter=30),  # type: ignore[arg-type]
        dataset_source="s3://mlops-dev-datasets/raw/",
    )
    client = MlflowClient(uri)
    run = client.get_run(card.mlflow_run_id or "")
    assert set(run.data.params) == params
    assert set(card.hyperparameters) == params

    # The training data: its digest is the data version the pipeline records, its source the
    # input the pipeline read.
    assert run.inputs is not None
    (dataset_input,) = run.inputs.dataset_inputs
    sha256 = str(manifest["dataset_sha256"])
    assert dataset_input.dataset.digest == sha256[:36]
    assert json.loads(str(dataset_input.dataset.source)) == {"uri": "s3://mlops-dev-datasets/raw/"}
    tags = {t.key: t.value for t in dataset_input.tags}
    assert tags == {"dataset_sha256": sha256, "mlflow.data.context": "training"}
    assert json.loads(str(dataset_input.dataset.profile))["num_rows"] == 420  # the train split

    # The model carries its signature (the schema's feature names) and an input example.
    with patched_environ({"MLFLOW_TRACKING_URI": uri}):
        info = mlflow.models.get_model_info(card.mlflow_model_uri or "")
    assert info.signature.inputs.input_names() == list(FEATURE_NAMES)
    assert (info.saved_input_example_info or {}).get("type") == "dataframe"
