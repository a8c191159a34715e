"""IAM decisions from a real policy evaluator: ``@cloud-copilot/iam-simulate`` on Node.

The evaluator runs in one long-lived Node process (``simulate.mjs`` beside this module) that
speaks JSON lines: a request in, a decision out, in order. It evaluates identity and resource
policies with every condition operator, matches resource ARNs as IAM does, and applies KMS's rule
that identity policies count only when the key policy trusts the account. Start-up costs ~0.25 s;
a request then takes 0.5-2 ms in a batch (1-4 ms alone), and a repeated one is answered from
memory.

    with PolicySimulator() as simulator:
        identity = Identity("arn:aws:iam::123456789012:role/fn", [policy])
        decision = simulator.evaluate(IamRequest("s3:PutObject", "arn:aws:s3:::b/k"), identity)

Node is found as the CDK's jsii finds it: ``$JSII_NODE``, then the Node pinned in package.json
(``node_modules/node/bin/node``), then ``node`` on PATH; ``make install`` installs both it and
the evaluator (``npm ci``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

from botocore.exceptions import ClientError

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = Path(__file__).with_name("simulate.mjs")
PACKAGE = "@cloud-copilot/iam-simulate"

PolicyDocument = Mapping[str, Any]
Result = Literal["Allowed", "ImplicitlyDenied", "ExplicitlyDenied", "error"]


class SimulatorUnavailable(RuntimeError):
    """Node or the evaluator package is missing, or the evaluator process died."""


@dataclass(frozen=True)
class IamRequest:
    """One authorization AWS makes: an IAM action on one resource ARN, with its context keys
    (``aws:*`` globals and the service's keys, e.g. ``kms:ViaService``, ``iam:PassedToService``).

    A resource with ``*`` (a List call naming no resource) is judged literally, as IAM does:
    only a statement whose Resource covers the whole pattern allows it.
    """

    action: str
    resource: str
    context: Mapping[str, str | list[str]] = field(default_factory=dict, hash=False)

    def __str__(self) -> str:
        context = f" {dict(self.context)}" if self.context else ""
        return f"{self.action} on {self.resource}{context}"


@dataclass(frozen=True)
class Identity:
    """Who asks: a role and its identity policies (documents, or a mapping name -> document;
    names appear in explanations). Calls are made by a session of the role, as Lambda does."""

    role_arn: str
    policies: Sequence[PolicyDocument] | Mapping[str, PolicyDocument] = field(hash=False)
    session_name: str = "session"

    @property
    def account(self) -> str:
        return self.role_arn.split(":")[4]

    @property
    def session_arn(self) -> str:
        """The caller AWS names in an AccessDenied message (an assumed-role session)."""
        partition = self.role_arn.split(":")[1]
        role_name = self.role_arn.rsplit("/", 1)[-1]
        return f"arn:{partition}:sts::{self.account}:assumed-role/{role_name}/{self.session_name}"

    def named_policies(self) -> list[dict[str, Any]]:
        if isinstance(self.policies, Mapping):
            return [{"name": name, "policy": doc} for name, doc in self.policies.items()]
        return [{"name": f"policy{i}", "policy": doc} for i, doc in enumerate(self.policies, 1)]


@dataclass(frozen=True)
class Decision:
    """The evaluator's answer. ``explanation`` names the statements that decided (or, for a
    denial, the statements that name the action but miss on resource or condition)."""

    allowed: bool
    result: Result
    request: IamRequest
    explanation: str
    denied_by: str | None = None  # identity | resource | scp | rcp | pb | vpce (denials only)
    ignored_context_keys: tuple[str, ...] = ()  # keys the action does not define

    def __str__(self) -> str:
        return f"{self.result}: {self.request}\n  " + self.explanation.replace("\n", "\n  ")


def resource_owner(resource: str) -> str:
    """The ARN whose resource policy governs ``resource``: an S3 object's bucket, else itself."""
    if resource.startswith("arn:") and resource.split(":")[2] == "s3" and "/" in resource:
        return resource.split("/", 1)[0]
    return resource


