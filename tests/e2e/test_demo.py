"""`make demo`'s lifecycle, stage by stage, and its promises: one folder that holds everything
the summary names, a clean second run, no process left behind - also when it is interrupted -
unless --keep-running hands its state to the CLI.

The demo runs once here (about two minutes), with keep_running: the CLI then works on its
state, and `mlops local down` stops it. That nothing is left without the flag, or when a
kept run fails, is checked on a run whose lifecycle stages are skipped (seconds)."""

from __future__ import annotations

import contextlib
import html
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient

from mlops.local.demo import Demo, DemoFailed, DemoOptions, Narrator
from mlops.local.emulator import EmulatorState, Home, stop_emulator


class Recorder(Narrator):
    def __init__(self) -> None:
        self.stages: list[str] = []
        self.lines: list[str] = []

    def stage(self, number: int, total: int, title: str) -> None:
        self.stages.append(title)

    def say(self, text: str) -> None:
        self.lines.append(text)


def alive(pid: int) -> bool:
    # An emulator this process started and another one stopped (`mlops local down`) stays a
    # zombie until reaped: reap it (a demo run from the CLI exits, and init reaps it).
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


class Watch(Recorder):
    """Also notes the pid of every emulator the demo's folder names while it runs."""

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.home = Home(folder.resolve())
        self.pids: list[int] = []

    def say(self, text: str) -> None:
        super().say(text)
        state = EmulatorState.read(self.home)
        if state is not None and state.pid not in self.pids:
            self.pids.append(state.pid)


@pytest.fixture(scope="module")
def demo_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Path, Recorder, object, int]]:
    folder = tmp_path_factory.mktemp("demo") / "demo-output"
    watch = Watch(folder)
    # The defaults `make demo` uses, and --keep-running (test_keep_running_...).
    summary = Demo(DemoOptions(folder=folder, keep_running=True), watch).run()
    yield folder, watch, summary, watch.pids[0]
    stop_emulator(Home(folder.resolve()))  # if a test failed before `mlops local down`


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
    # Its alarm fired and the traffic function rolled back: the champion is back at 1, and
    # the endpoint (which reads the weights again after each change) serves only the champion.
    assert s["alarm"] == "mlops-dev-visits-challenger-drift"
    assert s["weights_before_rollback"] == {"champion": 0.5, "challenger": 0.5}
    assert s["weights_after_rollback"] == {"champion": 1.0, "challenger": 0.0}
    assert s["traffic"]["after_rollback"] == {"champion": 100}
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


