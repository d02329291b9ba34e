"""Bulk loading into OpenSearch that yields to back-pressure and never drops a document silently.

Why not `opensearchpy.helpers.streaming_bulk` alone: it retries a 429'd request at the same size
(the node is overloaded *because* requests are big), it cannot shrink or grow its chunks, it treats
a delete of a missing document as an error, and its retries have no total time bound. This module
keeps the helpers' action format (`expand_action`) and the client's serializer, and owns the loop:

- Each `_bulk` request stays under `max_bytes` (its body, exactly as sent) and `max_docs`.
  A single action larger than `max_bytes` is sent alone (the cluster decides; 413 fails it).
- A whole request answered 429, 502, 503, 504, or lost to a connection error/timeout is sent
  again after an exponential back-off with jitter, and the request limits are halved (down to one
  document). After each clean request the limits grow back by an eighth of the maximum (AIMD), so
  a load recovers its full request size in about eight requests once the cluster keeps up.
  A 413 (body too large) halves the limits without waiting, and caps them at half the refused
  size for the rest of the load (`http.max_content_length` is a hard limit, not load).
- Items rejected one by one with 429/503 (`es_rejected_execution_exception`: a full write queue)
  are sent again, those items only, after a back-off.
- Every other item failure (mapping errors such as `mapper_parsing_exception` and
  `strict_dynamic_mapping_exception`, version conflicts, a missing index) is permanent. The load
  goes on with the rest of the input, so everything that can be indexed is indexed, and then
  raises `BulkLoadError` naming each failed document (index, id, error type, reason). After
  `max_errors` permanent failures it stops reading input: a broken template would otherwise fail
  every document of a large load one request at a time.
- A delete of a missing document (404 `not_found`) counts as done (`not_found`), not as a failure.
- Retries share one budget (`max_retry_s`: time spent in back-off plus time spent in failed
  requests). When it runs out, `BulkLoadError` says how many documents were never confirmed
  (with ids) and whether input was left unread. Nothing is dropped without an exception.

Re-sending a request that timed out or lost its connection may repeat actions the node already
applied: harmless for `index` and `delete` with explicit ids (what reko sends: ids are
deterministic), but a repeated `create` reports a version conflict and an `index` without `_id`
can duplicate a document.

The client's transport retries 502/503/504 and connection errors by itself (`max_retries`,
3 by default) without waiting before this loader sees them.
"""

from __future__ import annotations

import logging
import random
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from reko.config import bulk_max_bytes, bulk_max_docs, bulk_max_retry_s

if TYPE_CHECKING:
    from opensearchpy import OpenSearch

log = logging.getLogger(__name__)

RETRYABLE_REQUEST_STATUS = frozenset({429, 502, 503, 504})
RETRYABLE_ITEM_STATUS = frozenset({429, 503})
RETRYABLE_ITEM_ERRORS = frozenset(
    {"es_rejected_execution_exception", "rejected_execution_exception", "circuit_breaking_exception"}
)
TOO_LARGE = 413
# Only what the loader reads: keeps the response of a 5000-document request small to parse.
FILTER_PATH = "errors,items.*.status,items.*.error"
MAX_IDS_IN_MESSAGE = 10


@dataclass(frozen=True)
class BulkFailure:
    """One document OpenSearch refused for good."""

    op: str
    index: str
    doc_id: str | None
    status: int | str
    error_type: str
    reason: str

    def __str__(self) -> str:
        return f"{self.op} {self.index}/{self.doc_id}: {self.status} {self.error_type}: {self.reason}"


@dataclass
class BulkResult:
    """What a load did. `indexed` counts index/create/update actions, `deleted` real deletes."""

    indexed: int = 0
    deleted: int = 0
    not_found: int = 0  # deletes of documents that were not there (fine: the goal is their absence)
    retried: int = 0  # item sends beyond the first (whole-request retries count every item again)
    requests: int = 0
    shrinks: int = 0  # times the request limits were halved
    failed: list[BulkFailure] = field(default_factory=list)

    @property
    def written(self) -> int:
        return self.indexed + self.deleted


