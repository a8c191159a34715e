"""The drift check reads captured requests with the serving handlers' parser
(pipeline_steps.payloads) without loading scikit-learn, which the handlers' module imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# A JSON request and a CSV request with a header row: neither takes the bulk path, both take
# the handlers' parser. Then the handlers themselves: the same parser, the same error class.
SCRIPT = """
import json, sys
from datetime import UTC, datetime

from mlops.core.capture import encode_record, parse_line
from mlops.core.variant_check import table_from_records
from pipeline_steps.schema import FEATURE_NAMES

row = [4.6, 1, 6.9, 0, 0, 13.7, 1, 0, 0]
answer = json.dumps({"predictions": [{"score": 0.4, "label": 0}]}).encode()
when = datetime(2026, 11, 26, tzinfo=UTC)
bodies = [
    (json.dumps({"instances": [row]}).encode(), "application/json"),
    ((",".join(FEATURE_NAMES) + "\\n" + ",".join(map(str, row))).encode(), "text/csv"),
    (b"1,2,3", "text/csv"),
]
records = [
    parse_line(encode_record(request=body, request_type=kind, response=answer,
                             response_type="application/json", inference_time=when))
    for body, kind in bodies
]
table = table_from_records(records)
loaded = "sklearn" in sys.modules
from pipeline_steps import inference, payloads
print(json.dumps({
    "rows": table.rows, "malformed": dict(table.malformed_by_kind), "sklearn": loaded,
    "same_parser": inference.InvalidRequest is payloads.InvalidRequest
    and inference.input_fn(b"1,2,3,4,5,6,7,8,9").tolist() == [[1, 2, 3, 4, 5, 6, 7, 8, 9]],
}))
"""


def test_the_drift_check_parses_requests_without_scikit_learn() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == (
        '{"rows": 2, "malformed": {"bad input": 1}, "sklearn": false, "same_parser": true}'
    )
