"""Every AWS call SageMaker makes with the platform's two SageMaker roles, recorded with its
parameters while the twin does that work on the embedded default, is allowed by that role as
the synthesized templates state it (resolved with the twin's physical names), judged by the
policy evaluator:

- the pipeline's execution role (pipeline stack, ExecutionRole): the staging of each job's
  inputs and outputs, the condition step's read of the evaluation, the RegisterModel step;
- the serving stack's model role (ModelRole): reading a served package and its model
  artifacts, writing data capture.

Only that work is recorded, through the runner's ``execution_role`` and the local endpoint's
``model_role`` hooks: not the operator's dataset upload, not SageMaker's reads of its own
endpoint, config and models. And minimal: each granted action no call needs is listed with its
reason, and each statement a call needs is load-bearing (without it a call is refused).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_cdk.assertions import Template

from mlops.adapters.registry import set_approval
from mlops.adapters.resources import PlatformResources
from mlops.adapters.target import EMULATOR_ACCOUNT, AwsTarget, observe_calls
from mlops.core import names
from mlops.core.approval import on_approval
from mlops.core.config import PlatformConfig
from mlops.local.deployment import EmulatorDeployment
from mlops.local.emulator import bootstrap
from mlops.local.endpoint import LocalEndpoints, LocalEndpointServer
from mlops.local.iam.calls import CallFacts, requests_for_call
from mlops.local.iam.enforce import simulator
from mlops.local.iam.simulator import Decision, IamRequest, Identity
from mlops.local.pipeline import LocalPipelineRunner, RunOptions
from mlops.local.replay import requests, send
from pipeline_steps.schema import FEATURE_NAMES
from tests.support.iam_template import (
    Resolution,
    exports_of,
    resource_policies,
    role_policies,
    roles_assumed_by,
)

CONFIG = PlatformConfig()
ROLES = ("execution", "model")
ASSETS = f"cdk-hnb659fds-assets-{EMULATOR_ACCOUNT}-us-east-1"  # the bootstrap's asset bucket

# Granted actions that no recorded call needs, each with its reason. A new grant that no call
# needs fails the test until its reason is written here (or the grant goes).
JOBS = (
    "SageMaker Pipelines creates, describes and stops each step's job with the pipeline's "
    "role; the local runner runs the step code in-process, with no job."
)
JOB_LOGS = (
    "The processing and training containers' log driver writes the job log groups with the "
    "role; local steps log to the console."
)
ENDPOINT_LOGS = (
    "SageMaker hosting's log driver writes the endpoint's container logs with the role; the "
    "local endpoint logs to the console."
)
NOT_CALLED: dict[tuple[str, str], str] = {
    **{
        ("execution", f"sagemaker:{verb}{kind}Job"): JOBS
        for verb in ("Create", "Describe", "Stop")
        for kind in ("Processing", "Training")
    },
    ("execution", "sagemaker:AddTags"): "Pipelines tags the jobs it creates with the "
    "execution's ARN (and a tagged package, were it tagged); the local run tags nothing.",
    ("execution", "sagemaker:DescribeModelPackage"): "The RegisterModel step's model package "
    "statement, granted with CreateModelPackage for what Pipelines reads back of the new "
    "version; the local register step makes only CreateModelPackage.",
    ("execution", "sagemaker:DescribeModelPackageGroup"): "The RegisterModel step's model "
    "package statement, granted for Pipelines' check of the group; the local register step "
    "makes only CreateModelPackage.",
    ("execution", "s3:GetBucketLocation"): "SageMaker resolves each job input's and output's "
    "bucket region before staging; the local runner's client knows its region.",
    ("execution", "kms:DescribeKey"): "SageMaker validates the jobs' KMS key (volume and "
    "output encryption) when it creates them; no job is created locally.",
    ("execution", "kms:CreateGrant"): "SageMaker takes a grant on the data key for each job's "
    "encrypted ML storage volume; local steps use no volume.",
    ("execution", "iam:PassRole"): "Pipelines passes its role to each job it creates; no job "
    "is created locally.",
    ("execution", "cloudwatch:PutMetricData"): "The training job's runtime publishes its "
    "metrics under /aws/sagemaker/TrainingJobs; local training publishes none.",
    ("execution", "logs:CreateLogStream"): JOB_LOGS,
    ("execution", "logs:PutLogEvents"): JOB_LOGS,
    ("execution", "logs:DescribeLogStreams"): JOB_LOGS,
    ("model", "logs:CreateLogStream"): ENDPOINT_LOGS,
    ("model", "logs:PutLogEvents"): ENDPOINT_LOGS,
    ("model", "logs:DescribeLogStreams"): ENDPOINT_LOGS,
    ("model", "cloudwatch:PutMetricData"): "SageMaker hosting publishes the instances' "
    "metrics under /aws/sagemaker/Endpoints; the local endpoint publishes none.",
}
# Statements that grant an action some call needs, but on resources no recorded call touches:
# (role, actions, where) -> reason. Every other statement a call needs must be load-bearing.
STEP_CODE = (
    "SageMaker downloads the step code (the CDK file assets) into each job; the local runner "
    "runs pipeline_steps from this checkout."
)
# (The assets' s3:GetObject shares its statement with the datasets bucket's: CDK merges them.)
NOT_LOAD_BEARING: dict[tuple[str, str, str], str] = {
    ("execution", "s3:ListBucket", ASSETS): STEP_CODE,
}
# Calls the local endpoint makes that SageMaker hosting makes with its own service credentials,
# not the model role (the hook leaves them out; the test checks that these are all it leaves).
# DescribeModelPackage stays the role's: SageMaker resolves a model's package with the role,
# which is why the serving stack grants it (on this family's versions only).
SAGEMAKER_OWN = {
    "DescribeEndpoint": "SageMaker routes to its own endpoint's variants and weights.",
    "DescribeEndpointConfig": "SageMaker reads its own endpoint config (variants, capture).",
    "DescribeModel": "SageMaker reads its own model record to launch the container.",
}


@dataclass(frozen=True)
class Recorded:
    role: str
    step: str  # the pipeline step, or what the endpoint did ("package", "model", "capture")
    service: str
    operation: str
    params: Mapping[str, Any]

    def __str__(self) -> str:
        shown = {
            k: v for k, v in self.params.items() if k not in ("Body", "InferenceSpecification")
        }
        return f"{self.role} role, {self.step}: {self.service}.{self.operation} {shown}"


@dataclass
class Recording:
    calls: list[Recorded] = field(default_factory=list)
    package_arns: list[str] = field(default_factory=list)  # CreateModelPackage's, in order

    def hook(self, role: str) -> Callable[[str], AbstractContextManager[None]]:
        def scope(step: str) -> AbstractContextManager[None]:
            return observe_calls(
                lambda service, operation, params: self.calls.append(
                    Recorded(role, step, service, operation, params)
                )
            )

        return scope

    def of(self, role: str) -> list[Recorded]:
        return [c for c in self.calls if c.role == role]


@pytest.fixture
def resources(emulator: AwsTarget) -> PlatformResources:
    return bootstrap(emulator, CONFIG)


@pytest.fixture
def recorded(
    emulator: AwsTarget, resources: PlatformResources, tmp_path: Path
) -> Iterator[tuple[LocalEndpoints, Recording]]:
    """Two pipeline runs, both packages approved and deployed, traffic to both variants and its
    capture flushed: each role's calls recorded."""
    recording = Recording()
    runner = LocalPipelineRunner(
        target=emulator, resources=resources, config=CONFIG, mlflow_tracking_uri=None,
        execution_role=recording.hook("execution"),
    )  # fmt: skip
    deployment = EmulatorDeployment(
        sagemaker=emulator.client("sagemaker"), config=CONFIG, resources=resources
    )
    for options in (RunOptions(), RunOptions(algorithm="gradient_boosting", max_iter=50)):
        result = runner.run(options)
        assert result.registered, result.reason
        arn = result.model_package_arn or ""
        recording.package_arns.append(arn)
        set_approval(emulator.client("sagemaker"), arn, "Approved")
        deployment.deploy(on_approval(deployment.current(), arn, initial_challenger_weight=0.25))
    endpoints = LocalEndpoints(
        emulator, cache_dir=tmp_path, refresh_seconds=0, seed=7,
        model_role=recording.hook("model"),
    )  # fmt: skip
    server = LocalEndpointServer(endpoints).start()
    runtime = boto3.client(
        "sagemaker-runtime",
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106
    )
    for seed, variant in ((1, "champion"), (2, "challenger")):
        send(runtime, CONFIG.endpoint_name, requests(40, seed=seed), target_variant=variant)
    endpoints.capture.flush()
    yield endpoints, recording
    server.stop()


