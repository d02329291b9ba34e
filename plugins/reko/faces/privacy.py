"""Keep face data out of logs: opensearch-py logs request and response bodies (embeddings, boxes)
at DEBUG on `opensearch` and as curl commands on `opensearchpy.trace`; botocore logs Rekognition's
request parameters (a query photo's bytes) on `botocore.endpoint` and its response bodies (boxes,
landmarks, similarities) on `botocore.parsers`, both at DEBUG. While face data is sent or read,
`private()` drops those records in this context (thread or task), whatever a deployment's log
level; the one-line `METHOD URL [status]` records stay (they hold no face data). A context
variable does not follow work into a thread pool: enter `private()` in the thread that calls."""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_PRIVATE = contextvars.ContextVar("reko_faces_private", default=False)
_BODY_LOGGERS = ("opensearch", "opensearchpy.trace", "botocore.endpoint", "botocore.parsers")
_installed = False
_lock = threading.Lock()


class _DropFaceData(logging.Filter):
    """Drops body records (DEBUG, and every trace record) while the context is private."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _PRIVATE.get():
            return True
        return record.name != "opensearchpy.trace" and record.levelno > logging.DEBUG


def _install() -> None:
    global _installed
    with _lock:
        if not _installed:
            for name in _BODY_LOGGERS:
                logging.getLogger(name).addFilter(_DropFaceData())
            _installed = True


@contextmanager
def private() -> Iterator[None]:
    """Within this block, no OpenSearch request or response body is logged."""
    _install()
    token = _PRIVATE.set(True)
    try:
        yield
    finally:
        _PRIVATE.reset(token)
