"""Faults the per-call sweep (test_faults_deploy) cannot make with one failure, and what each
deployment does about them: the weights partly written, a restore that fails too, an update
that started although UpdateStack answered with a server error, a stack that is not there;
the twin's endpoint that cannot be created again, alarms that cannot be made, an endpoint that
cannot be described."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from mlops.adapters.stack_deployment import DeploymentError, WeightsNotRestored
from mlops.core.names import CHALLENGER, CHAMPION
from mlops.local.deployment import EndpointNotRestored
from tests.local import test_faults_deploy
from tests.local.test_faults_deploy import AFTER, BEFORE, WEIGHTS, World, kinds

world, worlds = test_faults_deploy.world, test_faults_deploy.worlds  # the fixtures

STACK_DEPLOY = kinds([("stack", "deploy")])
TWIN_DEPLOY = kinds([("twin", "deploy")])


def nothing_changed(world: World, error: Exception | None) -> None:
    assert error is not None
    assert world.serving() == BEFORE[world.action]
    assert world.audit() == {}
    if world.stack is not None:
        assert world.ssm_weights() == BEFORE[world.action][1]
        assert world.stack.updates == 0


@STACK_DEPLOY
def test_weights_partly_written_are_put_back(world: World) -> None:
    assert world.stack is not None
    failed = world.attempt(plan={("ssm", "PutParameter"): [None, "ThrottlingException"]})
    assert isinstance(failed.error, ClientError)
    nothing_changed(world, failed.error)
    assert world.stack.requests == []  # no update was asked for


@STACK_DEPLOY
@pytest.mark.parametrize(
    ("puts", "holds"),
    [
        # Both written, the update throttled, the first weight put back fails.
        ([None, None, "InternalServerError"], {CHAMPION: "0.9", CHALLENGER: "0.1"}),
        # The second write fails, then so does putting back the first.
        ([None, "ThrottlingException", "InternalServerError"], {CHAMPION: "0.9", CHALLENGER: "0"}),
    ],
)  # fmt: skip
def test_a_restore_that_fails_says_so_naming_the_weights(
    world: World, puts: list[str | None], holds: dict[str, str]
) -> None:
    failed = world.attempt(
        plan={("ssm", "PutParameter"): puts, ("cloudformation", "UpdateStack"): ["Throttling"]}
    )
    # Loud: not a refusal the Lambda answers (and nobody retries), an error that raises.
    assert isinstance(failed.error, WeightsNotRestored), failed
    message = str(failed.error)
    assert "{'champion': '1', 'challenger': '0'}" in message  # the weights in force
    for variant, value in holds.items():  # what SSM holds now, by parameter
        assert f"{WEIGHTS[variant]}={value}" in message, message
    assert {v: f"{w:g}" for v, w in world.ssm_weights().items()} == holds
    assert world.serving() == BEFORE[world.action]  # the stack did not change
    assert world.audit() == {}


@STACK_DEPLOY
def test_an_update_that_started_despite_a_server_error_keeps_its_weights(world: World) -> None:
    assert world.stack is not None
    world.stack.fail_after_update = "InternalFailure"
    done = world.attempt()
    assert done.error is None, done.error
    assert done.result is not None
    assert done.result["ok"] is True
    assert done.result["stack_status"] == "UPDATE_IN_PROGRESS"
    assert world.serving() == AFTER[world.action]
    assert world.ssm_weights() == AFTER[world.action][1]  # what the update resolved
    assert world.stack.updates == 1


@STACK_DEPLOY
def test_only_a_missing_stack_is_not_deployed(world: World) -> None:
    assert world.stack is not None
    throttled = world.attempt(plan={("cloudformation", "DescribeStacks"): ["Throttling"]})
    assert isinstance(throttled.error, ClientError)  # raised: the Lambda retries
    assert not isinstance(throttled.error, DeploymentError)
    nothing_changed(world, throttled.error)
    name, world.stack.name = world.stack.name, "gone"
    try:
        missing = world.attempt()
    finally:
        world.stack.name = name
    assert missing.result is not None
    assert missing.result["ok"] is False  # refused: retrying cannot help
    assert "is not deployed" in missing.result["error"]


@TWIN_DEPLOY
def test_an_endpoint_that_cannot_be_created_again_serves_what_it_served(world: World) -> None:
    failed = world.attempt(plan={("sagemaker", "CreateEndpoint"): ["ThrottlingException"]})
    assert ("sagemaker", "DeleteEndpoint") in failed.calls
    nothing_changed(world, failed.error)
    retry = world.attempt()
    assert retry.error is None, retry.error
    assert world.serving() == AFTER[world.action]


@TWIN_DEPLOY
def test_an_endpoint_put_back_neither_way_says_so_naming_both_configs(world: World) -> None:
    before = next(name for name, (s, _) in world.configs.items() if s == BEFORE["deploy"][0])
    after = next(name for name, (s, _) in world.configs.items() if s == AFTER["deploy"][0])
    failed = world.attempt(
        plan={("sagemaker", "CreateEndpoint"): ["ThrottlingException", "InternalFailure"]}
    )
    assert isinstance(failed.error, EndpointNotRestored), failed
    assert before in str(failed.error)
    assert after in str(failed.error)
    assert world.serving() is None  # as the error says: nothing serves


@TWIN_DEPLOY
def test_alarms_that_cannot_be_made_leave_the_endpoint_as_it_was(world: World) -> None:
    failed = world.attempt(plan={("cloudwatch", "DescribeAlarms"): ["Throttling"]})
    nothing_changed(world, failed.error)
    assert ("sagemaker", "DeleteEndpoint") not in failed.calls


@TWIN_DEPLOY
def test_an_endpoint_that_cannot_be_described_is_not_taken_for_none(world: World) -> None:
    assert world.deployment is not None
    world.faults.fail("sagemaker", "DescribeEndpoint", "ThrottlingException")
    with pytest.raises(ClientError, match="Throttling"):
        world.deployment.current()
    world.faults.clear()
    assert world.deployment.current() == BEFORE[world.action][0]
    world.raw["sagemaker"].delete_endpoint(EndpointName=test_faults_deploy.ENDPOINT)
    assert world.deployment.current() == type(BEFORE[world.action][0])()  # none yet
