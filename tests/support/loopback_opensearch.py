"""Loopback HTTP servers for OpenSearch client tests (127.0.0.1 only).

`RecordingServer` answers like a tiny OpenSearch (`GET /` info, `POST /_bulk` all created) and
keeps every request as received, so signing can be checked byte for byte.

`FaultyProxy` forwards to a real OpenSearch node and injects the failures a busy cluster shows:
whole `_bulk` requests answered 429, individual items rejected with 429 (those items are *not*
forwarded, as a node whose write queue is full does not index them), dropped connections, and
413 for bodies above a size. It records every `_bulk` request it saw, and every fault it injected.

Faults that last a while rather than a number of requests: `down_for_s` drops every request
(any path, not only `_bulk`) for that many seconds from the first request after it is set (a
node that is down or restarting), and `reject_for_s` answers every `_bulk` with 429 for that many
seconds from the first `_bulk` after it is set (a cluster under sustained load).
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit


@dataclass
class Recorded:
    method: str
    path: str  # with query string
    headers: dict[str, str]  # names lower-cased
    body: bytes

    @property
    def bulk_ids(self) -> list[str]:
        """`_id` of each action in an ndjson `_bulk` body, in order."""
        return [meta["_id"] for _, meta, _ in parse_bulk(self.body)]


def parse_bulk(body: bytes) -> list[tuple[str, dict[str, Any], bytes | None]]:
    """(op, action metadata, source line) for each action of a `_bulk` body."""
    lines = body.split(b"\n")
    out, i = [], 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        ((op, meta),) = json.loads(lines[i]).items()
        source = None
        if op != "delete":
            i += 1
            source = lines[i]
        out.append((op, meta, source))
        i += 1
    return out


class _Server:
    """A ThreadingHTTPServer on a free loopback port, run in a daemon thread."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.owner = self  # type: ignore[attr-defined]
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _read(self) -> Recorded:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        return Recorded(self.command, self.path, headers, body)

    def _reply(self, status: int, payload: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class _RecordingHandler(_Handler):
    def _handle(self) -> None:
        req = self._read()
        owner: RecordingServer = self.server.owner  # type: ignore[attr-defined]
        with owner.lock:
            owner.requests.append(req)
        path = urlsplit(req.path).path
        if path == "/":
            body = {"name": "loopback", "version": {"distribution": "opensearch", "number": "2.19.0"}}
        elif path.endswith("/_bulk"):
            items = [
                {op: {"_index": meta.get("_index"), "_id": meta.get("_id"), "status": 201}}
                for op, meta, _ in parse_bulk(req.body)
            ]
            body = {"took": 1, "errors": False, "items": items}
        else:
            body = {"acknowledged": True}
        self._reply(200, json.dumps(body).encode())

    do_GET = do_POST = do_PUT = do_DELETE = _handle

    def do_HEAD(self) -> None:
        self._read()
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


class RecordingServer(_Server):
    def __init__(self) -> None:
        super().__init__(_RecordingHandler)
        self.requests: list[Recorded] = []


@dataclass
class Faults:
    reject_requests: int = 0  # answer the next N `_bulk` requests with 429
    drop_requests: int = 0  # close the connection on the next N `_bulk` requests, no answer
    reject_items: set[str] = field(default_factory=set)  # ids rejected with 429 once each
    max_body: int | None = None  # 413 for `_bulk` bodies larger than this
    deny: bool = False  # 403 for every `_bulk` request (a missing IAM permission)
    down_for_s: float = 0.0  # drop every request for this long, from the first one after it is set
    reject_for_s: float = 0.0  # 429 for every `_bulk` for this long, from the first `_bulk` after it is set
    down_since: float | None = None
    reject_since: float | None = None

    def down(self) -> bool:
        """Whether a request arriving now falls in the `down_for_s` window (starting it if need be)."""
        if self.down_for_s > 0 and self.down_since is None:
            self.down_since = time.monotonic()
        return _within(self.down_since, self.down_for_s)

    def rejecting(self) -> bool:
        """Whether a `_bulk` arriving now falls in the `reject_for_s` window (starting it if need be)."""
        if self.reject_for_s > 0 and self.reject_since is None:
            self.reject_since = time.monotonic()
        return _within(self.reject_since, self.reject_for_s)


def _within(since: float | None, length_s: float) -> bool:
    return length_s > 0 and since is not None and time.monotonic() - since < length_s


REJECTED = {
    "type": "es_rejected_execution_exception",
    "reason": "rejected execution of coordinating operation [queue capacity 200]",
}


class _ProxyHandler(_Handler):
    def _handle(self) -> None:
        req = self._read()
        proxy: FaultyProxy = self.server.owner  # type: ignore[attr-defined]
        is_bulk = urlsplit(req.path).path.endswith("/_bulk")
        with proxy.lock:
            down = proxy.faults.down()
            if down:
                proxy.injected.append(("down", req.method, req.path))
            if is_bulk:
                proxy.bulk_requests.append(req)
        if down:
            self._drop()
            return
        if not is_bulk:
            self._forward(req)
            return
        with proxy.lock:
            faults = proxy.faults
            if faults.drop_requests:
                faults.drop_requests -= 1
                proxy.injected.append(("drop", req.method, req.path))
                self._drop()
                return
            if faults.deny:
                denied = {"type": "security_exception", "reason": "no permissions for [indices:data/write]"}
                self._reply(403, json.dumps({"error": denied, "status": 403}).encode())
                return
            if faults.max_body is not None and len(req.body) > faults.max_body:
                self._reply(413, b"")
                return
            window = faults.rejecting()
            if window or faults.reject_requests:
                if not window:
                    faults.reject_requests -= 1
                proxy.injected.append(("429", req.method, req.path))
                self._reply(
                    429, json.dumps({"error": {"root_cause": [REJECTED], **REJECTED}, "status": 429}).encode()
                )
                return
            actions = parse_bulk(req.body)
            rejected = [i for i, (_, meta, _) in enumerate(actions) if meta.get("_id") in faults.reject_items]
            for i in rejected:
                faults.reject_items.discard(actions[i][1]["_id"])
                proxy.injected.append(("item-429", actions[i][0], actions[i][1]["_id"]))
        if not rejected:
            self._forward(req)
            return
        kept = [a for i, a in enumerate(actions) if i not in set(rejected)]
        items: list[dict[str, Any]] = []
        if kept:
            body = b"".join(
                json.dumps({op: meta}).encode() + b"\n" + (b"" if src is None else src + b"\n")
                for op, meta, src in kept
            )
            status, _, payload = _send(proxy.upstream, req.method, req.path, body, req.headers)
            if status != 200:
                self._reply(status, payload)
                return
            items = json.loads(payload)["items"]
        answered = iter(items)
        merged = [
            {actions[i][0]: {"status": 429, "error": REJECTED}} if i in rejected else next(answered)
            for i in range(len(actions))
        ]
        self._reply(200, json.dumps({"errors": True, "items": merged}).encode())

    def _drop(self) -> None:
        self.close_connection = True
        self.connection.shutdown(2)  # socket.SHUT_RDWR: the client sees a dropped connection

    def _forward(self, req: Recorded) -> None:
        proxy: FaultyProxy = self.server.owner  # type: ignore[attr-defined]
        status, content_type, payload = _send(proxy.upstream, req.method, req.path, req.body, req.headers)
        if req.method == "HEAD":
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self._reply(status, payload, content_type)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle


def _send(
    upstream: str, method: str, path: str, body: bytes, headers: dict[str, str]
) -> tuple[int, str, bytes]:
    parts = urlsplit(upstream)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        send_headers = {"Content-Type": headers.get("content-type", "application/json")}
        conn.request(method, path, body=body or None, headers=send_headers)
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type") or "application/json", resp.read()
    finally:
        conn.close()


class FaultyProxy(_Server):
    def __init__(self, upstream: str) -> None:
        super().__init__(_ProxyHandler)
        self.upstream = upstream
        self.faults = Faults()
        self.bulk_requests: list[Recorded] = []
        self.injected: list[tuple[str, str, str]] = []  # (fault, method or op, path or document id)
