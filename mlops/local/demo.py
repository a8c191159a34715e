"""The whole lifecycle on the embedded default, narrated: `make demo` (`mlops demo`).

Train v1 -> approve -> champion; train v2 -> approve -> challenger; gated rollout steps (the
traffic Lambda's handler); real requests through the local SageMaker-protocol endpoint with
boto3's sagemaker-runtime client; a scheduled drift check that finds nothing; the challenger's
traffic drifts; the next scheduled check (the drift Lambda's handler) finds it; its alarm
fires; the traffic Lambda's handler rolls back; the champion is back at weight 1.

Everything it leaves is under one folder, cleared at the start of every run: a local copy of
every report, drift result and audit record it mentions (``summary.json`` names each, with its
``s3://`` source in ``downloads``). Every process it starts is stopped at the end, also on
Ctrl-C or failure; with ``keep_running``, a demo that succeeds leaves its emulator up, so the
CLI (``MLOPS_HOME`` = the folder) and ``mlflow ui`` work on its state until ``mlops local down``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import shutil
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import mlflow

from mlops.adapters import endpoints, s3io
from mlops.adapters.envvars import patched_environ
from mlops.adapters.mlflow_aliases import REGISTERED_MODEL_ENV, MlflowAliases
from mlops.adapters.resources import PlatformResources
from mlops.adapters.target import EMULATOR_ACCOUNT, AwsTarget
from mlops.core.approval import PackageScope
from mlops.core.config import PlatformConfig
from mlops.core.names import CHALLENGER, CHAMPION
from mlops.core.specs import HANDLERS, TRAFFIC
from mlops.local.aws_services import invoke_function, scheduled_drift_check
from mlops.local.deployment import EmulatorDeployment
from mlops.local.emulator import (
    Home,
    bootstrap,
    mlflow_artifact_root,
    mlflow_environment,
    start_emulator,
    stop_emulator,
)
from mlops.local.endpoint import LocalEndpoints, LocalEndpointServer
from mlops.local.iam.enforce import CHECKED
from mlops.local.pipeline import LocalPipelineRunner, RunOptions
from mlops.local.replay import requests, send
from mlops.usecases.approve import ServingRequest, approve_package, change_serving
from mlops.usecases.endpoint_history import write_history

DEFAULT_FOLDER = Path("demo-output")
ROWS_AFTER_ROLLBACK = 100  # sent after the rollback: every one must reach the champion


class DemoFailed(RuntimeError):
    """A stage did not end as the lifecycle needs; the message says which and why."""


@dataclass
class DemoOptions:
    folder: Path = DEFAULT_FOLDER
    # Each variant needs min_rows_for_drift (1,000) rows in a window for a verdict.
    normal_rows: int = 3000  # requests like the training data, split by the weights
    drifted_rows: int = 1500  # a shifted population, sent to the challenger
    seed: int = 7
    # Leave the emulator up after a successful run (the folder is then the CLI's MLOPS_HOME).
    keep_running: bool = False


@dataclass
class DemoSummary:
    folder: str
    versions: dict[str, str] = field(default_factory=dict)  # v1/v2 -> model package ARN
    auc: dict[str, float] = field(default_factory=dict)
    rollout: list[dict[str, float]] = field(default_factory=list)
    traffic: dict[str, dict[str, int]] = field(default_factory=dict)
    # phase -> variant -> verdict, with local copies of its HTML report and JSON result
    checks: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    weights_before_rollback: dict[str, float] = field(default_factory=dict)
    weights_after_rollback: dict[str, float] = field(default_factory=dict)
    alarm: str | None = None
    rollback: dict[str, Any] = field(default_factory=dict)
    report_html: str | None = None  # a local copy of the challenger's drift report
    report_uri: str | None = None
    audit_record: str | None = None  # a local copy of the rollback's audit record
    audit_uri: str | None = None
    timeline_html: str | None = None  # the endpoint's history page (`mlops endpoint history`)
    # Every traffic action's audit record (deploys, rollout steps, rollback), copied locally.
    audit_records: list[dict[str, str]] = field(default_factory=list)
    # Every s3:// object named here -> its local copy (the emulator forgets it when it stops).
    downloads: dict[str, str] = field(default_factory=dict)
    mlflow_tracking_uri: str = ""
    mlflow_artifact_root: str = ""
    mlflow_environment: dict[str, str] = field(default_factory=dict)
    mlflow_runs: int = 0
    # AWS calls the functions made, each judged against its role's grants (none refused).
    iam_checked_calls: dict[str, int] = field(default_factory=dict)
    stages: dict[str, float] = field(default_factory=dict)  # title -> measured seconds
    seconds: float = 0.0
    # With keep_running: the emulator left up ({"endpoint_url", "pid", "home"}).
    kept_running: dict[str, Any] | None = None


class Narrator:
    """What the demo says; the CLI prints it with rich, tests collect it."""

    def stage(self, number: int, total: int, title: str) -> None:
        print(f"[{number}/{total}] {title}")

    def say(self, text: str) -> None:
        print(f"      {text}")

    def progress(
        self, description: str, total: int | None = None, unit: str = ""
    ) -> contextlib.AbstractContextManager[Callable[[int], None]]:
        """A step that takes a while: the callback hears each ``unit`` done (the CLI shows a
        bar with the count and the elapsed time; here, nothing)."""
        return contextlib.nullcontext(lambda done: None)


@contextlib.contextmanager
def _interrupts_as_exceptions() -> Iterator[None]:
    """SIGTERM and SIGHUP end the demo like Ctrl-C does: through its clean-up."""

    def stop(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


MARKER = ".mlops-demo"  # written into the folder: only such a folder is ever deleted


def reset(folder: Path) -> Home:
    """A clean folder: stop an emulator a previous run left (killed hard), delete the rest.

    Only a folder the demo made (it holds the marker file), or an empty one, is cleared: a
    mistyped --folder (".", the home folder, a repository) is refused, never deleted."""
    root = folder.resolve()
    if root.exists():
        if not root.is_dir():
            raise DemoFailed(f"{folder} is a file, not a folder for the demo's output")
        if any(root.iterdir()) and not (root / MARKER).is_file():
            raise DemoFailed(
                f"{folder} is not empty and was not made by the demo (no {MARKER} in it): "
                "refusing to delete it; choose another --folder"
            )
        stop_emulator(Home(root))
        shutil.rmtree(root)
    root.mkdir(parents=True)
    (root / MARKER).write_text("made by `mlops demo`: the next run deletes this folder\n")
    return Home(root)


class Demo:
    TOTAL = 10

    def __init__(self, options: DemoOptions, narrator: Narrator | None = None) -> None:
        self.options = options
        self.narrator = narrator or Narrator()
        self.config = PlatformConfig()
        self.summary = DemoSummary(folder=str(options.folder.resolve()))
        self._number = 0

    @contextlib.contextmanager
    def stage(self, title: str) -> Iterator[None]:
        self._number += 1
        self.narrator.stage(self._number, self.TOTAL, title)
        started = time.perf_counter()
        yield
        self.summary.stages[title] = round(time.perf_counter() - started, 2)

    def say(self, text: str) -> None:
        self.narrator.say(text)

    def _step_progress(self, step: str, status: str, detail: str) -> None:
        if status != "Executing":
            self.say(f"{step:<10} {status}{f': {detail}' if detail else ''}")

    # -- the lifecycle ---------------------------------------------------------------------------
    def run(self) -> DemoSummary:
        started = time.perf_counter()
        home = reset(self.options.folder)
        self.home = home
        server: LocalEndpointServer | None = None
        succeeded = False
        with _interrupts_as_exceptions():
            try:
                with self.stage("Start the embedded default"):
                    emulator = start_emulator(home)
                    target = AwsTarget(
                        region=self.config.region, endpoint_url=emulator.endpoint_url
                    )
                    resources = bootstrap(target, self.config)
                    home.mlflow_dir.mkdir(parents=True, exist_ok=True)
                    self.say(f"AWS emulator (moto) on {emulator.endpoint_url}, pid {emulator.pid}")
                    self.say(f"MLflow store {home.mlflow_tracking_uri}")
                self._train_and_serve(target, resources)
                with self.stage("Start the local endpoint (SageMaker runtime protocol)"):
                    # The weights are read at the first request and again right after each
                    # change the demo makes (rollout steps, rollback: `refresh`), not on every
                    # request (six SageMaker calls each, most of the demo's time).
                    server = LocalEndpointServer(
                        LocalEndpoints(
                            target,
                            cache_dir=home.root / "endpoint-cache",
                            refresh_seconds=math.inf,
                            seed=self.options.seed,
                        )
                    ).start()
                    self.say(f"{server.url}/endpoints/{self.config.endpoint_name}/invocations")
                self._traffic_and_drift(target, resources, server)
                succeeded = True
            finally:
                if server is not None:
                    server.stop()
                if succeeded and self.options.keep_running:
                    self.summary.kept_running = {
                        "endpoint_url": emulator.endpoint_url,
                        "pid": emulator.pid,
                        "home": str(home.root),
                    }
                else:
                    stop_emulator(home)
        self.summary.seconds = round(time.perf_counter() - started, 1)
        (home.root / "summary.json").write_text(json.dumps(asdict(self.summary), indent=2) + "\n")
        return self.summary

    def _train_and_serve(self, target: AwsTarget, resources: PlatformResources) -> None:
        # MLflow configures its loggers when it is imported (above): quiet them.
        logging.getLogger("mlflow").setLevel(logging.ERROR)
        runner = LocalPipelineRunner(
            target=target,
            resources=resources,
            config=self.config,
            mlflow_tracking_uri=self.home.mlflow_tracking_uri,
            mlflow_artifact_root=mlflow_artifact_root(resources),
            progress=self._step_progress,
        )
        deployment = EmulatorDeployment(
            sagemaker=target.client("sagemaker"),
            config=self.config,
            resources=resources,
            cloudwatch=target.client("cloudwatch"),
            events=target.client("events"),
            ssm=target.client("ssm"),
        )
        for version, title, options in (
            ("v1", "Train v1 (logistic regression) and register it", RunOptions()),
            (
                "v2",
                "Train v2 (gradient boosting) and register it",
                RunOptions(algorithm="gradient_boosting", max_iter=100),
            ),
        ):
            with self.stage(title):
                result = runner.run(options)
                if not result.registered:
                    raise DemoFailed(f"{version} was not registered: {result.reason}")
                arn = result.model_package_arn or ""
                self.summary.versions[version] = arn
                self.summary.auc[version] = round(result.metrics["auc"], 4)
                self.say(f"test AUC {result.metrics['auc']:.4f}; MLflow run {result.mlflow_run_id}")
                self.say(f"registered {arn} (PendingManualApproval)")
            role = CHAMPION if version == "v1" else CHALLENGER
            with self.stage(f"Approve {version}: it deploys as the {role}"):
                aliases = self._aliases(resources)
                approve_package(
                    target.client("sagemaker"), arn, "Approved", f"demo: {version}", aliases=aliases
                )
                outcome = change_serving(
                    ServingRequest(
                        action="deploy",
                        requested_by="demo",
                        reason=f"approved {version}",
                        package_arn=arn,
                    ),
                    deployment=deployment,
                    registry=target.client("sagemaker"),
                    scope=PackageScope(
                        group=self.config.model_package_group_name,
                        account=EMULATOR_ACCOUNT,
                        region=target.region,
                    ),
                    endpoint=self.config.endpoint_name,
                    initial_challenger_weight=self.config.challenger_initial_weight,
                    s3=target.client("s3"),
                    audit_bucket=resources.reports_bucket,
                    aliases=aliases,
                )
                self.say(outcome.record.summary)
                self.say(_weights(_current_weights(target, self.config.endpoint_name)))
                self._audited(target, "deploy", outcome.record.audit_uri)

    def _traffic_and_drift(
        self, target: AwsTarget, resources: PlatformResources, server: LocalEndpointServer
    ) -> None:
        config, summary = self.config, self.summary
        endpoint = config.endpoint_name
        checked_before = {f: CHECKED[f] for f in HANDLERS}
        with self.stage("Gated rollout: two steps through the traffic Lambda's handler"):
            for _ in range(2):
                outcome, _ = invoke_function(
                    TRAFFIC,
                    {"action": "rollout-step", "endpoint": endpoint, "reason": "demo rollout",
                     "requested_by": "demo"},
                    target=target, config=config, resources=resources,
                    log_dir=self.home.root / "logs",
                )  # fmt: skip
                if not outcome.get("ok"):
                    raise DemoFailed(f"rollout step refused: {outcome.get('error')}")
                summary.rollout.append(outcome["weights_after"])
                self.say(f"{outcome['decision']}: {_weights(outcome['weights_after'])}")
                self._audited(target, "rollout-step", outcome["audit_uri"])
                server.endpoints.refresh(endpoint)

        runtime = boto3.client(
            "sagemaker-runtime",
            endpoint_url=server.url,
            region_name=config.region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106 - the local endpoint's dummy key
        )
        with self.stage("Traffic like the training data, then the scheduled drift check"):
            rows = self.options.normal_rows
            with self.narrator.progress("requests sent", total=rows, unit="rows") as sent:
                served = send(runtime, endpoint, requests(rows, seed=101), on_sent=sent)
            summary.traffic["normal"] = dict(served)
            self.say(f"{self.options.normal_rows} rows through boto3 sagemaker-runtime: "
                     f"{_served(served)}")  # fmt: skip
            self._check(target, resources, server, "baseline")
            time.sleep(1.0)  # capture times have whole seconds: keep the next window apart

        with self.stage("The challenger's traffic drifts; the scheduled check finds it"):
            rows = self.options.drifted_rows + self.options.normal_rows
            with self.narrator.progress("requests sent", total=rows, unit="rows") as sent:
                drifted = send(
                    runtime,
                    endpoint,
                    requests(self.options.drifted_rows, seed=102, drifted=True),
                    target_variant=CHALLENGER,
                    on_sent=sent,
                )
                normal = send(
                    runtime, endpoint, requests(self.options.normal_rows, seed=103), on_sent=sent
                )
            summary.traffic["drift"] = dict(drifted + normal)
            self.say(
                f"{self.options.drifted_rows} rows from a shifted population (free care, sicker) "
                f"pinned to the challenger with TargetVariant, plus "
                f"{self.options.normal_rows} ordinary rows: {_served(drifted + normal)}"
            )
            summary.weights_before_rollback = _current_weights(target, endpoint)
            run = self._check(target, resources, server, "drift")

        self._rollback(target, server, runtime, run, checked_before)
        self._runs_and_timeline(target, resources)

    def _rollback(
        self, target: AwsTarget, server: LocalEndpointServer, runtime: Any, run: Any,
        checked_before: dict[Any, int],
    ) -> None:  # fmt: skip
        summary, endpoint = self.summary, self.config.endpoint_name
        with self.stage("Alarm -> automatic rollback (the traffic Lambda's handler)"):
            fired = [e["detail"]["alarmName"] for e in run.alarm_events
                     if e["detail"]["state"]["value"] == "ALARM"]  # fmt: skip
            if fired != [f"{endpoint}-{CHALLENGER}-drift"]:
                raise DemoFailed(f"expected the challenger's drift alarm to fire, got {fired}")
            summary.alarm = fired[0]
            ((route, outcome),) = run.actions
            if route != "traffic" or not outcome.get("ok"):
                raise DemoFailed(f"the rollback did not happen: {route} {outcome}")
            summary.weights_after_rollback = _current_weights(target, endpoint)
            server.endpoints.refresh(endpoint)
            after = send(runtime, endpoint, requests(ROWS_AFTER_ROLLBACK, seed=104))
            summary.traffic["after_rollback"] = dict(after)
            if set(after) != {CHAMPION}:
                raise DemoFailed(f"after the rollback the endpoint still served {_served(after)}")
            summary.rollback = {
                "decision": outcome["decision"],
                "controller_seconds": outcome["seconds_to_request"],
                "api_calls": sum(outcome["api_calls"].values()),
                "alarm_to_rollback_seconds": round(run.seconds_alarm_to_action, 3),
            }
            self.say(f"alarm {summary.alarm}: OK -> ALARM")
            self.say(
                f"{outcome['decision']}: {_weights(summary.weights_after_rollback)} "
                f"(controller {outcome['seconds_to_request'] * 1000:.0f} ms, "
                f"alarm to weights requested {run.seconds_alarm_to_action * 1000:.0f} ms)"
            )
            self.say(f"the next {ROWS_AFTER_ROLLBACK} rows: {_served(after)}")
            summary.audit_uri = outcome["audit_uri"]
            summary.audit_record = self._audited(target, "rollback", outcome["audit_uri"])
            self.say(f"audit record {summary.audit_record}")
            summary.iam_checked_calls = {f: CHECKED[f] - n for f, n in checked_before.items()}
            self.say(
                "IAM: "
                + ", ".join(f"{f} {n} calls" for f, n in summary.iam_checked_calls.items() if n)
                + " judged against their roles' grants (mlops.core.permissions): none refused"
            )

    def _runs_and_timeline(self, target: AwsTarget, resources: PlatformResources) -> None:
        summary, endpoint = self.summary, self.config.endpoint_name
        client = mlflow.MlflowClient(tracking_uri=self.home.mlflow_tracking_uri)
        experiments = client.search_experiments()
        summary.mlflow_tracking_uri = self.home.mlflow_tracking_uri
        summary.mlflow_artifact_root = mlflow_artifact_root(resources)
        # MLflow's own S3 client reaches the emulated bucket with these (a kept run).
        summary.mlflow_environment = mlflow_environment(target)
        summary.mlflow_runs = len(client.search_runs([e.experiment_id for e in experiments]))
        # The runs' artifacts (models, signatures, manifests) live in the emulated bucket, which
        # forgets them when it stops: copied, as every other object the summary names.
        copy = self.home.root / "downloads" / "mlflow"
        s3io.download_prefix(target.client("s3"), summary.mlflow_artifact_root, copy)
        summary.downloads[summary.mlflow_artifact_root] = str(copy)
        # Read from the emulator before it stops: the page keeps what it showed.
        page = write_history(
            target, resources.reports_bucket, endpoint, self.home.root / "timeline.html"
        )
        summary.timeline_html = str(page.path)
        self.say(f"timeline of {endpoint}: {page.path}")

    def _check(
        self, target: AwsTarget, resources: PlatformResources, server: LocalEndpointServer,
        phase: str,
    ) -> Any:  # fmt: skip
        server.endpoints.capture.flush()
        started = time.perf_counter()
        aliases = self._aliases(resources)
        # The functions the check sets off (a rollback) move MLflow's aliases, as the CLI does;
        # in AWS no stack gives them a tracking URI (mlops.adapters.mlflow_aliases).
        with (
            self.narrator.progress("capture read and drift checked (the drift Lambda's handler)"),
            patched_environ(
                {
                    "MLFLOW_TRACKING_URI": aliases.tracking_uri,
                    REGISTERED_MODEL_ENV: aliases.model_name,
                }
            ),
        ):
            run = scheduled_drift_check(
                target, self.config, resources, now=datetime.now(UTC),
                log_dir=self.home.root / "logs",
            )  # fmt: skip
        if not run.result.get("ok"):
            raise DemoFailed(f"the drift check failed: {run.result.get('error')}")
        checks: dict[str, dict[str, Any]] = {}
        for variant in run.result["variants"]:
            name = variant["variant"]
            result_path = self._download(target, variant["result"])
            result = json.loads(Path(result_path).read_text())
            prediction = result.get("prediction") or {}
            checks[name] = {
                "status": variant["status"],
                "rows": variant["rows"],
                "drift_share": variant["drift_share"],
                "drifted_features": [c["column"] for c in (result.get("data") or {}).get("columns", [])
                                     if c["drifted"]],
                "prediction_drift": prediction.get("score"),
                "result": result_path,
                "result_uri": variant["result"],
                "report": variant["report"] and self._download(target, variant["report"]),
                "report_uri": variant["report"],
            }  # fmt: skip
            share = "-" if variant["drift_share"] is None else f"{variant['drift_share']:.2f}"
            self.say(f"{name}: {variant['status']}, {variant['rows']} rows, drift share {share}"
                     + (f" ({', '.join(checks[name]['drifted_features'])})"
                        if checks[name]["drifted_features"] else ""))  # fmt: skip
        self.summary.checks[phase] = checks
        self.say(f"checked in {time.perf_counter() - started:.1f} s")
        challenger = checks.get(CHALLENGER, {})
        if phase == "drift" and challenger.get("report"):
            self.summary.report_uri = challenger["report_uri"]
            self.summary.report_html = challenger["report"]
            self.say(f"drift report {self.summary.report_html}")
        return run

    def _aliases(self, resources: PlatformResources) -> MlflowAliases:
        return MlflowAliases(self.home.mlflow_tracking_uri, resources.model_package_group)

    def _download(self, target: AwsTarget, uri: str) -> str:
        """A copy outside the emulator (it stops with the demo), to open in a browser; noted in
        ``summary.downloads``."""
        bucket, key = s3io.split_uri(uri)
        path = self.home.root / "downloads" / key
        path.parent.mkdir(parents=True, exist_ok=True)
        target.client("s3").download_file(bucket, key, str(path))
        self.summary.downloads[uri] = str(path)
        return str(path)

    def _audited(self, target: AwsTarget, action: str, uri: str | None) -> str:
        """The local copy of a traffic action's audit record (every action writes one)."""
        if not uri:
            raise DemoFailed(f"the {action} wrote no audit record")
        path = self._download(target, uri)
        self.summary.audit_records.append({"action": action, "record": path, "uri": uri})
        return path


def _current_weights(target: AwsTarget, endpoint: str) -> dict[str, float]:
    return endpoints.describe(target.client("sagemaker"), endpoint).weights


def _weights(weights: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:g}" for k, v in sorted(weights.items()))


def _served(served: Counter[str]) -> str:
    return ", ".join(f"{v} {n} rows" for v, n in sorted(served.items()))