class BulkLoadError(RuntimeError):
    """A load that could not write everything: the message names what failed and what was left."""

    def __init__(
        self,
        message: str,
        *,
        result: BulkResult,
        pending: list[tuple[str, str | None]] | None = None,
        input_left: bool = False,
    ) -> None:
        super().__init__(message)
        self.result = result
        self.failures = result.failed
        self.pending = pending or []  # (index, id) read from the input but never confirmed
        self.input_left = input_left


@dataclass(slots=True)
class _Item:
    op: str
    index: str
    doc_id: str | None
    lines: bytes  # action line and source line, each ending in a newline


@dataclass(frozen=True)
class BulkLoader:
    """Settings of a bulk load; `load()` runs one. Defaults come from `reko.config` (environment).

    `sleep`, `clock` and `jitter` are seams for tests (a recording sleep, a fixed jitter).
    """

    client: OpenSearch
    max_bytes: int = field(default_factory=bulk_max_bytes)
    max_docs: int = field(default_factory=bulk_max_docs)
    max_retry_s: float = field(default_factory=bulk_max_retry_s)
    initial_backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    max_errors: int = 100
    index: str | None = None  # default target for actions without `_index`
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    jitter: Callable[[], float] = random.random

    def __post_init__(self) -> None:
        for name in ("max_bytes", "max_docs", "max_errors"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)!r}")
        for name in ("max_retry_s", "initial_backoff_s", "max_backoff_s"):
            if float(getattr(self, name)) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)!r}")

    def load(self, actions: Iterable[dict[str, Any]]) -> BulkResult:
        """Send every action (helpers' format: `_op_type`, `_index`, `_id`, `_source` or fields)."""
        return _Run(self, iter(actions)).run()


def bulk_load(client: OpenSearch, actions: Iterable[dict[str, Any]], **settings: Any) -> BulkResult:
    """`BulkLoader(client, **settings).load(actions)`: raises `BulkLoadError` unless all were written."""
    return BulkLoader(client, **settings).load(actions)


