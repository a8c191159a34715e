"""Datasets versioned as DVC versions them: `mlops data upload` stores them in the datasets
bucket in DVC's remote layout and writes the `.dvc` pointer; every registered model's lineage
carries the DVC md5 of its training data; `mlops registry show` prints the `dvc` commands
that fetch it, and the real `dvc` runs them.

dvc-s3 does not resolve with the locked boto3/botocore (its aiobotocore pins an older
botocore), so `dvc` cannot read the emulated bucket itself: the round trip copies the bucket's
DVC remote prefix, as it is, into a local folder and points the same commands at it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from typer.testing import CliRunner

from mlops.adapters import dvc_remote, s3io
from mlops.adapters.registry import PackageLineage
from mlops.adapters.target import AwsTarget
from mlops.cli import app
from mlops.core import dvc_layout
from mlops.core.config import PlatformConfig
from mlops.local.emulator import bootstrap
from mlops.local.pipeline import LocalPipelineRunner, RunOptions
from pipeline_steps.data import synthetic_dataset

DATASETS = "mlops-dev-datasets"
DVC = Path(sys.executable).with_name("dvc")


def cli(emulator: AwsTarget, tmp_path: Path, *args: str) -> Any:
    env = {
        "MLOPS_ENDPOINT_URL": emulator.endpoint_url or "",
        "MLOPS_HOME": str(tmp_path / "home"),
    }
    return CliRunner().invoke(app, list(args), env=env)


def csv(path: Path, rows: int, seed: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    synthetic_dataset(rows, seed=seed).to_csv(path, index=False)
    return path


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


def runner(emulator: AwsTarget) -> LocalPipelineRunner:
    """The local run without MLflow (its tracking is not what is tested here, and costs)."""
    config = PlatformConfig()
    return LocalPipelineRunner(
        target=emulator,
        resources=bootstrap(emulator, config),
        config=config,
        mlflow_tracking_uri=None,
    )


def local_copy_of_remote(emulator: AwsTarget, into: Path) -> Path:
    """The emulated bucket's DVC remote, key for key, in a local folder."""
    s3io.download_prefix(
        emulator.client("s3"), f"s3://{DATASETS}/{dvc_layout.REMOTE_PREFIX}/", into
    )
    return into


def run_dvc_script(lines: list[str], remote: Path, cwd: Path) -> None:
    """The printed commands, as a user pastes them, with the local copy as the remote (the
    emulator's endpoint and dummy key are for dvc-s3, which is not installed)."""
    script = []
    for line in lines:
        if " endpointurl " in line or "access_key" in line:
            continue
        script.append(line.replace(f"s3://{DATASETS}/{dvc_layout.REMOTE_PREFIX}", str(remote)))
    # Offline: no usage analytics, no update check (both would reach the network), and no
    # config or cache of the developer's own (global, system and site folders of its own).
    config = cwd.parent / "dvc-config"
    config.mkdir()
    (config / "config").write_text("[core]\n    check_update = false\n    analytics = false\n")
    env = {**os.environ, "PATH": f"{DVC.parent}{os.pathsep}{os.environ['PATH']}"}
    env |= {"DVC_NO_ANALYTICS": "1", "DVC_STUDIO_OFFLINE": "1"}
    env |= {"DVC_GLOBAL_CONFIG_DIR": str(config), "DVC_SYSTEM_CONFIG_DIR": str(config)}
    env |= {"DVC_SITE_CACHE_DIR": str(cwd.parent / "dvc-site-cache")}
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", "\n".join(script)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n--- script:\n" + "\n".join(script)


