"""Pin the serving stack's logical IDs.

A changed logical ID makes CloudFormation create a new resource and delete the old one. The
endpoint, its alarms and the dashboard have fixed physical names, so the new one cannot be
created (or the old one is gone); retained keys, log groups and queues are orphaned. The stack
groups its resources into constructs but keeps the IDs it was first deployed with
(stacks/serving/logical_ids.py). If this test fails, the change renames deployed resources:
don't update the lists without a migration plan.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from stacks.platform import Platform
from stacks.serving.logical_ids import make_unique_id

BuildFn = Callable[..., tuple[cdk.App, Platform]]

PINNED_TYPES = (
    "AWS::SageMaker::Endpoint",
    "AWS::SageMaker::EndpointConfig",
    "AWS::SageMaker::Model",
    "AWS::ApplicationAutoScaling::ScalableTarget",
    "AWS::ApplicationAutoScaling::ScalingPolicy",
    "AWS::CloudWatch::Alarm",
    "AWS::CloudWatch::Dashboard",
    "AWS::Lambda::Function",
    "AWS::Events::Rule",
    # Named after the rule's path and the function's: the hardest case for the flat IDs.
    "AWS::Lambda::Permission",
    "AWS::KMS::Key",
    "AWS::Logs::LogGroup",
    "AWS::SQS::Queue",
    "AWS::SNS::Topic",
)

# Read from the template synthesized before the stack was split into constructs.
DEFAULT_IDS = {
    "Endpoint": "AWS::SageMaker::Endpoint",
    # Added later (the endpoint's own log group, created before the endpoint).
    "EndpointLogs": "AWS::Logs::LogGroup",
    "EndpointConfig": "AWS::SageMaker::EndpointConfig",
    "ChallengerModel": "AWS::SageMaker::Model",
    "ChampionModel": "AWS::SageMaker::Model",
    "ChallengerScaling": "AWS::ApplicationAutoScaling::ScalableTarget",
    "ChampionScaling": "AWS::ApplicationAutoScaling::ScalableTarget",
    "ChallengerScalingPolicy": "AWS::ApplicationAutoScaling::ScalingPolicy",
    "ChampionScalingPolicy": "AWS::ApplicationAutoScaling::ScalingPolicy",
    "Challenger5XxAlarm3FA71D28": "AWS::CloudWatch::Alarm",
    "ChallengerDriftAlarmB86D4940": "AWS::CloudWatch::Alarm",
    "ChallengerLatencyAlarm03DDB642": "AWS::CloudWatch::Alarm",
    "Champion5XxAlarmC74C63D4": "AWS::CloudWatch::Alarm",
    "ChampionDriftAlarmEF24E6E9": "AWS::CloudWatch::Alarm",
    "ChampionLatencyAlarmF3FD542D": "AWS::CloudWatch::Alarm",
    "DeployDeadLettersAlarm5EE8E383": "AWS::CloudWatch::Alarm",
    "DeployErrorsAlarmF84581DB": "AWS::CloudWatch::Alarm",
    "DriftDeadLettersAlarmA2624030": "AWS::CloudWatch::Alarm",
    "DriftErrorsAlarm73FD5036": "AWS::CloudWatch::Alarm",
    "TrafficDeadLettersAlarm6D7EE63A": "AWS::CloudWatch::Alarm",
    "TrafficErrorsAlarmCE2BE434": "AWS::CloudWatch::Alarm",
    "Dashboard9E4231ED": "AWS::CloudWatch::Dashboard",
    "DeployFunctionF5CD5801": "AWS::Lambda::Function",
    "DriftFunctionC635B4D0": "AWS::Lambda::Function",
    "TrafficFunctionAF00632C": "AWS::Lambda::Function",
    "ApprovalRule5FEEC60A": "AWS::Events::Rule",
    "ChallengerAlarmRuleBF8E9806": "AWS::Events::Rule",
    "DriftSchedule0B9D0FD2": "AWS::Events::Rule",
    "ApprovalRuleAllowEventRulemlopsdevservingDeployFunction75DD350D8B05480C": "AWS::Lambda::Permission",
    "ChallengerAlarmRuleAllowEventRulemlopsdevservingTrafficFunctionD4BE0F14031865B3": "AWS::Lambda::Permission",
    "DriftScheduleAllowEventRulemlopsdevservingDriftFunctionE8FCFB17F122A3DD": "AWS::Lambda::Permission",
    # Added later (a drift check run as a Processing job: its end reaches the drift function).
    "DriftJobRule9047F12A": "AWS::Events::Rule",
    "DriftJobRuleAllowEventRulemlopsdevservingDriftFunctionE8FCFB173980C5E8": "AWS::Lambda::Permission",
    "OpsKeyD2AEB59B": "AWS::KMS::Key",
    "DeployLogs6AB4AD5F": "AWS::Logs::LogGroup",
    "DriftLogsBBEDFA1D": "AWS::Logs::LogGroup",
    "TrafficLogs7D8BE00B": "AWS::Logs::LogGroup",
    "DeployDeadLetters6C85C8E2": "AWS::SQS::Queue",
    "DriftDeadLetters7AE41BAB": "AWS::SQS::Queue",
    "TrafficDeadLetters6C0EE61C": "AWS::SQS::Queue",
    "Alerts91F83244": "AWS::SNS::Topic",
}

# With retrain_on_champion_drift, the champion's drift alarm also starts the drift function.
RETRAIN_IDS = {
    **DEFAULT_IDS,
    "ChampionDriftRule1D2B1D30": "AWS::Events::Rule",
    "ChampionDriftRuleAllowEventRulemlopsdevservingDriftFunctionE8FCFB179961407E": "AWS::Lambda::Permission",
}


def pinned_ids(template: Template) -> dict[str, str]:
    resources: dict[str, Any] = template.to_json()["Resources"]
    return {
        logical_id: resource["Type"]
        for logical_id, resource in resources.items()
        if resource["Type"] in PINNED_TYPES
    }


@pytest.fixture(scope="module")
def retrain_platform(build: BuildFn) -> tuple[cdk.App, Platform]:
    return build(retrain_on_champion_drift=True)


def test_serving_logical_ids(serving_template: Template) -> None:
    assert pinned_ids(serving_template) == DEFAULT_IDS


def test_serving_logical_ids_with_retraining(
    retrain_platform: tuple[cdk.App, Platform],
) -> None:
    assert pinned_ids(Template.from_stack(retrain_platform[1].serving)) == RETRAIN_IDS


def test_unique_ids_are_computed_as_cdk_does(
    default_platform: tuple[cdk.App, Platform],
) -> None:
    # The stack's allocation re-implements CDK's makeUniqueId: on every real construct path of
    # the stack (groups included), it must agree with CDK's own Names.node_unique_id.
    stack = default_platform[1].serving
    for construct in stack.node.find_all():
        path = [scope.node.id for scope in construct.node.scopes[1:]]
        assert make_unique_id(path) == cdk.Names.node_unique_id(construct.node), path
