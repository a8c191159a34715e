"""S3, SNS, SQS, SSM and KMS calls -> IAM requests (with the KMS requests they imply)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlparse

from mlops.local.iam.mapping import TABLE, Call, Context, UnmappedCall, maps, simple
from mlops.local.iam.simulator import IamRequest

# S3 -------------------------------------------------------------------------------------------


def s3_object(call: Call, bucket: str | None = None, key: str | None = None) -> str:
    bucket = bucket if bucket is not None else call.require("Bucket")
    key = key if key is not None else call.require("Key")
    return f"arn:{call.partition}:s3:::{bucket}/{key}"


def s3_bucket(call: Call) -> str:
    return f"arn:{call.partition}:s3:::{call.require('Bucket')}"


def s3_write_key(call: Call) -> str | None:
    """The key S3 encrypts a new object with: the request's, else the bucket's default."""
    if call.params.get("ServerSideEncryption") == "AES256":
        return None
    return call.params.get("SSEKMSKeyId") or call.facts.bucket_keys.get(call.require("Bucket"))


def s3_write_context(params: Mapping[str, Any]) -> Context:
    keys = {
        "ServerSideEncryption": "s3:x-amz-server-side-encryption",
        "SSEKMSKeyId": "s3:x-amz-server-side-encryption-aws-kms-key-id",
        "ACL": "s3:x-amz-acl",
        "StorageClass": "s3:x-amz-storage-class",
        "IfNoneMatch": "s3:if-none-match",
        "IfMatch": "s3:if-match",
        "CopySource": "s3:x-amz-copy-source",
        "MetadataDirective": "s3:x-amz-metadata-directive",
    }
    context: Context = {}
    for param, key in keys.items():
        value = params.get(param)
        if isinstance(value, Mapping):  # CopySource as {"Bucket", "Key", "VersionId"}
            value = f"{value['Bucket']}/{value['Key']}"
        if value is not None:
            context[key] = str(value)
    return context


def s3_encryption_context(object_arn: str) -> Context:
    # What S3 passes to KMS (iam-simulate 0.1.173 ignores kms:EncryptionContext:* keys).
    return {"kms:EncryptionContext:aws:s3:arn": object_arn}


@maps("s3", "GetObject", "HeadObject")
def s3_get(call: Call) -> list[IamRequest]:
    resource = s3_object(call)
    version = call.params.get("VersionId")
    action = "GetObjectVersion" if version else "GetObject"
    requests = [call.request(action, resource, {"s3:versionid": version} if version else {})]
    if call.operation == "GetObject":  # HEAD reads metadata only: no decryption
        key = call.facts.bucket_keys.get(call.require("Bucket"))
        requests += call.kms(["Decrypt"], key, "s3", s3_encryption_context(resource))
    return requests


@maps("s3", "PutObject", "CreateMultipartUpload")
def s3_put(call: Call) -> list[IamRequest]:
    resource = s3_object(call)
    requests = [call.request("PutObject", resource, s3_write_context(call.params))]
    # A multipart upload also decrypts its data key for each part (AWS: both permissions).
    actions = ["GenerateDataKey"] + (
        ["Decrypt"] if call.operation == "CreateMultipartUpload" else []
    )
    return requests + call.kms(actions, s3_write_key(call), "s3", s3_encryption_context(resource))


TABLE[("s3", "UploadPart")] = simple("PutObject", s3_object)
TABLE[("s3", "CompleteMultipartUpload")] = simple("PutObject", s3_object)
TABLE[("s3", "AbortMultipartUpload")] = simple("AbortMultipartUpload", s3_object)


@maps("s3", "CopyObject")
def s3_copy(call: Call) -> list[IamRequest]:
    source = call.require("CopySource")
    if isinstance(source, Mapping):
        bucket, key, version = source["Bucket"], source["Key"], source.get("VersionId")
    else:
        path, _, query = unquote(str(source)).lstrip("/").partition("?versionId=")
        (bucket, _, key), version = path.partition("/"), query or None
    read = {"Bucket": bucket, "Key": key, **({"VersionId": version} if version else {})}
    return s3_get(call.derived("s3", "GetObject", read)) + s3_put(call)


@maps("s3", "DeleteObject")
def s3_delete(call: Call) -> list[IamRequest]:
    version = call.params.get("VersionId")
    return [call.request("DeleteObjectVersion" if version else "DeleteObject", s3_object(call))]


@maps("s3", "DeleteObjects")
def s3_delete_many(call: Call) -> list[IamRequest]:
    objects = call.require("Delete").get("Objects", [])
    return [
        call.request(
            "DeleteObjectVersion" if item.get("VersionId") else "DeleteObject",
            s3_object(call, key=item["Key"]),
        )
        for item in objects
    ]


@maps("s3", "ListObjectsV2", "ListObjects", "ListObjectVersions")
def s3_list(call: Call) -> list[IamRequest]:
    context: Context = {}
    for param, key in (
        ("Prefix", "s3:prefix"),
        ("Delimiter", "s3:delimiter"),
        ("MaxKeys", "s3:max-keys"),
    ):
        if param in call.params:
            context[key] = str(call.params[param])
    action = "ListBucketVersions" if call.operation == "ListObjectVersions" else "ListBucket"
    return [call.request(action, s3_bucket(call), context)]


# SNS, SQS -------------------------------------------------------------------------------------


@maps("sns", "Publish", "PublishBatch")
def sns_publish(call: Call) -> list[IamRequest]:
    topic = call.params.get("TopicArn") or call.params.get("TargetArn")
    if not topic:  # an SMS to a phone number
        return [call.request("Publish", "*")]
    key = call.facts.topic_keys.get(topic)
    return [call.request("Publish", topic), *call.kms(["GenerateDataKey", "Decrypt"], key, "sns")]


def sqs_queue(call: Call) -> str:
    if "QueueUrl" not in call.params:
        owner = call.params.get("QueueOwnerAWSAccountId", call.account)
        return f"arn:{call.partition}:sqs:{call.region}:{owner}:{call.require('QueueName')}"
    owner, name = urlparse(call.params["QueueUrl"]).path.strip("/").split("/")[-2:]
    return f"arn:{call.partition}:sqs:{call.region}:{owner}:{name}"


@maps("sqs", "SendMessage", "SendMessageBatch", "ReceiveMessage")
def sqs_message(call: Call) -> list[IamRequest]:
    queue = sqs_queue(call)
    action = "ReceiveMessage" if call.operation == "ReceiveMessage" else "SendMessage"
    actions = ["Decrypt"] if action == "ReceiveMessage" else ["GenerateDataKey", "Decrypt"]
    return [
        call.request(action, queue),
        *call.kms(actions, call.facts.queue_keys.get(queue), "sqs"),
    ]


for _operation, _action in {
    "DeleteMessage": "DeleteMessage",
    "DeleteMessageBatch": "DeleteMessage",
    "ChangeMessageVisibility": "ChangeMessageVisibility",
    "GetQueueAttributes": "GetQueueAttributes",
    "GetQueueUrl": "GetQueueUrl",
}.items():
    TABLE[("sqs", _operation)] = simple(_action, sqs_queue)


# SSM ------------------------------------------------------------------------------------------


def ssm_parameter(call: Call, name: str) -> str:
    """A parameter's ARN: "parameter" + its name ("/a/b" -> parameter/a/b, "a" -> parameter/a);
    a version or label selector ("name:3") is not part of it."""
    if name.startswith("arn:"):
        return ":".join(name.split(":")[:6])
    return call.arn("ssm", f"parameter/{name.split(':', maxsplit=1)[0].lstrip('/')}")


@maps("ssm", "GetParameter", "DeleteParameter", "GetParameterHistory", "LabelParameterVersion")
def ssm_one(call: Call) -> list[IamRequest]:
    return [call.request(call.operation, ssm_parameter(call, call.require("Name")))]


@maps("ssm", "PutParameter")
def ssm_put(call: Call) -> list[IamRequest]:
    overwrite = call.params.get("Overwrite")
    context: Context = {"ssm:Overwrite": str(overwrite).lower()} if overwrite is not None else {}
    return [call.request("PutParameter", ssm_parameter(call, call.require("Name")), context)]


@maps("ssm", "GetParameters", "DeleteParameters")
def ssm_many(call: Call) -> list[IamRequest]:
    return [call.request(call.operation, ssm_parameter(call, n)) for n in call.require("Names")]


@maps("ssm", "GetParametersByPath")
def ssm_path(call: Call) -> list[IamRequest]:
    recursive = call.params.get("Recursive")
    context: Context = {"ssm:Recursive": "true"} if recursive else {}
    return [call.request("GetParametersByPath", ssm_parameter(call, call.require("Path")), context)]


# KMS ------------------------------------------------------------------------------------------

TABLE[("kms", "ListKeys")] = simple("ListKeys", lambda call: "*")


@maps("kms", "DescribeKey", "Decrypt", "Encrypt", "GenerateDataKey")
def kms(call: Call) -> list[IamRequest]:
    key = call.params.get("KeyId")
    if not key:  # Decrypt may leave the key to the ciphertext: name it to be checked
        raise UnmappedCall("kms", call.operation, "no KeyId (the key is in the ciphertext)")
    context: Context = {"kms:CallerAccount": call.account}
    name = key.split(":", 5)[5] if key.startswith("arn:") else key
    if name.startswith("alias/"):
        context["kms:RequestAlias"] = name
    return [call.request(call.operation, call.key_arn(key), context)]
