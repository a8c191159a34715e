"""moto's server, with S3's conditional writes made atomic as in AWS.

moto checks ``If-Match`` / ``If-None-Match`` and then stores the object as two separate steps:
two requests racing through its threaded server can both pass the check, where S3 lets exactly
one win. The endpoint's lease (mlops.adapters.lease) and the write-once audit records rely on
S3's guarantee, so the embedded default serializes conditional writes on one key.

Run as ``python -m mlops.local.moto_server -H 127.0.0.1 -p PORT`` (moto's own options).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

from werkzeug import serving as werkzeug_serving

_LOCK = threading.RLock()
_PATCHED = False


def atomic_conditional_writes() -> None:
    """Make moto's S3 PutObject/DeleteObject check-and-write one step when conditional."""
    global _PATCHED  # noqa: PLW0603 - once per process, whoever asks first
    with _LOCK:
        if _PATCHED:
            return
        from moto.s3.responses import S3Response  # noqa: PLC0415 - only the emulator needs it

        for name in ("put_object", "delete_object"):
            setattr(S3Response, name, _serialized(getattr(S3Response, name)))
        _PATCHED = True


def _serialized(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        if self.headers.get("If-Match") or self.headers.get("If-None-Match"):
            with _LOCK:
                return method(self, *args, **kwargs)
        return method(self, *args, **kwargs)

    return wrapper


def plain_request_log() -> None:
    """werkzeug colours its request log with ANSI codes whatever the output (on Linux): the
    embedded default writes it to emulator.log, where the codes are noise; keep it plain."""
    werkzeug_serving._log_add_style = False  # its own switch (off on Windows)


def main() -> None:
    from moto.server import main as moto_main  # noqa: PLC0415

    atomic_conditional_writes()
    plain_request_log()
    moto_main()


if __name__ == "__main__":
    main()