class _Run:
    """The state of one load: pending items, current request limits, retry budget."""

    def __init__(self, cfg: BulkLoader, source: Iterator[dict[str, Any]]) -> None:
        from opensearchpy.helpers import expand_action

        self.cfg = cfg
        self.client = cfg.client
        self.source = source
        self.expand = expand_action
        self.dumps = cfg.client.transport.serializer.dumps
        self.pending: deque[_Item] = deque()
        self.source_done = False
        self.result = BulkResult()
        self.limit_bytes = self.ceiling_bytes = cfg.max_bytes
        self.limit_docs = cfg.max_docs
        self.streak = 0  # consecutive requests that met back-pressure
        self.retry_spent = 0.0

    def run(self) -> BulkResult:
        while True:
            chunk = self._next_chunk()
            if not chunk:
                break
            self._send(chunk)
            if len(self.result.failed) >= self.cfg.max_errors:
                break
        if self.result.failed:
            raise self._error(f"{len(self.result.failed)} documents were rejected by OpenSearch")
        return self.result

    # -- input -------------------------------------------------------------------------------

    def _pull(self) -> bool:
        """Serialize one more input action into `pending`; False when the input is exhausted."""
        if self.source_done:
            return False
        try:
            action = next(self.source)
        except StopIteration:
            self.source_done = True
            return False
        self.pending.append(self._serialize(action))
        return True

    def _serialize(self, action: dict[str, Any]) -> _Item:
        if not isinstance(action, dict):
            raise TypeError(f"a bulk action must be a dict, got {type(action).__name__}")
        meta, source = self.expand(action)
        ((op, params),) = meta.items()
        index = params.get("_index") or self.cfg.index
        if not index:
            raise ValueError(f"bulk action {op} {params.get('_id')!r} names no _index and no default index")
        params.setdefault("_index", index)
        line = self.dumps(meta)
        if source is not None:
            line = f"{line}\n{self.dumps(source)}"
        doc_id = params.get("_id")
        return _Item(op, index, None if doc_id is None else str(doc_id), (line + "\n").encode())

    def _next_chunk(self) -> list[_Item]:
        chunk: list[_Item] = []
        size = 0
        while len(chunk) < self.limit_docs and (self.pending or self._pull()):
            item = self.pending[0]
            if chunk and size + len(item.lines) > self.limit_bytes:
                break
            if not chunk and len(item.lines) > self.cfg.max_bytes:
                log.warning(
                    "%s %s/%s is %d bytes, more than max_bytes=%d: sent alone",
                    item.op,
                    item.index,
                    item.doc_id,
                    len(item.lines),
                    self.cfg.max_bytes,
                )
            chunk.append(self.pending.popleft())
            size += len(item.lines)
        return chunk

    # -- sending -----------------------------------------------------------------------------

    def _send(self, chunk: list[_Item]) -> None:
        from opensearchpy.exceptions import ConnectionError as OSConnectionError
        from opensearchpy.exceptions import TransportError

        started = self.cfg.clock()
        self.result.requests += 1
        try:
            response = self.client.bulk(
                body=b"".join(item.lines for item in chunk), params={"filter_path": FILTER_PATH}
            )
        except TransportError as exc:
            self.retry_spent += self.cfg.clock() - started
            status = exc.status_code
            if status == TOO_LARGE and len(chunk) == 1:
                self._fail(chunk[0], status, "request_entity_too_large", "the document alone is too large")
                return
            transient = status in RETRYABLE_REQUEST_STATUS or isinstance(exc, OSConnectionError)
            if status == TOO_LARGE:  # a hard limit of the cluster, not load: never grow past it again
                self.ceiling_bytes = min(self.ceiling_bytes, max(1, sum(len(i.lines) for i in chunk) // 2))
                self._requeue(chunk)
                self._shrink("_bulk answered 413 (body too large for the cluster)")
                return
            if transient:
                self._requeue(chunk)
                self._shrink(f"_bulk answered {status} ({_short(exc.error)})")
                self._back_off()
                return
            self._requeue(chunk, retry=False)
            detail = f"{status} {_short(exc.error)}: {_short(exc.info)}"
            raise self._error(f"_bulk request failed with {detail}") from exc
        self._settle(chunk, response)

    def _settle(self, chunk: list[_Item], response: dict[str, Any]) -> None:
        """Count each item's outcome; put retryable rejections back at the front of the queue."""
        items = response.get("items") or []
        if len(items) != len(chunk):
            self._requeue(chunk, retry=False)
            raise self._error(f"_bulk answered {len(items)} items for {len(chunk)} actions")
        again: list[_Item] = []
        for item, outcome in zip(chunk, items, strict=True):
            ((_, info),) = outcome.items()
            status = info.get("status", 500)
            error = info.get("error")
            if 200 <= status < 300:
                if item.op == "delete":
                    self.result.deleted += 1
                else:
                    self.result.indexed += 1
            elif item.op == "delete" and status == 404 and not error:
                self.result.not_found += 1
            elif status in RETRYABLE_ITEM_STATUS or _error_type(error) in RETRYABLE_ITEM_ERRORS:
                again.append(item)
            else:
                self._fail(item, status, _error_type(error), _reason(error))
        if again:
            self._requeue(again)
            log.info("%d of %d documents rejected with back-pressure: retrying them", len(again), len(chunk))
            self._back_off()
        else:
            self._grow()

    def _fail(self, item: _Item, status: int | str, error_type: str, reason: str) -> None:
        self.result.failed.append(BulkFailure(item.op, item.index, item.doc_id, status, error_type, reason))

    def _requeue(self, items: list[_Item], *, retry: bool = True) -> None:
        if retry:
            self.result.retried += len(items)
        self.pending.extendleft(reversed(items))

    # -- pacing ------------------------------------------------------------------------------

    def _shrink(self, why: str) -> None:
        self.limit_bytes = max(1, min(self.limit_bytes // 2, self.ceiling_bytes))
        self.limit_docs = max(1, self.limit_docs // 2)
        self.result.shrinks += 1
        log.warning("%s: requests now at most %d bytes, %d docs", why, self.limit_bytes, self.limit_docs)

    def _grow(self) -> None:
        self.streak = 0
        self.limit_bytes = min(self.ceiling_bytes, self.limit_bytes + max(1, self.cfg.max_bytes // 8))
        self.limit_docs = min(self.cfg.max_docs, self.limit_docs + max(1, self.cfg.max_docs // 8))

    def _back_off(self) -> None:
        """Wait 2^streak × initial (capped), half of it jittered, within the retry budget."""
        if self.retry_spent >= self.cfg.max_retry_s:
            pending = len(self.pending)
            raise self._error(
                f"gave up after {self.retry_spent:.1f}s of retries (max_retry_s={self.cfg.max_retry_s:g});"
                f" {pending} documents read but not written"
            )
        self.streak += 1
        ceiling = min(self.cfg.max_backoff_s, self.cfg.initial_backoff_s * 2 ** (self.streak - 1))
        delay = min(ceiling / 2 + self.cfg.jitter() * ceiling / 2, self.cfg.max_retry_s - self.retry_spent)
        log.info("bulk back-off %.2fs (attempt %d)", delay, self.streak)
        self.cfg.sleep(delay)
        self.retry_spent += delay

    # -- reporting ---------------------------------------------------------------------------

    def _error(self, headline: str) -> BulkLoadError:
        try:
            input_left = self._pull()  # peek: is there input this load never read?
            if input_left:
                self.pending.pop()
        except Exception:  # noqa: BLE001 - a malformed next action still means input was left
            input_left = True
        r = self.result
        parts = [headline]
        if r.failed:
            shown = "; ".join(str(f) for f in r.failed[:MAX_IDS_IN_MESSAGE])
            extra = len(r.failed) - MAX_IDS_IN_MESSAGE
            more = f" (and {extra} more)" if extra > 0 else ""
            parts.append(f"rejected: {shown}{more}")
        pending = [(i.index, i.doc_id) for i in self.pending]
        if pending:
            ids = ", ".join(f"{index}/{doc_id}" for index, doc_id in pending[:MAX_IDS_IN_MESSAGE])
            more = " ..." if len(pending) > MAX_IDS_IN_MESSAGE else ""
            parts.append(f"not written ({len(pending)}): {ids}{more}")
        if input_left:
            parts.append("the rest of the input was not read")
        parts.append(
            f"done: {r.indexed} indexed, {r.deleted} deleted, {r.not_found} already absent,"
            f" {r.requests} requests, {r.shrinks} shrinks"
        )
        return BulkLoadError(". ".join(parts), result=r, pending=pending, input_left=input_left)


def delete_stale(
    client: OpenSearch,
    index: str,
    video_id: str,
    is_stale: Callable[[dict[str, Any]], bool],
    fields: list[str] | None = None,
) -> int:
    """Delete this video's documents that the load just done did not write (scan, bulk delete)."""
    from opensearchpy.helpers import scan

    client.indices.refresh(index=index)
    hits = scan(
        client,
        index=index,
        query={"query": {"term": {"video_id": video_id}}, "_source": fields or False},
        size=1000,
    )
    return bulk_load(
        client,
        ({"_op_type": "delete", "_index": index, "_id": h["_id"]} for h in hits if is_stale(h)),
    ).written


def _error_type(error: Any) -> str:
    if isinstance(error, dict):
        return str(error.get("type", "unknown"))
    return "unknown" if error is None else str(error)


def _reason(error: Any) -> str:
    if not isinstance(error, dict):
        return "" if error is None else str(error)
    reason = str(error.get("reason", ""))
    cause = error.get("caused_by")
    if isinstance(cause, dict) and cause.get("reason"):
        reason = f"{reason} (caused by {cause.get('type')}: {cause['reason']})"
    return reason


def _short(value: Any, limit: int = 300) -> str:
    text = str(value)
    return text if len(text) <= limit else text[:limit] + "..."