def strings(value: object) -> Iterator[str]:
    """Every string in a JSON document, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def test_the_folder_holds_everything_the_summary_names(
    demo_run: tuple[Path, Recorder, object, int],
) -> None:
    folder, _, _, _ = demo_run
    root = folder.resolve()
    s = json.loads((folder / "summary.json").read_text())
    # Every s3:// link has its local copy, in the folder (the emulator's buckets are memory).
    links = {t for t in strings(s) if t.startswith("s3://")}
    assert links, "the summary names the reports and records it copied"
    assert links == set(s["downloads"])
    for local in s["downloads"].values():
        assert Path(local).is_relative_to(root / "downloads")
    # Every local path named exists (the MLflow store's URIs too).
    paths = [Path(t) for t in strings(s) if t.startswith(str(root))]
    paths += [Path(s["mlflow_tracking_uri"].removeprefix("sqlite:///"))]
    # MLflow's artifacts (in the emulated bucket) copied: each run's model is there.
    models = list(Path(s["downloads"][s["mlflow_artifact_root"]]).rglob("MLmodel"))
    assert len(models) >= 2, models
    assert len(paths) >= 15
    missing = [str(p) for p in paths if not p.exists()]
    assert not missing, missing
    # Each check's verdict of record (JSON) and Evidently page (HTML), per phase and variant.
    for phase in ("baseline", "drift"):
        for variant in ("champion", "challenger"):
            check = s["checks"][phase][variant]
            result = json.loads(Path(check["result"]).read_text())
            assert result["status"] == check["status"]
            assert "<html" in Path(check["report"]).read_text()[:2000].lower()
            assert s["downloads"][check["report_uri"]] == check["report"]
    # Every traffic action's audit record: two deploys, two rollout steps, the rollback.
    actions = [r["action"] for r in s["audit_records"]]
    assert actions == ["deploy", "deploy", "rollout-step", "rollout-step", "rollback"]
    records = [json.loads(Path(r["record"]).read_text()) for r in s["audit_records"]]
    assert records[-1]["action"] == "rollback"
    assert [r["weights_after"] for r in records[2:4]] == s["rollout"]
    assert s["audit_record"] == s["audit_records"][-1]["record"]
    # Each stage's measured time, and the total.
    assert len(s["stages"]) == Demo.TOTAL
    assert all(seconds >= 0 for seconds in s["stages"].values())
    assert sum(s["stages"].values()) <= s["seconds"]


def mlops(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI as the demo tells the user to run it: MLOPS_HOME set to the demo's folder."""
    return subprocess.run(
        [sys.executable, "-m", "mlops.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "MLOPS_HOME": str(home)},
        timeout=120,
        check=False,
    )


def test_keep_running_hands_the_state_to_the_cli_until_local_down(
    demo_run: tuple[Path, Recorder, object, int],
) -> None:
    folder, _, summary, emulator_pid = demo_run
    s = summary.__dict__
    assert s["kept_running"]["pid"] == emulator_pid
    assert alive(emulator_pid)
    home = Path(s["kept_running"]["home"])
    assert home == folder.resolve()
    listed = mlops(home, "registry", "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.count("Approved") == 2, listed.stdout
    status = mlops(home, "endpoint", "status")
    assert status.returncode == 0, status.stderr
    rows = {line.split()[1]: line for line in status.stdout.splitlines() if "%" in line}
    assert "100%" in rows["champion"], status.stdout
    assert "drift ALARM" in rows["challenger"], status.stdout
    # The CLI's MLflow store is the demo's.
    local = mlops(home, "local", "status")
    assert "running" in local.stdout
    assert f"MLflow: {s['mlflow_tracking_uri']}" in local.stdout
    down = mlops(home, "local", "down")
    assert "stopped" in down.stdout, down.stdout + down.stderr
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and alive(emulator_pid):
        time.sleep(0.1)
    assert not alive(emulator_pid)
    assert not (folder / "emulator.json").exists()
    after = mlops(home, "registry", "list")
    assert after.returncode == 1
    assert "not running" in after.stderr
    # The next run starts clean.
    (folder / "left-over.txt").write_text("from an earlier run")
    from mlops.local.demo import MARKER, reset  # noqa: PLC0415

    reset(folder)
    assert [p.name for p in folder.iterdir()] == [MARKER]


@pytest.mark.parametrize(
    ("keep_running", "fails"), [(False, False), (True, True)], ids=["default", "kept-but-failed"]
)
def test_nothing_is_left_running_without_keep_running_or_when_it_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keep_running: bool, fails: bool
) -> None:
    """The demo's start and end, its lifecycle stages skipped: the emulator is stopped at the
    end, unless the run succeeded and keep_running asked to keep it."""

    def lifecycle(self: Demo, *args: object) -> None:
        if fails:
            raise DemoFailed("a stage failed")

    monkeypatch.setattr(Demo, "_train_and_serve", lifecycle)
    monkeypatch.setattr(Demo, "_traffic_and_drift", lifecycle)
    folder = tmp_path / "demo-output"
    watch = Watch(folder)
    demo = Demo(DemoOptions(folder=folder, keep_running=keep_running), watch)
    try:
        if fails:
            with pytest.raises(DemoFailed):
                demo.run()
        else:
            assert demo.run().kept_running is None
        (emulator_pid,) = watch.pids
        assert not (folder / "emulator.json").exists()
        assert not alive(emulator_pid)
    finally:
        stop_emulator(Home(folder.resolve()))  # never left behind by a failing check


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