@pytest.fixture
def roles(
    resources: PlatformResources,
    storage_template: Template,
    pipeline_template: Template,
    serving_template: Template,
) -> tuple[dict[str, Identity], dict[str, Any]]:
    """The two SageMaker roles of the templates, resolved with the twin's buckets and key; and
    the storage template's resource policies (the data key's, which trusts the account so the
    roles' grants decide; the buckets', which deny only insecure transport)."""
    storage = storage_template.to_json()
    bucket_ids = {
        output["Export"]["Name"].removeprefix(f"{CONFIG.prefix}-").removesuffix("-bucket-name"): (
            output["Value"]["Ref"]
        )
        for output in storage["Outputs"].values()
        if output.get("Export", {}).get("Name", "").endswith("-bucket-name")
    }
    key_id = next(lid for lid, r in storage["Resources"].items() if r["Type"] == "AWS::KMS::Key")
    storage_resolution = Resolution(
        stack_name=names.storage_stack(CONFIG),
        names={lid: resources.bucket(role) for role, lid in bucket_ids.items()},
        attributes={f"{key_id}.Arn": resources.key_arn or ""},
    )
    exports = exports_of(storage, storage_resolution)
    resource_docs = resource_policies(storage, storage_resolution)
    assert resources.key_arn in resource_docs, resource_docs.keys()
    identities = {}
    for role, template, stack in (
        ("execution", pipeline_template, names.pipeline_stack(CONFIG)),
        ("model", serving_template, names.serving_stack(CONFIG)),
    ):
        document = template.to_json()
        resolution = Resolution(stack_name=stack, exports=exports)
        # The drift checks' Processing job role: judged with the functions' calls
        # (tests/infra/test_iam_recorded_calls.py), where the twin runs its jobs.
        (role_id,) = [
            r for r in roles_assumed_by(document, "sagemaker.amazonaws.com", resolution)
            if document["Resources"][r]["Properties"].get("RoleName")
            != names.drift_processing_role(CONFIG)
        ]  # fmt: skip
        resolved = role_policies(document, resolution)[role_id]
        assert not resolved.external_policy_arns, resolved.external_policy_arns
        identities[role] = Identity(resolved.arn, resolved.policies, session_name="SageMaker")
    return identities, resource_docs


