"""SageMaker, CloudWatch, EventBridge, Logs, CloudFormation, Lambda and STS calls -> IAM requests."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import unquote, urlparse

from mlops.local.iam.data_calls import s3_get, ssm_parameter
from mlops.local.iam.mapping import PLACEHOLDER_STACK_ID, TABLE, Call, Context, maps, simple
from mlops.local.iam.simulator import IamRequest

# SageMaker ------------------------------------------------------------------------------------


def sagemaker(kind: str, param: str) -> Callable[[Call], str]:
    """The ARN of the resource named (or given by ARN) in ``param``; names keep their case."""

    def resource(call: Call) -> str:
        value = str(call.require(param))
        return value if value.startswith("arn:") else call.arn("sagemaker", f"{kind}/{value}")

    return resource


SAGEMAKER: dict[str, tuple[str, str]] = {
    "DescribeEndpoint": ("endpoint", "EndpointName"),
    "UpdateEndpointWeightsAndCapacities": ("endpoint", "EndpointName"),
    "UpdateEndpoint": ("endpoint", "EndpointName"),
    "DeleteEndpoint": ("endpoint", "EndpointName"),
    "DescribeEndpointConfig": ("endpoint-config", "EndpointConfigName"),
    "DescribeModel": ("model", "ModelName"),
    "DescribeModelPackage": ("model-package", "ModelPackageName"),
    "DescribeModelPackageGroup": ("model-package-group", "ModelPackageGroupName"),
    "StartPipelineExecution": ("pipeline", "PipelineName"),
    "DescribePipeline": ("pipeline", "PipelineName"),
    "ListPipelineExecutions": ("pipeline", "PipelineName"),
    "DescribePipelineExecution": ("pipeline-execution", "PipelineExecutionArn"),
    "ListPipelineExecutionSteps": ("pipeline-execution", "PipelineExecutionArn"),
    "StopPipelineExecution": ("pipeline-execution", "PipelineExecutionArn"),
    "DescribeMlflowTrackingServer": ("mlflow-tracking-server", "TrackingServerName"),
}
for _operation, (_kind, _param) in SAGEMAKER.items():
    TABLE[("sagemaker", _operation)] = simple(_operation, sagemaker(_kind, _param))


TABLE[("sagemaker", "DescribeProcessingJob")] = simple(
    "DescribeProcessingJob", sagemaker("processing-job", "ProcessingJobName")
)
TABLE[("sagemaker", "StopProcessingJob")] = simple(
    "StopProcessingJob", sagemaker("processing-job", "ProcessingJobName")
)


@maps("sagemaker", "CreateProcessingJob")
def create_processing_job(call: Call) -> list[IamRequest]:
    """Authorized on the new job with the request's condition keys, and iam:PassRole of its
    role to SageMaker (the caller's)."""
    cluster = call.require("ProcessingResources")["ClusterConfig"]
    network = call.params.get("NetworkConfig") or {}
    context: Context = {
        "sagemaker:InstanceTypes": [str(cluster["InstanceType"])],
        "sagemaker:NetworkIsolation": "true" if network.get("EnableNetworkIsolation") else "false",
    }
    for key, value in (
        ("sagemaker:VolumeKmsKeyArn", cluster.get("VolumeKmsKeyId")),
        (
            "sagemaker:OutputKmsKeyArn",
            (call.params.get("ProcessingOutputConfig") or {}).get("KmsKeyId"),
        ),
        (
            "sagemaker:MaxRuntimeInSeconds",
            (call.params.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds"),
        ),
    ):
        if value is not None:
            context[key] = call.key_arn(str(value)) if "Kms" in key else str(value)
    vpc = network.get("VpcConfig")
    if vpc:
        context["sagemaker:VpcSubnets"] = list(vpc["Subnets"])
        context["sagemaker:VpcSecurityGroupIds"] = list(vpc["SecurityGroupIds"])
    resource = sagemaker("processing-job", "ProcessingJobName")(call)
    passed: Context = {"iam:PassedToService": "sagemaker.amazonaws.com"}
    return [
        call.request("CreateProcessingJob", resource, context),
        call.request("iam:PassRole", str(call.require("RoleArn")), passed),
    ]


@maps("sagemaker", "UpdateModelPackage")
def sagemaker_update_package(call: Call) -> list[IamRequest]:
    status = call.params.get("ModelApprovalStatus")
    context: Context = {"sagemaker:ModelApprovalStatus": status} if status else {}
    resource = sagemaker("model-package", "ModelPackageArn")(call)
    return [call.request("UpdateModelPackage", resource, context)]


# A list call naming no resource is authorized on "*": the statement must grant "*".
TABLE[("sagemaker", "ListModelPackages")] = simple("ListModelPackages", lambda call: "*")
TABLE[("sagemaker", "ListModelPackageGroups")] = simple("ListModelPackageGroups", lambda c: "*")


@maps("sagemaker-runtime", "InvokeEndpoint")
def invoke_endpoint(call: Call) -> list[IamRequest]:
    target = call.params.get("TargetModel")
    context: Context = {"sagemaker:TargetModel": target} if target else {}
    resource = sagemaker("endpoint", "EndpointName")(call)
    return [call.request("InvokeEndpoint", resource, context)]


# CloudWatch, EventBridge, Logs ----------------------------------------------------------------


def alarm(call: Call, name: str) -> str:
    return call.arn("cloudwatch", f"alarm:{name}")


@maps("cloudwatch", "DescribeAlarms")
def describe_alarms(call: Call) -> list[IamRequest]:
    names = call.params.get("AlarmNames")
    if not names:  # every alarm (or a prefix of names): the grant must cover all alarms
        return [call.request("DescribeAlarms", alarm(call, "*"))]
    return [call.request("DescribeAlarms", alarm(call, name)) for name in names]


@maps("cloudwatch", "DeleteAlarms")
def delete_alarms(call: Call) -> list[IamRequest]:
    return [call.request("DeleteAlarms", alarm(call, n)) for n in call.require("AlarmNames")]


for _operation in ("PutMetricAlarm", "SetAlarmState", "DescribeAlarmHistory"):
    TABLE[("cloudwatch", _operation)] = simple(
        _operation, lambda call: alarm(call, call.require("AlarmName"))
    )


@maps("cloudwatch", "PutMetricData")
def put_metric_data(call: Call) -> list[IamRequest]:
    return [call.request("PutMetricData", "*", {"cloudwatch:namespace": call.require("Namespace")})]


for _operation in ("GetMetricData", "GetMetricStatistics", "ListMetrics"):
    TABLE[("cloudwatch", _operation)] = simple(_operation, lambda call: "*")


@maps("events", "PutEvents")
def put_events(call: Call) -> list[IamRequest]:
    """One request per bus, source and detail type the entries name."""
    seen: dict[tuple[str, str, str], None] = {}
    for entry in call.require("Entries"):
        bus = entry.get("EventBusName") or "default"
        seen[(bus, entry.get("Source", ""), entry.get("DetailType", ""))] = None
    requests = []
    for bus, source, detail_type in seen:
        arn = bus if bus.startswith("arn:") else call.arn("events", f"event-bus/{bus}")
        context: Context = {"events:source": source, "events:detail-type": detail_type}
        requests.append(call.request("PutEvents", arn, {k: v for k, v in context.items() if v}))
    return requests


def log_group(call: Call) -> str:
    return call.arn("logs", f"log-group:{call.require('logGroupName')}")


def log_stream(call: Call) -> str:
    return f"{log_group(call)}:log-stream:{call.require('logStreamName')}"


TABLE[("logs", "CreateLogGroup")] = simple("CreateLogGroup", log_group)
TABLE[("logs", "CreateLogStream")] = simple("CreateLogStream", log_stream)
TABLE[("logs", "PutLogEvents")] = simple("PutLogEvents", log_stream)
TABLE[("logs", "DescribeLogStreams")] = simple("DescribeLogStreams", log_group)
TABLE[("logs", "DescribeLogGroups")] = simple("DescribeLogGroups", lambda call: "*")


# CloudFormation -------------------------------------------------------------------------------


def stack(call: Call, name: str) -> str:
    if name.startswith("arn:"):
        return name
    return call.arn("cloudformation", f"stack/{name}/{PLACEHOLDER_STACK_ID}")


TABLE[("cloudformation", "ListStacks")] = simple("ListStacks", lambda call: "*")


@maps("cloudformation", "DescribeStacks", "DescribeStackEvents", "ListStackResources")
def describe_stacks(call: Call) -> list[IamRequest]:
    name = call.params.get("StackName")
    return [call.request(call.operation, stack(call, name) if name else "*")]


@maps("cloudformation", "UpdateStack", "CreateChangeSet")
def update_stack(call: Call) -> list[IamRequest]:
    name = str(call.require("StackName"))
    context: Context = {}
    for param, key in (
        ("RoleARN", "cloudformation:RoleArn"),
        ("TemplateURL", "cloudformation:TemplateUrl"),
        ("StackPolicyURL", "cloudformation:StackPolicyUrl"),
        ("ChangeSetName", "cloudformation:ChangeSetName"),
    ):
        if call.params.get(param):
            context[key] = str(call.params[param])
    if call.params.get("ResourceTypes"):
        context["cloudformation:ResourceTypes"] = list(call.params["ResourceTypes"])
    requests = [call.request(call.operation, stack(call, name), context)]
    role = call.params.get("RoleARN")
    if role:
        passed: Context = {"iam:PassedToService": "cloudformation.amazonaws.com"}
        requests.append(call.request("iam:PassRole", role, passed))
    # SSM-typed parameters are read with the caller's credentials: a value passed in the call
    # names the SSM parameter, otherwise the stack's (its default or previous value).
    stack_name = name.split("/")[1] if name.startswith("arn:") else name
    given = {
        p["ParameterKey"]: p["ParameterValue"]
        for p in call.params.get("Parameters", [])
        if "ParameterValue" in p and not p.get("UsePreviousValue")
    }
    for key, default in call.facts.stack_ssm_parameters.get(stack_name, {}).items():
        requests.append(
            call.request("ssm:GetParameters", ssm_parameter(call, given.get(key, default)))
        )
    template = call.params.get("TemplateURL")
    if template:
        bucket, key = s3_url(str(template))
        requests += s3_get(call.derived("s3", "GetObject", {"Bucket": bucket, "Key": key}))
    return requests


@maps("cloudformation", "ExecuteChangeSet")
def execute_change_set(call: Call) -> list[IamRequest]:
    name = str(call.require("ChangeSetName"))
    stack_name = call.params.get("StackName") or name.split("/")[1]
    short = name.rsplit("/", 2)[-2] if name.startswith("arn:") else name
    context: Context = {"cloudformation:ChangeSetName": short}
    return [call.request("ExecuteChangeSet", stack(call, str(stack_name)), context)]


def s3_url(url: str) -> tuple[str, str]:
    """(bucket, key) of an https S3 URL, virtual-hosted or path style."""
    parsed = urlparse(url)
    host, path = parsed.netloc, unquote(parsed.path.lstrip("/"))
    if host.startswith(("s3.", "s3-")) or host == "s3.amazonaws.com":
        bucket, _, key = path.partition("/")
        return bucket, key
    return host.split(".s3")[0], path


# Lambda, STS -----------------------------------------------------------------------------


def function(call: Call) -> str:
    """A function's ARN from a name, ARN or partial ARN; a qualified call (alias or version)
    is authorized on the qualified ARN."""
    name = str(call.require("FunctionName"))
    if name.startswith("arn:"):
        arn = name
    elif ":function:" in name:  # "123456789012:function:name[:qualifier]"
        arn = f"arn:{call.partition}:lambda:{call.region}:{name}"
    else:
        arn = call.arn("lambda", f"function:{name}")
    qualifier = call.params.get("Qualifier")
    if qualifier and len(arn.split(":")) == 7:
        arn = f"{arn}:{qualifier}"
    return arn


TABLE[("lambda", "Invoke")] = simple("lambda:InvokeFunction", function)
TABLE[("lambda", "GetFunctionConcurrency")] = simple("GetFunctionConcurrency", function)
TABLE[("lambda", "GetAccountSettings")] = simple("GetAccountSettings", lambda call: "*")


TABLE[("sts", "GetCallerIdentity")] = simple("GetCallerIdentity", lambda call: "*")