def test_upload_stores_by_md5_and_writes_the_pointer_dvc_writes(
    emulator: AwsTarget, tmp_path: Path
) -> None:
    data = csv(tmp_path / "data" / "visits.csv", 300, seed=1)
    digest, size = md5(data), data.stat().st_size
    first = cli(emulator, tmp_path, "data", "upload", str(data), "--prefix", "mine/")
    assert first.exit_code == 0, first.output
    # The same YAML `dvc add visits.csv` writes (DVC 3: plain md5, `hash: md5`).
    pointer = data.with_name("visits.csv.dvc")
    assert pointer.read_text() == (
        f"outs:\n- md5: {digest}\n  size: {size}\n  hash: md5\n  path: visits.csv\n"
    )
    s3 = emulator.client("s3")
    remote_key = f"dvc/files/md5/{digest[:2]}/{digest[2:]}"
    assert s3io.read(s3, DATASETS, remote_key) == data.read_bytes()
    assert s3.head_object(Bucket=DATASETS, Key=remote_key)["ServerSideEncryption"] == "aws:kms"
    assert s3io.read(s3, DATASETS, "mine/visits.csv") == data.read_bytes()
    assert f"md5 {digest} stored" in first.output
    assert f"the pipeline's input s3://{DATASETS}/mine/ is DVC md5 {digest}" in first.output

    # Again, same content: nothing new in the remote, the pointer left as it is.
    versions = s3.list_object_versions(Bucket=DATASETS, Prefix=remote_key)["Versions"]
    again = cli(emulator, tmp_path, "data", "upload", str(data), "--prefix", "mine/")
    assert again.exit_code == 0, again.output
    assert f"md5 {digest} already there" in again.output
    assert "left as it is" in again.output
    assert s3.list_object_versions(Bucket=DATASETS, Prefix=remote_key)["Versions"] == versions


def test_a_pointer_to_other_content_is_not_overwritten(emulator: AwsTarget, tmp_path: Path) -> None:
    data = csv(tmp_path / "visits.csv", 300, seed=1)
    assert cli(emulator, tmp_path, "data", "upload", str(data)).exit_code == 0
    pointer = tmp_path / "visits.csv.dvc"
    recorded = pointer.read_text()
    csv(data, 300, seed=2)  # the file changes; its pointer still names the old version
    refused = cli(emulator, tmp_path, "data", "upload", str(data))
    assert refused.exit_code == 1
    message = " ".join(refused.output.split())
    assert f"not uploaded: {pointer} records md5 {dvc_layout.pointer_md5(recorded)}" in message
    assert f"visits.csv now has md5 {md5(data)}" in message
    assert "Move visits.csv.dvc aside" in message
    assert pointer.read_text() == recorded
    s3 = emulator.client("s3")
    assert not s3io.exists(s3, DATASETS, dvc_layout.object_key(md5(data)))  # nothing uploaded
    # Moved aside as told: the new version uploads and gets its own pointer.
    pointer.rename(tmp_path / "visits.csv.dvc.old")
    assert cli(emulator, tmp_path, "data", "upload", str(data)).exit_code == 0
    assert dvc_layout.pointer_md5(pointer.read_text()) == md5(data)


def test_registry_show_fetches_the_models_data_with_dvc(
    emulator: AwsTarget, tmp_path: Path
) -> None:
    """Two files uploaded to one folder, a model trained on the folder: its lineage names the
    folder as DVC does (md5 of the listing + .dir), and the printed commands pull it back."""
    first = csv(tmp_path / "data" / "part-a.csv", 1500, seed=3)
    second = csv(tmp_path / "data" / "part-b.csv", 1500, seed=4)
    for path in (first, second):
        uploaded = cli(emulator, tmp_path, "data", "upload", str(path), "--prefix", "team/")
        assert uploaded.exit_code == 0, uploaded.output
    trained = runner(emulator).run(RunOptions(input_uri=f"s3://{DATASETS}/team/", max_iter=30))
    assert trained.registered, trained.reason
    arn = trained.model_package_arn or ""
    sagemaker = emulator.client("sagemaker")
    lineage = PackageLineage.from_description(
        sagemaker.describe_model_package(ModelPackageName=arn)
    )
    listing = json.dumps(
        [{"md5": md5(first), "relpath": "part-a.csv"}, {"md5": md5(second), "relpath": "part-b.csv"}],
        sort_keys=True,
    )  # fmt: skip
    folder_md5 = hashlib.md5(listing.encode(), usedforsecurity=False).hexdigest() + ".dir"
    assert lineage.dataset_dvc_md5 == folder_md5
    assert lineage.dataset_sha256  # beside the sha256 recorded before

    shown = cli(emulator, tmp_path, "registry", "show", arn)
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    script = lines[lines.index("dvc init --no-scm") - 1 :]
    assert f"dvc remote add -d mlops-datasets s3://{DATASETS}/dvc" in script
    assert f"dvc remote modify mlops-datasets endpointurl {emulator.endpoint_url}" in script
    assert f"- md5: {folder_md5}" in script
    assert script[-1] == "dvc pull training-data.dvc"

    remote = local_copy_of_remote(emulator, tmp_path / "remote")
    work = tmp_path / "fetched"
    work.mkdir()
    # The upload's own pointer beside the printed one: `dvc pull` on it fetches that file.
    shutil.copy(first.with_name("part-a.csv.dvc"), work)
    run_dvc_script([*script, "dvc pull part-a.csv.dvc"], remote, work)
    assert (work / "training-data" / "part-a.csv").read_bytes() == first.read_bytes()
    assert (work / "training-data" / "part-b.csv").read_bytes() == second.read_bytes()
    assert (work / "part-a.csv").read_bytes() == first.read_bytes()


