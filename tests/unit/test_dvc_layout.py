"""DVC's names for data, as dvc 3.67 itself computes and writes them (the expected values were
printed by `dvc add` on these files)."""

from __future__ import annotations

import pytest

from mlops.core import dvc_layout
from pipeline_steps.hashing import dvc_digest


@pytest.mark.parametrize(
    ("md5s", "expected"),
    [
        ({"a.csv": "0" * 32}, "0" * 32),  # a lone file: its own md5, fetched by a file pointer
        # `dvc add folder` of one.csv ("x\n") and two.csv ("y\n"): the listing's md5 + .dir
        (
            {"two.csv": "009520053b00386d1173f3988c55d192", "one.csv": "401b30e3b8b5d629635a5c613cdb7919"},
            "b5b7025e03ce96daa024db4f0527b00f.dir",
        ),
    ],
)  # fmt: skip
def test_dvc_digest_is_dvcs(md5s: dict[str, str], expected: str) -> None:
    assert dvc_digest(md5s) == expected


def test_remote_layout_and_pointer() -> None:
    digest = "a08e5cdb5b29dfa49e39a5c15aff06f6"
    assert dvc_layout.object_key(digest) == f"dvc/files/md5/a0/{digest[2:]}"
    assert dvc_layout.object_key(digest + ".dir") == f"dvc/files/md5/a0/{digest[2:]}.dir"
    text = dvc_layout.pointer_text(digest, "d.csv", 9)
    assert text == f"outs:\n- md5: {digest}\n  size: 9\n  hash: md5\n  path: d.csv\n"
    assert dvc_layout.pointer_md5(text) == digest
    assert dvc_layout.pointer_md5("outs:\n- md5: a\n  path: x\n- md5: b\n  path: y\n") is None
    for bad in ("", "A08E5CDB5B29DFA49E39A5C15AFF06F6", digest[:31], "../" + digest[3:]):
        with pytest.raises(ValueError, match="not a DVC md5"):
            dvc_layout.object_key(bad)


def test_fetch_commands_aim_at_the_emulator_only_when_there_is_one() -> None:
    digest = "b5b7025e03ce96daa024db4f0527b00f.dir"
    aws = dvc_layout.fetch_commands(digest=digest, bucket="team-datasets")
    assert "dvc remote add -d mlops-datasets s3://team-datasets/dvc" in aws
    assert not [line for line in aws if "endpointurl" in line or "access_key" in line]
    assert aws[-1] == "dvc pull training-data.dvc"  # a folder
    assert "  path: training-data" in aws
    local = dvc_layout.fetch_commands(
        digest=digest[:32], bucket="b", endpoint_url="http://127.0.0.1:5000", access_key="k"
    )
    assert "dvc remote modify mlops-datasets endpointurl http://127.0.0.1:5000" in local
    assert "dvc remote modify --local mlops-datasets secret_access_key k" in local
    assert local[-1] == "dvc pull training-data.csv.dvc"  # one file