def facts(resources: PlatformResources) -> CallFacts:
    """Every platform bucket is encrypted with the data key."""
    buckets = ("datasets", "artifacts", "capture", "reports")
    return CallFacts(bucket_keys={resources.bucket(b): resources.key_arn or "" for b in buckets})


def iam_requests(
    call: Recorded, resources: PlatformResources, package_arns: Iterator[str]
) -> list[IamRequest]:
    if (call.service, call.operation) == ("sagemaker", "CreateModelPackage"):
        # Not in mlops.local.iam.calls yet: authorized on the new version's ARN, in its group
        # (the model registry's guide grants it on model-package/<group>/*).
        status = str(call.params["ModelApprovalStatus"])
        return [
            IamRequest(
                "sagemaker:CreateModelPackage",
                next(package_arns),
                {"aws:RequestedRegion": "us-east-1", "sagemaker:ModelApprovalStatus": status},
            )
        ]
    return requests_for_call(
        call.service, call.operation, call.params,
        account=EMULATOR_ACCOUNT, region="us-east-1", facts=facts(resources),
    )  # fmt: skip


def judged(
    resources: PlatformResources,
    recording: Recording,
    roles: tuple[dict[str, Identity], dict[str, Any]],
) -> dict[str, list[tuple[Recorded, Decision]]]:
    identities, resource_docs = roles
    package_arns = iter(recording.package_arns)
    decisions: dict[str, list[tuple[Recorded, Decision]]] = {}
    for role in ROLES:
        pairs = [
            (call, request)
            for call in recording.of(role)
            for request in iam_requests(call, resources, package_arns)
        ]
        answers = simulator().evaluate_many(
            [r for _, r in pairs], identities[role], resource_policies=resource_docs
        )
        decisions[role] = [(call, d) for (call, _), d in zip(pairs, answers, strict=True)]
    assert next(package_arns, None) is None, "a registered package made no CreateModelPackage"
    return decisions


