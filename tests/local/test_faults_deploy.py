"""Fault injection in serving changes: every AWS call of a deploy and of a promotion fails once,
throttled or with a server error, and the request is retried (the same request id).

Two deployments: the deploy Lambda's, the serving stack (SSM weights, then CloudFormation's
UpdateStack; CloudFormation is ``FakeStack``, SSM, S3, SNS and the registry moto), and the
twin's (``EmulatorDeployment``: models, endpoint config, alarms, rules, the endpoint; on moto).
For each call index, with each code:

- the failed attempt raises (the Lambda retries; a throttled call is no refusal), or, handled,
  ends as a clean request does;
- nothing is half-applied: the stack serves the packages of before or after, never a mix, and
  SSM holds the weights it serves (written weights are put back when the update did not
  start); the twin's endpoint serves before or after, and exists;
- a change that did not happen leaves no audit record and no notice; the retry makes it once,
  records it once as a clean request does, and notifies.

When the change happened and only its record or notice failed, the retry records what
happened, once: ``change_serving`` writes its decision into the request's claim before it
deploys, and a retry finishes that decision instead of deciding again.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from lambdas.deploy import handler as deploy_lambda
from mlops.adapters.resources import PlatformResources
from mlops.adapters.target import AwsTarget
from mlops.core import names
from mlops.core.approval import PackageScope, ServingChange, ServingState, on_approval
from mlops.core.config import PlatformConfig
from mlops.core.functions import DeploySettings
from mlops.core.names import CHALLENGER, CHAMPION
from mlops.local.deployment import EmulatorDeployment
from mlops.usecases.approve import ServingRequest, change_serving
from tests.support.fake_cloudformation import FakeStack
from tests.support.faults import SERVER_ERROR, THROTTLE, Faults

REGION, ACCOUNT = "us-east-1", "123456789012"
CONFIG = PlatformConfig()
ENDPOINT, GROUP = CONFIG.endpoint_name, CONFIG.model_package_group_name
BUCKET = "mlops-dev-reports"
STACK = names.serving_stack(CONFIG)
WEIGHTS = names.weight_parameters(CONFIG)
PARAMETERS = {CHAMPION: "ChampionModelPackageArn", CHALLENGER: "ChallengerModelPackageArn"}
AUDIT = f"{names.SERVING_AUDIT_PREFIX}/{ENDPOINT}/"
CODES = {"throttling": THROTTLE, "5xx": SERVER_ERROR}
Action = Literal["deploy", "promote"]


def package(version: int) -> str:
    return f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{GROUP}/{version}"


P1, P2 = package(1), package(2)
# Each action: what serves before and after, and the weights in force before and after.
BEFORE: dict[Action, tuple[ServingState, dict[str, float]]] = {
    "deploy": (ServingState(champion=P1), {CHAMPION: 1.0, CHALLENGER: 0.0}),
    "promote": (ServingState(champion=P1, challenger=P2), {CHAMPION: 0.5, CHALLENGER: 0.5}),
}
AFTER: dict[Action, tuple[ServingState, dict[str, float]]] = {
    "deploy": (ServingState(champion=P1, challenger=P2), {CHAMPION: 0.9, CHALLENGER: 0.1}),
    "promote": (ServingState(champion=P2, challenger=P2), {CHAMPION: 1.0, CHALLENGER: 0.0}),
}
RECORDED = ("request_id", "action", "before", "after", "weights", "changed", "summary")


@dataclass
class Attempt:
    result: dict[str, Any] | None
    error: Exception | None
    calls: list[tuple[str, str]]
    notices: list[dict[str, str]]


@dataclass
class World:
    """One deployment on moto, its clients sharing one ``Faults``; what serves, what is recorded."""

    action: Action
    clients: dict[str, Any]
    faults: Faults
    queue: str
    raw: dict[str, Any]  # clients without faults, to look and to reset
    topic: str
    stack: FakeStack | None = None
    deployment: EmulatorDeployment | None = None
    configs: dict[str, tuple[ServingState, dict[str, float]]] = field(default_factory=dict)
    made: dict[str, set[str]] = field(default_factory=dict)  # the twin's, by the request

    # -- what is recorded -----------------------------------------------------------------------
    def audit(self) -> dict[str, dict[str, Any]]:
        s3 = self.raw["s3"]
        listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=AUDIT).get("Contents", [])
        return {
            o["Key"]: json.loads(s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read())
            for o in listed
        }

    def notices(self) -> list[dict[str, str]]:
        sqs, found = self.raw["sqs"], []
        while messages := sqs.receive_message(QueueUrl=self.queue, MaxNumberOfMessages=10).get(
            "Messages"
        ):
            for message in messages:
                body = json.loads(message["Body"])
                found.append({"Subject": body["Subject"], "Message": body["Message"]})
                sqs.delete_message(QueueUrl=self.queue, ReceiptHandle=message["ReceiptHandle"])
        return found

    # -- what serves ----------------------------------------------------------------------------
    def ssm_weights(self) -> dict[str, float]:
        found = self.raw["ssm"].get_parameters(Names=[WEIGHTS[v] for v in (CHAMPION, CHALLENGER)])
        by_name = {p["Name"]: float(p["Value"]) for p in found["Parameters"]}
        return {v: by_name[WEIGHTS[v]] for v in (CHAMPION, CHALLENGER)}

    def serving(self) -> tuple[ServingState, dict[str, float]] | None:
        """What serves, and at which weights (None: the endpoint does not exist)."""
        if self.stack is not None:
            packages = {v: self.stack.parameters[PARAMETERS[v]] or None for v in PARAMETERS}
            return ServingState(**packages), {v: float(w) for v, w in self.stack.weights.items()}
        sagemaker = self.raw["sagemaker"]
        try:
            endpoint = sagemaker.describe_endpoint(EndpointName=ENDPOINT)
        except sagemaker.exceptions.ClientError:
            return None
        weights = {CHALLENGER: 0.0} | {
            v["VariantName"]: round(float(v.get("CurrentWeight", 0.0)), 6)
            for v in endpoint["ProductionVariants"]
        }
        name = endpoint["EndpointConfigName"]
        if name not in self.configs:  # neither before nor after: what does it serve?
            config = sagemaker.describe_endpoint_config(EndpointConfigName=name)
            packages = {
                v["VariantName"]: sagemaker.describe_model(ModelName=v["ModelName"])["Containers"][
                    0
                ]["ModelPackageName"]
                for v in config["ProductionVariants"]
            }
            return ServingState(**packages), weights
        state, wanted = self.configs[name]
        assert weights == wanted, f"{name} serves {weights}, made with {wanted}"
        return state, weights

    # -- attempts -------------------------------------------------------------------------------
    def reset(self) -> None:
        """Back to what served before the request, with no record of it."""
        self.faults.clear()
        state, weights = BEFORE[self.action]
        s3 = self.raw["s3"]
        if keys := [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]:
            s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": k} for k in keys]})
        assert self.notices() == []
        if self.stack is not None:
            for variant, weight in weights.items():
                self.raw["ssm"].put_parameter(
                    Name=WEIGHTS[variant], Value=f"{weight:g}", Type="String", Overwrite=True
                )
            self.stack.parameters = {
                **self.stack.parameters,
                PARAMETERS[CHAMPION]: state.champion or "",
                PARAMETERS[CHALLENGER]: state.challenger or "",
            }
            self.stack.status = "UPDATE_COMPLETE"
            self.stack.weights = {v: f"{w:g}" for v, w in weights.items()}
            self.stack.updates = 0
            return
        # The twin: what the request made, gone; the endpoint on its config of before.
        sagemaker = self.raw["sagemaker"]
        with contextlib.suppress(sagemaker.exceptions.ClientError):
            sagemaker.delete_endpoint(EndpointName=ENDPOINT)
        for model in self.made.get("models", ()):
            with contextlib.suppress(sagemaker.exceptions.ClientError):
                sagemaker.delete_model(ModelName=model)
        for config in self.made.get("configs", ()):
            with contextlib.suppress(sagemaker.exceptions.ClientError):
                sagemaker.delete_endpoint_config(EndpointConfigName=config)
        (before,) = [name for name, (s, _) in self.configs.items() if s == state]
        sagemaker.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName=before)

    def attempt(
        self,
        index: int | None = None,
        code: str | None = None,
        plan: dict[tuple[str, str], list[str | None]] | None = None,
    ) -> Attempt:
        """The request, with call ``index`` failing with ``code``, or the calls ``plan`` names
        answering in turn (None: passed through)."""
        self.faults.clear()
        if index is not None:
            self.faults.fail_call(index, code)
        self.faults.plan.update(plan or {})
        result: dict[str, Any] | None = None
        error: Exception | None = None
        try:
            result = self._request()
        except Exception as exc:
            error = exc
        calls = list(self.faults.calls)
        self.faults.clear()
        return Attempt(result, error, calls, self.notices())

    def _request(self) -> dict[str, Any]:
        if self.stack is not None:
            event: dict[str, Any] = (
                {"version": "0", "id": "approval-1", "account": ACCOUNT, "region": REGION,
                 "detail-type": "SageMaker Model Package State Change", "source": "aws.sagemaker",
                 "time": "2026-11-30T10:00:00Z", "resources": [P2],
                 "detail": {"ModelPackageGroupName": GROUP, "ModelPackageArn": P2,
                            "ModelApprovalStatus": "Approved"}}
                if self.action == "deploy"
                else {"action": "promote", "request_id": "promote-1", "reason": "it won",
                      "requested_by": "ops"}
            )  # fmt: skip
            result: dict[str, Any] = deploy_lambda.handler(event, Context())  # type: ignore[arg-type]
            return result
        assert self.deployment is not None
        request = ServingRequest(
            action=self.action,
            requested_by="ops",
            reason="it won" if self.action == "promote" else f"{P2} approved",
            package_arn=P2 if self.action == "deploy" else None,
            request_id=f"{self.action}-1",
        )
        outcome = change_serving(
            request,
            deployment=self.deployment,
            registry=self.clients["sagemaker"],
            scope=PackageScope(group=GROUP, account=ACCOUNT, region=REGION),
            endpoint=ENDPOINT,
            initial_challenger_weight=CONFIG.challenger_initial_weight,
            s3=self.clients["s3"],
            audit_bucket=BUCKET,
            sns=self.clients["sns"],
            topic_arn=self.topic,
        )
        return {"ok": True, "duplicate": outcome.duplicate, **outcome.record.__dict__}

    def settle(self) -> None:
        """Time passes before a retry: a stack update completes."""
        if self.stack is not None:
            self.stack.settle()


@dataclass
class Context:
    aws_request_id: str = "lambda-request-1"
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:mlops-dev-deploy"


def client(service: str) -> Any:
    return boto3.client(service, region_name=REGION)  # type: ignore[call-overload]


def registry(sagemaker: Any) -> None:
    sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)
    for _ in (1, 2):
        sagemaker.create_model_package(
            ModelPackageGroupName=GROUP,
            ModelApprovalStatus="Approved",
            InferenceSpecification={
                "Containers": [{"Image": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/sklearn:1"}],
                "SupportedContentTypes": ["text/csv"],
                "SupportedResponseMIMETypes": ["text/csv"],
            },
        )


# The twin's promotion runs the same EmulatorDeployment path as its deploy (a new config, the
# endpoint re-created), one model fewer: it is in the redelivery test only.
KINDS = [("stack", "deploy"), ("stack", "promote"), ("twin", "deploy")]
ALL_KINDS = [*KINDS, ("twin", "promote")]


def kinds(which: list[tuple[str, str]]) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("world", which, ids=["-".join(k) for k in which], indirect=True)


@pytest.fixture(scope="module")
def worlds() -> Iterator[dict[tuple[str, str], World]]:
    """One emulated account per module (a world per kind, made when first asked for)."""
    with pytest.MonkeyPatch.context() as patch, mock_aws():
        for key, value in {
            "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        }.items():  # fmt: skip
            patch.setenv(key, value)
        raw = {s: client(s) for s in ("s3", "ssm", "sqs", "sagemaker")}
        raw["s3"].create_bucket(Bucket=BUCKET)
        registry(raw["sagemaker"])
        made: dict[tuple[str, str], World] = {}
        yield made


@pytest.fixture
def world(
    request: pytest.FixtureRequest,
    worlds: dict[tuple[str, str], World],
    monkeypatch: pytest.MonkeyPatch,
) -> World:
    kind, action = request.param
    if (kind, action) not in worlds:
        worlds.clear()  # one at a time: they share the account's endpoint and stack names
        worlds[(kind, action)] = make_world(kind, action)
    world = worlds[(kind, action)]
    if world.stack is not None:
        settings = DeploySettings.for_platform(
            CONFIG, audit_bucket=BUCKET, topic_arn=world.topic, cloudformation_role_arn=None
        )
        for key, value in settings.environment().items():
            monkeypatch.setenv(key, value)
        monkeypatch.setattr(AwsTarget, "client", lambda _self, name, **_: world.clients[name])
    world.reset()
    assert world.serving() == BEFORE[action]
    return world


def make_world(kind: str, action: Action) -> World:
    raw = {s: client(s) for s in ("s3", "ssm", "sqs", "sagemaker")}
    faults = Faults()
    services = ("sagemaker", "s3", "ssm", "sns", "cloudwatch", "cloudformation")
    clients = {s: faults.attach(client(s)) for s in services}
    topic = clients["sns"].create_topic(Name=f"alerts-{kind}-{action}")["TopicArn"]
    queue = raw["sqs"].create_queue(QueueName=f"alerts-{kind}-{action}")["QueueUrl"]
    arn = raw["sqs"].get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
    clients["sns"].subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn["Attributes"]["QueueArn"])
    world = World(action, clients, faults, queue, raw, topic)
    if kind == "stack":
        parameters = dict.fromkeys(PARAMETERS.values(), "") | {"BootstrapVersion": "/cdk/v"}
        world.stack = FakeStack(STACK, parameters, raw["ssm"], WEIGHTS)
        world.stack.attach(clients["cloudformation"])  # after the faults: they go first
        return world
    # The twin: serving what serves before the request (made without faults); then the
    # request once, to learn the names of what it makes, and undone.
    sagemaker = raw["sagemaker"]
    with contextlib.suppress(sagemaker.exceptions.ClientError):
        sagemaker.delete_endpoint(EndpointName=ENDPOINT)
    deployment = world.deployment = EmulatorDeployment(
        sagemaker=clients["sagemaker"],
        config=CONFIG,
        resources=PlatformResources.conventional(CONFIG),
        cloudwatch=clients["cloudwatch"],
    )
    state, weights = BEFORE[action]
    deployment.deploy(on_approval(ServingState(), P1, initial_challenger_weight=0.1))
    if state.challenger:
        deployment.deploy(
            on_approval(deployment.current(), state.challenger,
                        initial_challenger_weight=weights[CHALLENGER])
        )  # fmt: skip
    models = {m["ModelName"] for m in sagemaker.list_models()["Models"]}
    configs = {
        c["EndpointConfigName"] for c in sagemaker.list_endpoint_configs()["EndpointConfigs"]
    }
    before = sagemaker.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"]
    after_state, after_weights = AFTER[action]
    after = deployment.endpoint_config(
        ServingChange(after_state, after_weights, changed=True, summary="")
    )["EndpointConfigName"]
    world.configs = {before: BEFORE[action], after: AFTER[action]}
    world.made = {"configs": {after} - configs, "models": set()}
    world.made["models"] = {m["ModelName"] for m in sagemaker.list_models()["Models"]} - models
    return world


# -- the checks -------------------------------------------------------------------------------
@dataclass
class Clean:
    attempt: Attempt
    record: dict[str, Any]
    applying: int  # the index of the call that changes what serves


def clean_request(world: World) -> Clean:
    """The request without faults: what it changes, records and notifies; then undone."""
    clean = world.attempt()
    assert clean.error is None, clean.error
    assert clean.result is not None
    assert clean.result["ok"] is True, clean.result
    assert world.serving() == AFTER[world.action]
    if world.stack is not None:
        assert world.ssm_weights() == AFTER[world.action][1]
        assert world.stack.updates == 1
    (record,) = world.audit().values()
    assert record["changed"] is True
    assert record["after"] == {CHAMPION: AFTER[world.action][0].champion,
                               CHALLENGER: AFTER[world.action][0].challenger}  # fmt: skip
    assert len(clean.notices) == 1
    applying = ("cloudformation", "UpdateStack") if world.stack else ("sagemaker", "CreateEndpoint")
    index = max(i for i, call in enumerate(clean.calls) if call == applying)
    world.reset()
    return Clean(clean, record, index)


def kind(error: Exception | None) -> str:
    """What an error is, whatever AWS error code it carries."""
    return "ClientError" if isinstance(error, ClientError) else type(error).__name__


def recorded(record: dict[str, Any]) -> dict[str, Any]:
    return {key: record[key] for key in RECORDED}


def consistent(world: World, case: str) -> tuple[ServingState, dict[str, float]]:
    """Nothing half-applied: what serves is all of before or all of after; SSM agrees."""
    serving = world.serving()
    assert serving in (BEFORE[world.action], AFTER[world.action]), f"{case}: {serving}"
    if world.stack is not None:
        assert world.ssm_weights() == serving[1], f"{case}: SSM disagrees with the stack"
        assert world.stack.updates <= 1, case
    return serving


def failed_attempt(world: World, clean: Clean, index: int, code: str) -> tuple[str, Attempt, bool]:
    """The request with call ``index`` failing: surfaced or handled, nothing half-applied, and
    a change that did not happen neither recorded nor notified. True if the change happened."""
    world.reset()
    service, operation = clean.attempt.calls[index]
    case = f"{world.action}: call {index} ({service} {operation}) failing with {code}"
    failed = world.attempt(index, code)
    assert failed.calls[index] == clean.attempt.calls[index], case
    assert len(world.faults.raised) <= 1
    if failed.error is None:
        # Handled: then it ended as a clean request does.
        assert failed.result is not None
        assert failed.result.get("ok") is True, f"{case}: answered {failed.result}"
        assert world.serving() == AFTER[world.action], case
        assert [recorded(r) for r in world.audit().values()] == [recorded(clean.record)], case
    applied = consistent(world, case) == AFTER[world.action]
    if not applied:
        assert failed.error is not None, case
        assert world.audit() == {}, f"{case}: a change that did not happen is recorded"
        assert failed.notices == [], case
    return case, failed, applied


def retried(world: World, clean: Clean, case: str, failed: Attempt, applied: bool) -> None:
    """The same request again: the change made once, recorded once, notified."""
    world.settle()
    retry = world.attempt()
    after = consistent(world, f"{case}, then retried")
    assert after == AFTER[world.action], f"{case}: the retry did not complete: {retry}"
    if world.stack is not None:
        assert world.stack.updates == 1, f"{case}: updated {world.stack.updates} times"
    if applied:
        # Made by the failed attempt: the retry changes nothing more. (What it records is
        # the next test's.)
        assert ("sagemaker", "DeleteEndpoint") not in retry.calls, case
        return
    assert retry.error is None, f"{case}: the retry failed: {retry.error!r}"
    assert retry.result is not None
    assert retry.result["ok"] is True, f"{case}: {retry.result}"
    records = list(world.audit().values())
    assert [recorded(r) for r in records] == [recorded(clean.record)], case
    assert failed.notices + retry.notices == clean.attempt.notices, case


@kinds(KINDS)
def test_every_call_failing_half_applies_nothing_and_the_retry_completes_once(
    world: World,
) -> None:
    clean = clean_request(world)
    throttled: dict[int, Attempt] = {}
    for label, codes in CODES.items():
        for index, (service, _) in enumerate(clean.attempt.calls):
            case, failed, applied = failed_attempt(world, clean, index, codes[service])
            if label == "throttling":
                throttled[index] = failed
                retried(world, clean, case, failed, applied)
                continue
            # A server error takes the path throttling took, call for call, to the same
            # error: what it left is what throttling left, and so is what its retry does.
            first = throttled[index]
            assert failed.calls == first.calls, case
            assert kind(failed.error) == kind(first.error), case
    assert len(clean.attempt.calls) >= 14


@kinds(KINDS)
def test_a_change_made_but_not_recorded_is_recorded_by_the_retry(world: World) -> None:
    clean = clean_request(world)
    cases = 0
    for codes in CODES.values():
        for index in range(clean.applying + 1, len(clean.attempt.calls)):
            service = clean.attempt.calls[index][0]
            case, failed, applied = failed_attempt(world, clean, index, codes[service])
            if not applied or failed.error is None:
                continue
            cases += 1
            world.settle()
            retry = world.attempt()
            assert retry.error is None, f"{case}: the retry failed: {retry.error!r}"
            assert retry.result is not None
            assert retry.result["ok"] is True, f"{case}: {retry.result}"
            records = list(world.audit().values())
            assert [recorded(r) for r in records] == [recorded(clean.record)], case
            notices = failed.notices + retry.notices
            assert notices, f"{case}: no notice"
            assert all(n == clean.attempt.notices[0] for n in notices), case
    assert cases >= 2


@kinds(ALL_KINDS)
def test_a_redelivery_after_success_changes_and_records_nothing_new(world: World) -> None:
    first = world.attempt()
    assert first.result is not None
    assert first.result["ok"] is True
    records, serving = world.audit(), world.serving()
    world.settle()
    again = world.attempt()
    assert again.error is None, again.error
    assert again.result is not None
    assert again.result["ok"] is True, again.result
    assert world.audit() == records
    assert world.serving() == serving
    assert again.notices == []
    assert ("sagemaker", "DeleteEndpoint") not in again.calls
    if world.stack is not None:
        assert world.stack.updates == 1
        assert ("cloudformation", "UpdateStack") not in again.calls
