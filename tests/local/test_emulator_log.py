"""The embedded default's emulator.log is plain text: werkzeug colours its request log with
ANSI codes whatever the output, which a log file must not hold."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from mlops.local.emulator import LOG_FILE, Home, start_emulator, stop_emulator


def test_emulator_log_has_no_colour_codes(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    state = start_emulator(home)
    try:
        s3 = boto3.client(
            "s3", endpoint_url=state.endpoint_url, region_name="us-east-1",
            aws_access_key_id="testing", aws_secret_access_key="testing",  # noqa: S106
        )  # fmt: skip
        s3.create_bucket(Bucket="logged")
        with pytest.raises(ClientError):  # a 404: werkzeug colours 4xx lines
            s3.head_object(Bucket="logged", Key="missing")
    finally:
        assert stop_emulator(home)
    log = (home.root / LOG_FILE).read_text()
    assert "Running on" in log  # the start-up lines (coloured by werkzeug too)
    assert '"HEAD /logged/missing HTTP/1.1" 404' in log
    assert "\x1b[" not in log
