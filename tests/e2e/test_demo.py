"""`make demo`'s lifecycle, stage by stage, and its promises: one folder, a clean second run,
no process left behind - also when it is interrupted."""

from __future__ import annotations

import html
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from mlops.local.demo import Demo, DemoOptions, Narrator
from mlops.local.emulator import EmulatorState, Home


class Recorder(Narrator):
    def __init__(self) -> None:
        self.stages: list[str] = []
        self.lines: list[str] = []

    def stage(self, number: int, total: int, title: str) -> None:
        self.stages.append(title)

    def say(self, text: str) -> None:
        self.lines.append(text)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Recorder, object, int]:
    folder = tmp_path_factory.mktemp("demo") / "demo-output"
    recorder = Recorder()
    pids: list[int] = []

    class Watch(Recorder):
        def say(self, text: str) -> None:
            recorder.say(text)
            state = EmulatorState.read(Home(folder.resolve()))
            if state is not None and state.pid not in pids:
                pids.append(state.pid)

        def stage(self, number: int, total: int, title: str) -> None:
            recorder.stage(number, total, title)

    summary = Demo(DemoOptions(folder=folder), Watch()).run()  # the defaults `make demo` uses
    return folder, recorder, summary, pids[0]


def test_every_stage_ends_as_the_lifecycle_needs(
    demo_run: tuple[Path, Recorder, object, int],
) -> None:
    folder, recorder, summary, _ = demo_run
    assert len(recorder.stages) == Demo.TOTAL
    s = summary.__dict__
    # Two models trained, registered and approved: v1 the champion, v2 the challenger.
    assert s["versions"]["v1"].endswith("/1")
    assert s["versions"]["v2"].endswith("/2")
    assert s["auc"]["v2"] > s["auc"]["v1"] > 0.6
    # The gated rollout moved the challenger 0.1 -> 0.25 -> 0.5.
    assert [w["challenger"] for w in s["rollout"]] == [0.25, 0.5]
    # Real traffic reached both variants through the runtime protocol.
    assert set(s["traffic"]["normal"]) == {"champion", "challenger"}
    # The baseline check found no drift; after the shift, the challenger drifted.
    assert {v["status"] for v in s["checks"]["baseline"].values()} == {"no-drift"}
    assert s["checks"]["drift"]["challenger"]["status"] == "drift"
    assert s["checks"]["drift"]["challenger"]["drift_share"] >= 0.5
    assert s["checks"]["drift"]["champion"]["status"] != "drift"
    # Its alarm fired and the traffic function rolled back: the champion is back at 1.
    assert s["alarm"] == "mlops-dev-visits-challenger-drift"
    assert s["weights_before_rollback"] == {"champion": 0.5, "challenger": 0.5}
    assert s["weights_after_rollback"] == {"champion": 1.0, "challenger": 0.0}
    assert s["rollback"]["decision"] == "all traffic to the champion"
    assert 0 < s["rollback"]["controller_seconds"] < 5
    # What the summary points at exists, under the one folder.
    report = Path(s["report_html"])
    assert report.is_relative_to(folder.resolve())
    assert "lncoins" in report.read_text()
    audit = json.loads(Path(s["audit_record"]).read_text())
    assert audit["action"] == "rollback"
    assert audit["requested_by"] == "cloudwatch-alarm:mlops-dev-visits-challenger-drift"
    assert s["mlflow_runs"] == 2
    # The endpoint's timeline: one page under the folder, offline, with the rollback's reason.
    timeline = Path(s["timeline_html"])
    assert timeline.is_relative_to(folder.resolve())
    page = timeline.read_text()
    assert html.escape(audit["reason"]) in page
    assert "no records yet" not in page.lower()
    assert "Alarm state changes (6)" in page  # each alarm's current state: no history here
    assert "alarm mlops-dev-visits-challenger-drift is ALARM" in page
    assert not re.search(r"<script[^>]*\bsrc\s*=", page, re.IGNORECASE)
    # Every call the functions made was judged against their roles' grants (a refusal fails).
    assert s["iam_checked_calls"]["traffic"] > 0
    assert s["iam_checked_calls"]["drift"] > 0
    assert (folder / "mlflow" / "mlflow.db").is_file()
    # MLflow knows what serves: v1 is the champion; v2, rolled back by the traffic function's
    # handler, is no longer the challenger.
    client = MlflowClient(Home(folder.resolve()).mlflow_tracking_uri)
    model = client.get_registered_model("mlops-dev-visits")
    assert {k: str(v) for k, v in model.aliases.items()} == {"champion": "1"}
    assert (
        "challenger-drift" in client.get_model_version("mlops-dev-visits", "2").tags["rolled_back"]
    )
    assert json.loads((folder / "summary.json").read_text())["alarm"] == s["alarm"]
    assert (folder / "logs" / "mlops-dev-drift.log").is_file()


def test_no_process_is_left_and_a_second_run_starts_clean(
    demo_run: tuple[Path, Recorder, object, int],
) -> None:
    folder, _, _, emulator_pid = demo_run
    assert not alive(emulator_pid)
    assert not (folder / "emulator.json").exists()
    (folder / "left-over.txt").write_text("from an earlier run")
    from mlops.local.demo import MARKER, reset  # noqa: PLC0415

    reset(folder)
    assert [p.name for p in folder.iterdir()] == [MARKER]


def test_a_folder_the_demo_did_not_make_is_never_deleted(tmp_path: Path) -> None:
    from mlops.local.demo import DemoFailed, reset  # noqa: PLC0415

    precious = tmp_path / "repo"
    precious.mkdir()
    (precious / "keep.txt").write_text("not the demo's")
    with pytest.raises(DemoFailed, match="was not made by the demo"):
        reset(precious)
    assert (precious / "keep.txt").read_text() == "not the demo's"
    empty = tmp_path / "empty"
    empty.mkdir()
    reset(empty)  # an empty folder is fine


def test_ctrl_c_stops_everything_it_started(tmp_path: Path) -> None:
    folder = tmp_path / "demo-output"
    process = subprocess.Popen(
        [sys.executable, "-m", "mlops.cli", "demo", "--folder", str(folder)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    state = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and state is None:
        state = EmulatorState.read(Home(folder.resolve()))
        time.sleep(0.2)
    assert state is not None, "the demo never started its emulator"
    assert alive(state.pid)
    time.sleep(2)  # inside the first training run
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 130, output
    assert "interrupted" in output
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and alive(state.pid):
        time.sleep(0.1)
    assert not alive(state.pid), "the emulator outlived the interrupted demo"