def test_registry_show_says_when_the_data_is_not_in_the_remote(
    emulator: AwsTarget, tmp_path: Path
) -> None:
    trained = runner(emulator).run(RunOptions(max_iter=30))  # on the bundled data, seeded
    assert trained.registered, trained.reason
    shown = cli(emulator, tmp_path, "registry", "show", "1")
    lineage_md5 = re.search(r"dataset_dvc_md5: (\S+)", shown.output)
    assert lineage_md5, shown.output
    assert "dvc pull training-data.csv.dvc" in shown.output  # the seeded data is in the remote
    document = json.loads(cli(emulator, tmp_path, "registry", "show", "1", "--json").stdout)
    assert document["dataset_dvc_md5"] == lineage_md5[1]
    assert document["dvc_fetch_commands"][-1] == "dvc pull training-data.csv.dvc"
    s3 = emulator.client("s3")
    s3.delete_object(Bucket=DATASETS, Key=dvc_layout.object_key(lineage_md5[1]))
    gone = cli(emulator, tmp_path, "registry", "show", "1")
    assert f"md5 {lineage_md5[1]} is not in the DVC remote s3://{DATASETS}/dvc" in gone.output
    assert "dvc pull" not in gone.output
    document = json.loads(cli(emulator, tmp_path, "registry", "show", "1", "--json").stdout)
    assert document["dvc_fetch_commands"] == []


def test_a_failed_upload_leaves_no_pointer_and_no_wrong_object(
    emulator: AwsTarget, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = csv(tmp_path / "visits.csv", 300, seed=1)
    real_upload = s3io.upload_file

    def upload_then_fail_on_the_named_copy(s3: Any, path: Path, uri: str, *a: Any, **k: Any) -> str:
        if uri.endswith("raw/visits.csv"):
            raise ConnectionError("network gone")
        return real_upload(s3, path, uri, *a, **k)

    monkeypatch.setattr(s3io, "upload_file", upload_then_fail_on_the_named_copy)
    failed = cli(emulator, tmp_path, "data", "upload", str(data))
    assert failed.exit_code != 0
    assert isinstance(failed.exception, ConnectionError)
    assert not (tmp_path / "visits.csv.dvc").exists()  # no pointer to data not all uploaded
    s3 = emulator.client("s3")
    # The object stored by md5 before the failure is whole: the bytes its md5 names.
    assert s3io.read(s3, DATASETS, dvc_layout.object_key(md5(data))) == data.read_bytes()
    assert not s3io.exists(s3, DATASETS, "raw/visits.csv")
    monkeypatch.undo()
    retried = cli(emulator, tmp_path, "data", "upload", str(data))
    assert retried.exit_code == 0, retried.output
    assert "already there" in retried.output


def test_a_file_changed_after_hashing_is_not_stored(emulator: AwsTarget, tmp_path: Path) -> None:
    data = csv(tmp_path / "visits.csv", 300, seed=1)
    s3 = emulator.client("s3")
    s3.create_bucket(Bucket="scratch")
    with pytest.raises(dvc_remote.DatasetChanged, match="changed while it was uploaded"):
        dvc_remote.store_file(s3, data, "scratch", "raw/visits.csv", expected_md5="0" * 32)
    assert s3io.list_keys(s3, "scratch", "") == []


def test_a_run_that_cannot_write_the_remote_still_trains(
    emulator: AwsTarget, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """No PutObject on dvc/ (a narrower role in an account) costs the fetch commands, not the
    run: the input is returned and the reason logged."""

    def refused(*args: object, **kwargs: object) -> str:
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "PutObject")

    monkeypatch.setattr(dvc_remote, "store_folder_listing", refused)
    with caplog.at_level(logging.WARNING):
        uri = runner(emulator)._ensure_input(RunOptions())
    assert uri == f"s3://{DATASETS}/raw/"
    assert "not stored in the DVC remote" in caplog.text
    assert "AccessDenied" in caplog.text
