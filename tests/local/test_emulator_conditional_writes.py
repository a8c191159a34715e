"""S3 conditional writes on the emulator are atomic, as in AWS (mlops.local.moto_server).

moto checks If-None-Match / If-Match and stores the object in two steps. A thread switch
between them (made certain here by slowing the step in between) lets two writers both win;
with the embedded default's fix exactly one does.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto.s3.responses import S3Response

from mlops.adapters.target import AwsTarget
from mlops.local.moto_server import atomic_conditional_writes

WRITERS = 6


def race(target: AwsTarget, key: str, **condition: Any) -> int:
    """How many of WRITERS simultaneous conditional writes to ``key`` succeeded."""
    barrier = threading.Barrier(WRITERS)
    wins: list[int] = []

    def write(i: int) -> None:
        s3 = target.client("s3")
        barrier.wait()
        try:
            s3.put_object(Bucket="race", Key=key, Body=str(i).encode(), **condition)
        except ClientError:
            return
        wins.append(i)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return len(wins)


@pytest.fixture
def slow_store(monkeypatch: pytest.MonkeyPatch) -> None:
    """Widen moto's gap between checking the condition and storing the object."""
    checksum = S3Response._get_checksum

    def slow(self: Any, *args: Any, **kwargs: Any) -> Any:
        time.sleep(0.05)
        return checksum(self, *args, **kwargs)

    monkeypatch.setattr(S3Response, "_get_checksum", slow)


def test_one_writer_wins_a_create_race(emulator: AwsTarget, slow_store: None) -> None:
    emulator.client("s3").create_bucket(Bucket="race")
    assert race(emulator, "new", IfNoneMatch="*") == 1


def test_one_writer_wins_an_update_race(emulator: AwsTarget, slow_store: None) -> None:
    s3 = emulator.client("s3")
    s3.create_bucket(Bucket="race")
    etag = s3.put_object(Bucket="race", Key="ledger", Body=b"v1")["ETag"]
    assert race(emulator, "ledger", IfMatch=etag) == 1


def test_without_the_fix_moto_lets_several_win(
    emulator: AwsTarget, slow_store: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    atomic_conditional_writes()  # idempotent; then take the wrapper off for this test
    monkeypatch.setattr(S3Response, "put_object", getattr(S3Response.put_object, "__wrapped__"))  # noqa: B009
    emulator.client("s3").create_bucket(Bucket="race")
    assert race(emulator, "new", IfNoneMatch="*") > 1
