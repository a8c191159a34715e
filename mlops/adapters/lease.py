"""The endpoint's lease in S3: a ledger object written only with a condition on its version.

S3 conditional writes are atomic: of two ``PutObject`` calls with ``If-Match`` the same ETag
(or ``If-None-Match: *`` on a missing key) one succeeds and the other gets
``PreconditionFailed`` (or ``ConditionalRequestConflict`` while the first is in flight). The
emulator is made to honour that too (mlops.local.moto_server). Rules and ledger: mlops.core.lease.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from mlops.adapters.audit import create
from mlops.core import names
from mlops.core.lease import LEASE_TTL_S, Holder, Ledger, expired

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)


class LeaseBusy(RuntimeError):
    """Another decision on the endpoint holds the lease: try again (it is retried)."""


class LeaseLost(RuntimeError):
    """The lease was taken over while held: the holder outlived the lease's TTL."""


@dataclass(frozen=True)
class Held:
    ledger: Ledger  # as written when taken, holder included
    etag: str
    seen_sequence: int  # the sequence when the request first looked: what it may supersede


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class EndpointLease:
    def __init__(
        self,
        s3: S3Client,
        bucket: str,
        endpoint: str,
        *,
        ttl_s: float = LEASE_TTL_S,
        wait_s: float = 240.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.endpoint = endpoint
        self.key = f"{names.LEASE_PREFIX}/{endpoint}.json"
        self.ttl_s = ttl_s
        self.wait_s = wait_s
        self.sleep = sleep
        self.clock = clock
        self.jitter = jitter
        self._missing: ClientError | None = None

    def read(self) -> tuple[Ledger, str | None, float | None]:
        """The ledger, its ETag (None: there is none yet) and its age in seconds by S3's clock
        (None: the response carried no date).

        A missing ledger is answered 404 to callers that may list the bucket and 403 to the
        functions, which may not: a 403 is taken as "none yet" here, and ``acquire`` proves it
        by creating the ledger with ``If-None-Match`` (a real denial fails there too).
        """
        self._missing = None
        try:
            got = self.s3.get_object(Bucket=self.bucket, Key=self.key)
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("NoSuchKey", "404", "AccessDenied", "403"):
                self._missing = exc
                return Ledger(self.endpoint), None, None
            raise
        ledger = Ledger.from_json(got["Body"].read().decode(), self.endpoint)
        date = got.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
        age = None
        if date and got.get("LastModified"):
            age = (parsedate_to_datetime(date) - got["LastModified"]).total_seconds()
        return ledger, got["ETag"], age

    def _put(self, ledger: Ledger, etag: str | None) -> str | None:
        """Write ``ledger`` over version ``etag``; its new ETag, or None if another got there."""
        return create(self.s3, self.bucket, self.key, ledger.to_json(), if_match=etag)

    def acquire(self, holder: Holder) -> Held:
        """Take the lease, waiting (bounded, with jittered backoff) while another holds it."""
        deadline = self.clock() + self.wait_s
        first_seen: dict[str, float] = {}  # ETag -> when this caller first saw it
        seen_sequence: int | None = None
        delay = 0.05
        while True:
            ledger, etag, age = self.read()
            if seen_sequence is None:
                seen_sequence = ledger.sequence
            # The same request holding it is an earlier attempt of ours that failed before
            # letting go (a retry comes after it ended): taken over at once, not after the TTL.
            mine_already = (
                ledger.holder is not None and ledger.holder.request_id == holder.request_id
            )
            if ledger.holder is not None and etag is not None and not mine_already:
                # Held since at least when we first saw this version, by our clock, and since
                # its LastModified by S3's: abandoned if either says older than the TTL.
                local_age = self.clock() - first_seen.setdefault(etag, self.clock())
                if not expired(max(local_age, age or 0.0), ttl_s=self.ttl_s):
                    remaining = deadline - self.clock()
                    if remaining <= 0:
                        busy = ledger.holder
                        raise LeaseBusy(
                            f"endpoint {self.endpoint} is busy: {busy.action} {busy.request_id} "
                            f"by {busy.requested_by} since {busy.since}; try again"
                        )
                    self.sleep(min(remaining, delay * (0.5 + self.jitter())))
                    delay = min(delay * 2, 2.0)
                    continue
                log.warning(
                    "taking over the lease of %s from %s (abandoned)", self.endpoint, ledger.holder
                )
            mine = ledger.held_by(holder)
            new_etag = self._put(mine, etag)
            if new_etag is not None:
                return Held(mine, new_etag, seen_sequence)
            if etag is None and self._missing is not None:
                denied, self._missing = self._missing, None
                if denied.response["Error"]["Code"] in ("AccessDenied", "403"):
                    raise denied  # the ledger exists, and reading it was refused
            # Another caller wrote between our read and write: read again at once.

    def release(self, held: Held, ledger: Ledger) -> None:
        """Write the ledger after the decision, only over the version we wrote."""
        if self._put(ledger, held.etag) is None:
            raise LeaseLost(
                f"the lease of {self.endpoint} was taken over while {held.ledger.holder} held "
                f"it (longer than {self.ttl_s:.0f} s); its decision was applied and audited"
            )
