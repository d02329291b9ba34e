"""A small Rekognition-protocol server on loopback that enforces a TPS limit, for tests and bench/.

It speaks what botocore sends for Rekognition (JSON 1.1: ``POST /`` with
``X-Amz-Target: RekognitionService.DetectText`` and a JSON body) and answers DetectText,
DetectFaces and DetectLabels with deterministic Rekognition-shaped responses derived from the
frame (the S3 key, or the SHA-1 of the bytes), so a test can check each result against its frame.

The limit is a sliding 1-second window over all clients: a call that would make more than
``tps`` accepted calls within the last second is answered HTTP 400 ``ThrottlingException`` (and
not counted as accepted), like Rekognition past an account's quota.

Fault injection by S3 key (or by a marker inside the bytes): ``invalid-format`` ->
InvalidImageFormatException, ``too-large`` (S3Object form only) -> ImageTooLargeException,
``missing`` -> InvalidS3ObjectException, ``server-error`` -> HTTP 500 InternalServerError.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from collections import Counter, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

OPERATIONS = ("DetectText", "DetectFaces", "DetectLabels")
_FAULTS = {
    "invalid-format": (400, "InvalidImageFormatException", "Request has invalid image format"),
    "missing": (400, "InvalidS3ObjectException", "Unable to get object metadata from S3"),
    "server-error": (500, "InternalServerError", "Internal server error"),
}


def frame_id(image: dict[str, Any]) -> str:
    """What identifies a frame in a request: its S3 key, or the SHA-1 of its bytes."""
    if "S3Object" in image:
        return image["S3Object"]["Name"]
    return "sha1:" + hashlib.sha1(base64.b64decode(image["Bytes"])).hexdigest()


def expected_text(frame: str) -> str:
    """The word DetectText 'reads' in a frame: BIB + the frame number (or a hash for bytes)."""
    match = re.search(r"\.(\d{7})\.(?:jpg|png)$", frame)
    return f"BIB{int(match.group(1))}" if match else f"BIB{frame[5:11].upper()}"


def _box(seed: int) -> dict[str, float]:
    return {"Width": 0.2, "Height": 0.1, "Left": round((seed % 7) / 10, 2), "Top": round((seed % 5) / 10, 2)}


def _answer(operation: str, frame: str) -> dict[str, Any]:
    seed = int(hashlib.sha1(frame.encode()).hexdigest()[:8], 16)
    if operation == "DetectText":
        word = expected_text(frame)
        geometry = {"BoundingBox": _box(seed), "Polygon": []}

        def detection(text: str, kind: str, ident: int, confidence: float, **extra: Any) -> dict[str, Any]:
            return {"DetectedText": text, "Type": kind, "Id": ident, "Confidence": confidence,
                    "Geometry": geometry, **extra}  # fmt: skip

        return {
            "TextDetections": [
                detection(f"{word} RUN", "LINE", 0, 99.1),
                detection(word, "WORD", 1, 98.7, ParentId=0),
                detection("RUN", "WORD", 2, 97.2, ParentId=0),
            ],
            "TextModelVersion": "3.0",
        }
    if operation == "DetectFaces":
        return {
            "FaceDetails": [{"BoundingBox": _box(seed), "Confidence": 99.9, "Landmarks": [], "Pose": {}}],
        }
    return {
        "Labels": [
            {
                "Name": "Person",
                "Confidence": 98.0,
                "Instances": [{"BoundingBox": _box(seed), "Confidence": 97.5}],
                "Parents": [],
            }
        ],
        "LabelModelVersion": "3.0",
    }


class RekognitionServer:
    """Run with `start()` (returns the endpoint URL) and `stop()`; read `stats()` in between."""

    def __init__(self, tps: float, window_s: float = 1.0) -> None:
        self.tps = tps
        self.window_s = window_s
        self._lock = threading.Lock()
        self._window: deque[float] = deque()
        self.reset()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                target = self.headers.get("X-Amz-Target", "")
                status, payload = server.handle(target, body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("x-amzn-RequestId", f"req-{time.monotonic_ns()}")
                self.end_headers()
                self.wfile.write(data)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> str:
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self.endpoint

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def reset(self) -> None:
        with self._lock:
            self._window.clear()
            self.requests = 0
            self.throttled = 0
            self.faults = 0
            self.accepted_at: list[float] = []
            self.per_frame: Counter[tuple[str, str]] = Counter()

    def _admit(self) -> bool:
        now = time.monotonic()
        with self._lock:
            self.requests += 1
            while self._window and self._window[0] <= now - self.window_s:
                self._window.popleft()
            if len(self._window) >= self.tps:
                self.throttled += 1
                return False
            self._window.append(now)
            self.accepted_at.append(now)
            return True

    def handle(self, target: str, body: bytes) -> tuple[int, dict[str, Any]]:
        service, _, operation = target.partition(".")
        if service != "RekognitionService" or operation not in OPERATIONS:
            return 400, {"__type": "UnknownOperationException", "message": f"unknown target {target!r}"}
        try:
            request = json.loads(body or b"{}")
            frame = frame_id(request["Image"])
        except (ValueError, KeyError, TypeError) as exc:
            return 400, {"__type": "InvalidParameterException", "message": f"bad request: {exc}"}
        if not self._admit():
            return 400, {"__type": "ThrottlingException", "message": "Rate exceeded"}
        for marker, (status, code, message) in _FAULTS.items():
            if marker in frame:
                with self._lock:
                    self.faults += 1
                return status, {"__type": code, "message": message}
        if "too-large" in frame and "S3Object" in request["Image"]:
            return 400, {"__type": "ImageTooLargeException", "message": "Image size is too large."}
        with self._lock:
            self.per_frame[(operation, frame)] += 1
        return 200, _answer(operation, frame)

    def stats(self) -> dict[str, Any]:
        """Counts, plus the accepted rate: (accepted - 1) / (last - first accepted call)."""
        with self._lock:
            times = list(self.accepted_at)
            span = times[-1] - times[0] if len(times) > 1 else 0.0
            return {
                "tps_limit": self.tps,
                "requests": self.requests,
                "accepted": len(times),
                "throttled": self.throttled,
                "faults": self.faults,
                "answered_frames": len(self.per_frame),
                "max_calls_per_frame": max(self.per_frame.values(), default=0),
                "span_s": round(span, 3),
                "accepted_per_s": round((len(times) - 1) / span, 3) if span > 0 else 0.0,
                "max_in_window": _max_in_window(times, self.window_s),
            }


def _max_in_window(times: list[float], window_s: float) -> int:
    """The most accepted calls inside any window of `window_s` (must never exceed the limit)."""
    best, left = 0, 0
    for right, t in enumerate(times):
        while times[left] <= t - window_s:
            left += 1
        best = max(best, right - left + 1)
    return best
