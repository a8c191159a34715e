"""The grants of the role a drift check's SageMaker Processing job runs as (mlops.core.drift_job),
in the form of mlops.core.permissions: the serving stack renders them into the role's policy,
and the embedded default judges what its job runner does with that role against them."""

from __future__ import annotations

from mlops.core import drift_job, names
from mlops.core.config import PlatformConfig
from mlops.core.permissions import Grant, _arn, _objects


def drift_processing(config: PlatformConfig) -> list[Grant]:
    """The role a drift check's Processing job runs as: SageMaker reads the window's capture
    files and the job's task into the instances, writes their summaries back, pulls the drift
    image, and the jobs log. The container itself has no network and no credentials."""
    endpoint = config.endpoint_name
    jobs = drift_job.files_prefix(endpoint)
    log_group = _arn("logs", "log-group:/aws/sagemaker/ProcessingJobs:*")
    return [
        Grant(
            "ReadWindow",
            ("s3:GetObject",),
            (_objects("capture", f"{names.CAPTURE_PREFIX}/{endpoint}/"),),
            "SageMaker downloads the capture files the job's manifest names (this endpoint's "
            "only) into the instances, each its share.",
        ),
        Grant(
            "ReadJobInputs",
            ("s3:GetObject",),
            (_objects("reports", jobs),),
            "The manifest of the window's files and the task every instance reads, written by "
            "the drift function under the job's own prefix.",
        ),
        Grant(
            "ListJobInputs",
            ("s3:ListBucket",),
            ("{reports_bucket_arn}",),
            "The task input is a prefix (S3Prefix): SageMaker lists it.",
            {"StringLike": {"s3:prefix": [f"{jobs}*"]}},
        ),
        Grant(
            "WriteSummaries",
            ("s3:PutObject",),
            (_objects("reports", f"{jobs}*/{drift_job.OUTPUT}/"),),
            "SageMaker uploads each instance's summary to the job's output prefix.",
        ),
        Grant(
            "DataKey",
            ("kms:Decrypt", "kms:GenerateDataKey"),
            ("{data_key_arn}",),
            "Capture and reports are encrypted with the data key, and so are the job's output "
            "and volumes.",
        ),
        Grant(
            "VolumeKey",
            ("kms:CreateGrant",),
            ("{data_key_arn}",),
            "SageMaker takes a grant on the data key for each instance's encrypted volume.",
            {"Bool": {"kms:GrantIsForAWSResource": "true"}},
        ),
        Grant(
            "PullImageToken",
            ("ecr:GetAuthorizationToken",),
            ("*",),
            "SageMaker pulls the drift function's image for the job; ECR's login token takes "
            "no resource ARN.",
        ),
        Grant(
            "PullImage",
            ("ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage"),
            (
                _arn(
                    "ecr",
                    "repository/cdk-{bootstrap_qualifier}-container-assets-{account}-{region}",
                ),
            ),
            "The drift image is a CDK asset, in the bootstrap's container asset repository.",
        ),
        Grant(
            "JobLogs",
            (
                *(() if config.create_job_log_groups else ("logs:CreateLogGroup",)),
                "logs:CreateLogStream",
                "logs:PutLogEvents",
                "logs:DescribeLogStreams",
            ),
            (log_group,),
            "SageMaker writes each instance's output to a stream of /aws/sagemaker/"
            "ProcessingJobs, named at run time.",
        ),
        Grant(
            "JobMetrics",
            ("cloudwatch:PutMetricData",),
            ("*",),
            "SageMaker publishes the instances' metrics; PutMetricData takes no resource ARN, "
            "limited to the processing jobs' namespace.",
            {"StringEquals": {"cloudwatch:namespace": "/aws/sagemaker/ProcessingJobs"}},
        ),
        *_vpc(config),
    ]


def _vpc(config: PlatformConfig) -> list[Grant]:
    """With vpc_subnet_ids, the jobs run in the stage's subnets: what SageMaker does with the
    role to attach their instances (SageMaker's guide for jobs in a VPC), scoped as far as EC2
    allows: interfaces only in those subnets, with those security groups."""
    if not config.uses_vpc:
        return []
    subnets = tuple(_arn("ec2", f"subnet/{s}") for s in config.vpc_subnet_ids)
    groups = tuple(_arn("ec2", f"security-group/{g}") for g in config.vpc_security_group_ids)
    return [
        Grant(
            "VpcDescribe",
            (
                "ec2:DescribeNetworkInterfaces",
                "ec2:DescribeVpcs",
                "ec2:DescribeDhcpOptions",
                "ec2:DescribeSubnets",
                "ec2:DescribeSecurityGroups",
            ),
            ("*",),
            "SageMaker reads the subnets and security groups it attaches the instances to; "
            "EC2's Describe actions take no resource ARN. Read-only.",
        ),
        Grant(
            "VpcInterfaces",
            ("ec2:CreateNetworkInterface",),
            (*subnets, *groups),
            "Each instance's network interface, in the configured subnets and groups only.",
        ),
        Grant(
            "VpcInterfaceLifecycle",
            (
                "ec2:CreateNetworkInterfacePermission",
                "ec2:DeleteNetworkInterface",
                "ec2:DeleteNetworkInterfacePermission",
            ),
            (_arn("ec2", "network-interface/*"),),
            "SageMaker shares and removes the interfaces it created; their ids exist only at "
            "run time, so by condition on their subnet.",
            {"ArnEquals": {"ec2:Subnet": list(subnets)}},
        ),
    ]