def access_denied(
    decision: Decision, *, caller: str, operation: str, code: str = "AccessDenied"
) -> ClientError:
    """The ClientError AWS returns for a refused call, message worded as AWS words it."""
    action, resource = decision.request.action, decision.request.resource
    where = {
        "identity": "an identity-based policy",
        "resource": "a resource-based policy",
        "scp": "a service control policy",
        "rcp": "a resource control policy",
        "pb": "a permissions boundary",
        "vpce": "a VPC endpoint policy",
    }.get(decision.denied_by or "identity", "an identity-based policy")
    reason = (
        f"with an explicit deny in {where}"
        if decision.result == "ExplicitlyDenied"
        else f"because no {where.removeprefix('an ').removeprefix('a ')} allows the {action} action"
    )
    message = (
        f"User: {caller} is not authorized to perform: {action} on resource: {resource} {reason}"
    )
    return ClientError(
        {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {
                "RequestId": "iam-simulator",
                "HostId": "",
                "HTTPStatusCode": 403,
                "HTTPHeaders": {},
                "RetryAttempts": 0,
            },
        },
        operation,
    )


def find_node() -> str:
    """$JSII_NODE, then the Node pinned in package.json, then ``node`` on PATH."""
    candidates = [os.environ.get("JSII_NODE"), str(ROOT / "node_modules" / "node" / "bin" / "node")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("node")
    if found:
        return found
    raise SimulatorUnavailable(
        "Node.js not found ($JSII_NODE, node_modules/node/bin/node, PATH): run `make install`"
    )


class PolicySimulator:
    """The evaluator process: started on first use, shared by threads (one exchange at a time),
    stopped by ``close()`` or leaving the ``with`` block."""

    def __init__(self, *, node: str | None = None) -> None:
        self._node = node
        self._lock = threading.Lock()
        self._process: subprocess.Popen[str] | None = None
        self._stderr: IO[str] | None = None
        self._known_sets: set[str] = set()
        self._answers: dict[str, dict[str, Any]] = {}
        self._next_id = 0
        self.version: str | None = None

    def __enter__(self) -> PolicySimulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def evaluate(
        self,
        request: IamRequest,
        identity: Identity,
        *,
        resource_policies: Mapping[str, PolicyDocument] | None = None,
    ) -> Decision:
        """Decide one request. ``resource_policies`` maps an owning ARN (a bucket, key, topic,
        queue: see ``resource_owner``) to its resource policy; a KMS key needs its key policy."""
        return self.evaluate_many([request], identity, resource_policies=resource_policies)[0]

    def evaluate_many(
        self,
        requests: Iterable[IamRequest],
        identity: Identity,
        *,
        resource_policies: Mapping[str, PolicyDocument] | None = None,
    ) -> list[Decision]:
        """Decide many requests in one exchange (the role's policies travel once per process)."""
        requests = list(requests)
        policies = identity.named_policies()
        policy_set = _digest(policies)
        messages: dict[str, dict[str, Any]] = {}  # cache key -> request message, in order
        keys = []
        for request in requests:
            message: dict[str, Any] = {
                "principal": identity.session_arn,
                "accountId": _account_of(request.resource) or identity.account,
                "action": request.action,
                "resource": request.resource,
                "context": _context(request, identity),
                "policySet": policy_set,
            }
            owner_policy = (resource_policies or {}).get(resource_owner(request.resource))
            if owner_policy is not None:
                message["resourcePolicy"] = owner_policy
            key = _digest(message)
            keys.append(key)
            messages.setdefault(key, message)
        with self._lock:
            # The evaluation is deterministic: a request asked before is answered from memory
            # (a function's calls repeat: the same endpoint described at every invocation).
            missing = [key for key in messages if key not in self._answers]
            if missing:
                process = self._started()
                lines = []
                for key in missing:
                    self._next_id += 1
                    message = {"id": self._next_id, **messages[key]}
                    if policy_set not in self._known_sets:
                        message["identityPolicies"] = policies
                        self._known_sets.add(policy_set)
                    lines.append(json.dumps(message, default=dict) + "\n")
                for key, answer in zip(missing, self._exchange(process, lines), strict=True):
                    self._answers[key] = answer
            answers = [self._answers[key] for key in keys]
        return [
            _decision(request, answer) for request, answer in zip(requests, answers, strict=True)
        ]

    def close(self) -> None:
        with self._lock:
            self._stop()

    def _stop(self) -> None:
        process, self._process = self._process, None
        self._known_sets.clear()
        if process is not None:
            if process.stdin:
                process.stdin.close()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.stdout:
                process.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def _started(self) -> subprocess.Popen[str]:
        if self._process is not None and self._process.poll() is None:
            return self._process
        if self._process is not None:
            raise SimulatorUnavailable(f"the evaluator process died: {self._stderr_text()}")
        node = self._node or find_node()
        # Closed by close(); a file, not a pipe, so Node never blocks on a full stderr.
        self._stderr = tempfile.TemporaryFile(mode="w+", encoding="utf-8")  # noqa: SIM115
        try:
            self._process = subprocess.Popen(  # noqa: S603 - our script, our Node
                [node, str(SCRIPT)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                text=True,
                encoding="utf-8",
                cwd=ROOT,
            )
        except OSError as exc:
            raise SimulatorUnavailable(
                f"cannot run Node at {node} ({exc}): run `make install`"
            ) from exc
        greeting = _stream(self._process.stdout).readline()
        try:
            ready = json.loads(greeting)
        except json.JSONDecodeError:
            ready = {"fatal": greeting.strip() or self._stderr_text() or "no output"}
        if not ready.get("ready"):
            self._stop()  # this start failed; the next may not
            hint = "" if "make install" in str(ready.get("fatal")) else " (run `make install`)"
            raise SimulatorUnavailable(f"{PACKAGE} could not start: {ready.get('fatal')}{hint}")
        self.version = str(ready["version"])
        return self._process

    def _exchange(self, process: subprocess.Popen[str], lines: list[str]) -> list[dict[str, Any]]:
        """Write every request, read every answer. A writer thread keeps a large batch from
        filling both pipes at once (Node writes to a pipe synchronously)."""
        stdin, stdout = _stream(process.stdin), _stream(process.stdout)
        failure: list[BaseException] = []

        def write() -> None:
            try:
                stdin.writelines(lines)
                stdin.flush()
            except OSError as exc:
                failure.append(exc)

        writer = threading.Thread(target=write, daemon=True) if len(lines) > 64 else None
        if writer:
            writer.start()
        else:
            write()
        answers = []
        for _ in lines:
            line = stdout.readline()
            if not line:
                break
            answers.append(json.loads(line))
        if writer:
            writer.join()
        if failure or len(answers) != len(lines):
            raise SimulatorUnavailable(f"the evaluator process died: {self._stderr_text()}")
        return answers

    def _stderr_text(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read().strip()[-2000:]


def _stream(stream: IO[str] | None) -> IO[str]:
    if stream is None:  # never: Popen was given PIPE
        raise SimulatorUnavailable("the evaluator process has no pipe")
    return stream


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=dict).encode()).hexdigest()


def _account_of(arn: str) -> str:
    parts = arn.split(":")
    return parts[4] if len(parts) > 4 and parts[0] == "arn" else ""


def _context(request: IamRequest, identity: Identity) -> dict[str, str | list[str]]:
    """The request's keys over the globals AWS sets on every signed request of a role session."""
    return {
        "aws:PrincipalArn": identity.role_arn,
        "aws:PrincipalAccount": identity.account,
        "aws:PrincipalType": "AssumedRole",
        "aws:SecureTransport": "true",
        **request.context,
    }


def _decision(request: IamRequest, answer: Mapping[str, Any]) -> Decision:
    result = answer.get("result", "error")
    if result not in ("Allowed", "ImplicitlyDenied", "ExplicitlyDenied"):
        result = "error"
    return Decision(
        allowed=result == "Allowed",
        result=result,
        request=request,
        explanation=str(answer.get("explanation", "")),
        denied_by=answer.get("deniedBy"),
        ignored_context_keys=tuple(answer.get("ignoredContextKeys", ())),
    )