def test_every_call_of_the_sagemaker_roles_is_allowed_and_every_grant_is_needed(
    resources: PlatformResources,
    recorded: tuple[LocalEndpoints, Recording],
    roles: tuple[dict[str, Identity], dict[str, Any]],
) -> None:
    endpoints, recording = recorded
    identities, resource_docs = roles
    assert_hook_leaves_out_only_sagemakers_own_reads(endpoints, recording)
    decisions = judged(resources, recording, roles)

    denied = [f"{call}\n  {d}" for role in ROLES for call, d in decisions[role] if not d.allowed]
    assert not denied, "denied by the template's role:\n" + "\n".join(denied)

    made = {role: {d.request for _, d in decisions[role]} for role in ROLES}
    actions = {role: {r.action for r in made[role]} for role in ROLES}
    # The staging, the condition's read and the registration; KMS through S3 both ways.
    assert actions["execution"] == {
        "s3:ListBucket", "s3:GetObject", "s3:PutObject", "kms:Decrypt", "kms:GenerateDataKey",
        "sagemaker:CreateModelPackage",
    }, actions["execution"]  # fmt: skip
    assert {c.step for c in recording.of("execution")} == {
        "Preprocess", "Train", "Evaluate", "CheckMetric", "Register",
    }  # fmt: skip
    # The operator's dataset upload is not the role's: the role only reads the datasets bucket.
    datasets = f"arn:aws:s3:::{resources.datasets_bucket}/"
    assert not [r for r in made["execution"] if r.action == "s3:PutObject" and
                r.resource.startswith(datasets)]  # fmt: skip
    assert actions["model"] == {
        "sagemaker:DescribeModelPackage", "s3:GetObject", "kms:Decrypt", "s3:PutObject",
        "kms:GenerateDataKey",
    }, actions["model"]  # fmt: skip
    assert {c.step for c in recording.of("model")} == {"package", "model", "capture"}
    capture = f"arn:aws:s3:::{resources.capture_bucket}/{names.CAPTURE_PREFIX}/"
    assert {
        r.resource.startswith(capture) for r in made["model"] if r.action == "s3:PutObject"
    } == {True}

    # Minimal: what is granted and never asked for is explained, and nothing else is.
    unexplained = {}
    for role, identity in identities.items():
        granted = {
            a for _, statement in _statements(identity) for a in _as_list(statement["Action"])
        }
        for action in granted - actions[role]:
            unexplained[(role, action)] = NOT_CALLED.get((role, action))
    assert {k for k, why in unexplained.items() if why is None} == set()
    assert set(unexplained) == set(NOT_CALLED), set(NOT_CALLED) - set(unexplained)

    # Every statement a call needs is load-bearing: without it, a call is refused.
    spare = set()
    for role, identity in identities.items():
        for _, statement, without in _each_statement_removed(identity):
            if not set(_as_list(statement["Action"])) & actions[role]:
                continue
            answers = simulator().evaluate_many(
                sorted(made[role], key=str), without, resource_policies=resource_docs
            )
            if not [d for d in answers if not d.allowed]:
                spare.add(
                    (role, " ".join(sorted(_as_list(statement["Action"]))), _where(statement))
                )
    assert spare == set(NOT_LOAD_BEARING), (
        f"statements nothing needs, unexplained: {spare - set(NOT_LOAD_BEARING)}; "
        f"explained but needed or gone: {set(NOT_LOAD_BEARING) - spare}"
    )


def assert_hook_leaves_out_only_sagemakers_own_reads(
    endpoints: LocalEndpoints, recording: Recording
) -> None:
    """One invocation's calls, all of them (on this thread): those outside the model role's
    hook are SageMaker's reads of its own endpoint, config and model, and nothing else."""
    every: list[tuple[str, Mapping[str, Any]]] = []
    before = len(recording.calls)
    row = requests(1, seed=3)[list(FEATURE_NAMES)].to_numpy(dtype=float)[0]
    with observe_calls(lambda service, operation, params: every.append((operation, params))):
        endpoints.invoke(CONFIG.endpoint_name, ",".join(f"{v:g}" for v in row).encode(),
                         "text/csv", "application/json", target_variant="challenger")  # fmt: skip
    # One call's observers all receive the same params object.
    in_role = {id(c.params) for c in recording.calls[before:]}
    own = {operation for operation, params in every if id(params) not in in_role}
    assert own == set(SAGEMAKER_OWN), own
    assert [c.operation for c in recording.calls[before:]] == ["DescribeModelPackage"] * 2


def _statements(identity: Identity) -> Iterator[tuple[str, dict[str, Any]]]:
    for document in identity.named_policies():
        for statement in _as_list(document["policy"]["Statement"]):
            yield document["name"], statement


def _each_statement_removed(identity: Identity) -> Iterator[tuple[str, dict[str, Any], Identity]]:
    documents = {d["name"]: d["policy"] for d in identity.named_policies()}
    for name, document in documents.items():
        statements = _as_list(document["Statement"])
        for i, statement in enumerate(statements):
            reduced = {**document, "Statement": statements[:i] + statements[i + 1 :]}
            yield name, statement, Identity(identity.role_arn, {**documents, name: reduced})


def _where(statement: Mapping[str, Any]) -> str:
    """A statement's resources, S3 ones by bucket (asset keys change with the code)."""
    return ", ".join(sorted({
        r.removeprefix("arn:aws:s3:::").split("/")[0] if r.startswith("arn:aws:s3:::") else r
        for r in _as_list(statement["Resource"])
    }))  # fmt: skip


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_resolved_roles_are_json(roles: tuple[dict[str, Identity], dict[str, Any]]) -> None:
    """The identities handed to the evaluator are plain JSON (no tokens left)."""
    identities, resource_docs = roles
    text = json.dumps([i.named_policies() for i in identities.values()] + [resource_docs])
    assert "Fn::" not in text
    assert '"Ref"' not in text
