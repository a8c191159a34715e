"""What AWS authorizes for one API call: botocore (service, operation, params) -> IAM requests.

Most calls are one request, ``<prefix>:<Operation>`` on the resource the parameters name (the
Service Authorization Reference gives the action and the ARN format). Some differ: S3's
ListObjectsV2 is ``s3:ListBucket``, HeadObject is ``s3:GetObject``, a multipart upload's parts
are ``s3:PutObject``, Lambda's Invoke is ``lambda:InvokeFunction``. Some calls make the service
act with the caller's credentials, and those requests are listed too:

- S3 writes to (reads from) a bucket encrypted with a KMS key: ``kms:GenerateDataKey``
  (``kms:Decrypt``) on the key, ``kms:ViaService=s3.<region>.amazonaws.com``;
- SNS Publish to (SQS SendMessage to) an encrypted topic (queue): ``kms:GenerateDataKey`` and
  ``kms:Decrypt`` on its key;
- CloudFormation UpdateStack/CreateChangeSet with a RoleARN: ``iam:PassRole`` with
  ``iam:PassedToService=cloudformation.amazonaws.com``; with SSM-typed stack parameters:
  ``ssm:GetParameters`` on each; with a TemplateURL: ``s3:GetObject`` on the template.

``CallFacts`` says which resources are encrypted and with what; a resource missing from it is
taken as not KMS-encrypted. An operation not in the table raises ``UnmappedCall``: code that
starts calling something new fails the permission tests until the call is mapped here.
``sts:GetCallerIdentity`` needs no permission (AWS allows it to every principal; so does the
evaluator).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlops.local.iam import data_calls, service_calls
from mlops.local.iam.mapping import PLACEHOLDER_STACK_ID, TABLE, Call, CallFacts, UnmappedCall
from mlops.local.iam.simulator import IamRequest

__all__ = [
    "PLACEHOLDER_STACK_ID",
    "CallFacts",
    "UnmappedCall",
    "mapped_operations",
    "requests_for_call",
]
# The modules whose operations fill TABLE (imported for that).
MAPPED = (data_calls, service_calls)


def requests_for_call(
    service: str,
    operation: str,
    params: Mapping[str, Any],
    *,
    account: str,
    region: str,
    facts: CallFacts,
    partition: str = "aws",
) -> list[IamRequest]:
    """The IAM requests AWS authorizes for one call, in the order AWS makes them.

    ``service`` is botocore's service name (``client.meta.service_model.service_name``),
    ``operation`` the API operation ("PutObject"), ``params`` the call's API parameters.
    """
    mapper = TABLE.get((service, operation))
    if mapper is None:
        raise UnmappedCall(service, operation)
    return mapper(Call(service, operation, params, account, region, partition, facts))


def mapped_operations() -> list[tuple[str, str]]:
    """Every (service, operation) the table maps."""
    return sorted(TABLE)
