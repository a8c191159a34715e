"""Moving folders between S3 and disk (on the emulator)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops.adapters import s3io
from mlops.adapters.target import AwsTarget


@pytest.fixture
def bucket(emulator: AwsTarget) -> str:
    emulator.client("s3").create_bucket(Bucket="bkt")
    return "bkt"


def put(emulator: AwsTarget, bucket: str, *keys: str) -> None:
    s3 = emulator.client("s3")
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())


def names(files: list[Path], root: Path) -> list[str]:
    return sorted(f.relative_to(root.resolve()).as_posix() for f in files)


def test_a_folder_is_not_a_name_prefix(emulator: AwsTarget, bucket: str, tmp_path: Path) -> None:
    put(emulator, bucket, "raw/a.csv", "raw/sub/b.csv", "raw-old/c.csv", "rawdata.csv", "raw/")
    s3 = emulator.client("s3")
    for uri in ("s3://bkt/raw", "s3://bkt/raw/"):
        into = tmp_path / uri.replace("/", "_")
        assert names(s3io.download_prefix(s3, uri, into), into) == ["a.csv", "sub/b.csv"]


def test_one_object(emulator: AwsTarget, bucket: str, tmp_path: Path) -> None:
    put(emulator, bucket, "m/model.tar.gz", "m/model.tar.gz.bak")
    files = s3io.download_prefix(emulator.client("s3"), "s3://bkt/m/model.tar.gz", tmp_path)
    assert names(files, tmp_path) == ["model.tar.gz"]


def test_nothing_there(emulator: AwsTarget, bucket: str, tmp_path: Path) -> None:
    put(emulator, bucket, "raw/")  # a console folder marker only
    with pytest.raises(FileNotFoundError, match="nothing in S3 under s3://bkt/raw/"):
        s3io.download_prefix(emulator.client("s3"), "s3://bkt/raw/", tmp_path)


def test_keys_cannot_escape_the_target(emulator: AwsTarget, bucket: str, tmp_path: Path) -> None:
    put(emulator, bucket, "raw/../../escape.csv")
    with pytest.raises(ValueError, match="outside"):
        s3io.download_prefix(emulator.client("s3"), "s3://bkt/raw/", tmp_path / "in")
    assert not (tmp_path / "escape.csv").exists()


def test_not_an_s3_uri() -> None:
    with pytest.raises(ValueError, match="not an S3 URI: 'raw/'"):
        s3io.split_uri("raw/")
