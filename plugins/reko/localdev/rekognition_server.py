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

Face collections live in memory (CreateCollection, DescribeCollection, IndexFaces,
SearchFacesByImage, DeleteFaces, ListFaces). Who a face is comes from the image's pixels: every
image holds one "face" whose signature is the image's mean colour (images are read from S3
through `s3_reader` when given, else the signature is derived from the key). Two faces match
with `Similarity` = 100 - 0.5 x the distance between their mean colours (RGB, 0-255), so a
photo of another size or quality but the same colour is the same person and a colour ~40 apart
is someone else. A near-black image (mean luminance < 16) holds no face; a dark one (< 60) holds
a face IndexFaces leaves unindexed (LOW_BRIGHTNESS) unless QualityFilter is NONE. A face's
FaceId is a UUID of (collection, ExternalImageId, frame), so indexing the same image again with
the same external id stores nothing new, as Rekognition documents.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import math
import re
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

OPERATIONS = ("DetectText", "DetectFaces", "DetectLabels")
COLLECTION_OPERATIONS = (
    "CreateCollection",
    "DescribeCollection",
    "IndexFaces",
    "SearchFacesByImage",
    "DeleteFaces",
    "ListFaces",
)
FACE_MODEL_VERSION = "7.0"
NO_FACE_LUMINANCE = 16
DARK_LUMINANCE = 60
_COLLECTION_ID = re.compile(r"^[a-zA-Z0-9_.\-]{1,255}$")
_EXTERNAL_ID = re.compile(r"^[a-zA-Z0-9_.\-:]{1,255}$")
_FACE_IDS = uuid.UUID("6f1d0c5e-9a59-4d47-9a0e-2b7c1f3f0a11")
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

    def __init__(
        self, tps: float, window_s: float = 1.0, s3_reader: Callable[[str, str], bytes] | None = None
    ) -> None:
        self.tps = tps
        self.window_s = window_s
        self.s3_reader = s3_reader  # (bucket, key) -> bytes: lets faces come from the S3 pixels
        self.collections: dict[str, dict[str, dict[str, Any]]] = {}
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
            self.calls: Counter[str] = Counter()  # accepted calls per operation

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
        if service == "RekognitionService" and operation in COLLECTION_OPERATIONS:
            return self._collection_call(operation, body)
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

    # --- face collections ---------------------------------------------------------------------

    def _collection_call(self, operation: str, body: bytes) -> tuple[int, dict[str, Any]]:
        try:
            request = json.loads(body or b"{}")
            collection = request["CollectionId"]
        except (ValueError, KeyError, TypeError) as exc:
            return 400, _error("InvalidParameterException", f"bad request: {exc}")
        if not isinstance(collection, str) or not _COLLECTION_ID.match(collection):
            return 400, _error("InvalidParameterException", f"invalid CollectionId {collection!r}")
        if not self._admit():
            return 400, _error("ThrottlingException", "Rate exceeded")
        with self._lock:
            self.calls[operation] += 1
        if operation == "CreateCollection":
            with self._lock:
                if collection in self.collections:
                    return 400, _error("ResourceAlreadyExistsException", f"collection {collection} exists")
                self.collections[collection] = {}
            return 200, {
                "StatusCode": 200,
                "CollectionArn": f"aws:rekognition:us-east-1:000000000000:collection/{collection}",
                "FaceModelVersion": FACE_MODEL_VERSION,
            }
        faces = self.collections.get(collection)
        if faces is None:
            return 400, _error("ResourceNotFoundException", f"The collection id: {collection} does not exist")
        if operation == "DescribeCollection":
            return 200, {"FaceCount": len(faces), "FaceModelVersion": FACE_MODEL_VERSION, "UserCount": 0}
        if operation == "ListFaces":
            listed = [_face_out(face) for face in faces.values()]
            return 200, {"Faces": listed, "FaceModelVersion": FACE_MODEL_VERSION}
        if operation == "DeleteFaces":
            ids = request.get("FaceIds") or []
            if not 1 <= len(ids) <= 4096:
                return 400, _error(
                    "InvalidParameterException", f"FaceIds must hold 1-4096 ids, got {len(ids)}"
                )
            with self._lock:
                deleted = [i for i in ids if faces.pop(i, None) is not None]
            missing = [{"FaceId": i, "Reasons": ["FACE_NOT_FOUND"]} for i in ids if i not in deleted]
            answer = {"DeletedFaces": deleted, "UnsuccessfulFaceDeletions": missing}
            return 200, {k: v for k, v in answer.items() if v}  # the model's lists hold >= 1
        try:
            image = request["Image"]
            frame = frame_id(image)
            for marker, (status, code, message) in _FAULTS.items():
                if marker in frame:
                    with self._lock:
                        self.faults += 1
                    return status, _error(code, message)
            signature = self._signature(image, frame)
        except _ImageError as exc:
            return 400, _error("InvalidImageFormatException", str(exc))
        except (KeyError, TypeError, ValueError) as exc:
            return 400, _error("InvalidParameterException", f"bad image: {exc}")
        if operation == "IndexFaces":
            return self._index_faces(request, collection, faces, frame, signature)
        return self._search(request, faces, frame, signature)

    def _signature(self, image: dict[str, Any], frame: str) -> tuple[float, float, float]:
        """The mean colour of the image: who its one face is."""
        if "Bytes" in image:
            data = base64.b64decode(image["Bytes"])
        elif self.s3_reader is not None:
            data = self.s3_reader(image["S3Object"]["Bucket"], image["S3Object"]["Name"])
        else:
            digest = hashlib.sha1(frame.encode()).digest()
            return float(digest[0]), float(digest[1]), float(digest[2])
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(io.BytesIO(data)) as img:
                small = img.convert("RGB").resize((8, 8))
                pixels = list(small.getdata())
        except (UnidentifiedImageError, OSError) as exc:
            raise _ImageError(f"Request has invalid image format: {exc}") from exc
        return tuple(sum(p[c] for p in pixels) / len(pixels) for c in range(3))  # type: ignore[return-value]

    def _index_faces(
        self,
        request: dict[str, Any],
        collection: str,
        faces: dict[str, dict[str, Any]],
        frame: str,
        signature: tuple[float, float, float],
    ) -> tuple[int, dict[str, Any]]:
        external = request.get("ExternalImageId")
        if external is not None and not _EXTERNAL_ID.match(str(external)):
            return 400, _error("InvalidParameterException", f"invalid ExternalImageId {external!r}")
        max_faces = int(request.get("MaxFaces", 100))
        if max_faces < 1:
            return 400, _error("InvalidParameterException", "MaxFaces must be at least 1")
        response: dict[str, Any] = {
            "FaceRecords": [],
            "UnindexedFaces": [],
            "FaceModelVersion": FACE_MODEL_VERSION,
        }
        luminance = _luminance(signature)
        if luminance < NO_FACE_LUMINANCE:
            return 200, response
        seed = int(hashlib.sha1(frame.encode()).hexdigest()[:8], 16)
        detail = {"BoundingBox": _box(seed), "Confidence": 99.9, "Landmarks": [], "Pose": {}, "Quality": {}}
        if luminance < DARK_LUMINANCE and request.get("QualityFilter", "AUTO") != "NONE":
            response["UnindexedFaces"].append({"Reasons": ["LOW_BRIGHTNESS"], "FaceDetail": detail})
            return 200, response
        face_id = str(uuid.uuid5(_FACE_IDS, f"{collection}|{external}|{frame}"))
        face = {
            "FaceId": face_id,
            "BoundingBox": detail["BoundingBox"],
            "ImageId": str(uuid.uuid5(_FACE_IDS, frame)),
            "Confidence": 99.9,
            "IndexFacesModelVersion": FACE_MODEL_VERSION,
            "signature": signature,
            **({"ExternalImageId": external} if external else {}),
        }
        with self._lock:
            faces[face_id] = face
        response["FaceRecords"].append({"Face": _face_out(face), "FaceDetail": detail})
        return 200, response

    def _search(
        self,
        request: dict[str, Any],
        faces: dict[str, dict[str, Any]],
        frame: str,
        signature: tuple[float, float, float],
    ) -> tuple[int, dict[str, Any]]:
        if _luminance(signature) < NO_FACE_LUMINANCE:
            return 400, _error(
                "InvalidParameterException", "There are no faces in the image. Should be at least 1."
            )
        threshold = float(request.get("FaceMatchThreshold", 80.0))
        max_faces = int(request.get("MaxFaces", 4096))
        if not 0 <= threshold <= 100 or not 1 <= max_faces <= 4096:
            return 400, _error("InvalidParameterException", "FaceMatchThreshold 0-100, MaxFaces 1-4096")
        with self._lock:
            stored = list(faces.values())
        matches = []
        for face in stored:
            score = round(max(0.0, 100.0 - 0.5 * math.dist(signature, face["signature"])), 4)
            if score >= threshold:
                matches.append({"Similarity": score, "Face": _face_out(face)})
        matches.sort(key=lambda m: (-m["Similarity"], m["Face"]["FaceId"]))
        seed = int(hashlib.sha1(frame.encode()).hexdigest()[:8], 16)
        return 200, {
            "SearchedFaceBoundingBox": _box(seed),
            "SearchedFaceConfidence": 99.9,
            "FaceMatches": matches[:max_faces],
            "FaceModelVersion": FACE_MODEL_VERSION,
        }

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


class _ImageError(ValueError):
    """The image's bytes cannot be decoded."""


def _error(code: str, message: str) -> dict[str, Any]:
    return {"__type": code, "message": message}


def _luminance(rgb: tuple[float, float, float]) -> float:
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


def _face_out(face: dict[str, Any]) -> dict[str, Any]:
    """A stored face as Rekognition's `Face` (without the server's own signature)."""
    return {k: v for k, v in face.items() if k != "signature"}
