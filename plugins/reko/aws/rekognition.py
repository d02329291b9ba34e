"""Amazon Rekognition image analysis behind the analyser seam (`reko.analysis.base`).

Frames in S3 are sent as ``S3Object`` (Rekognition reads them in place, nothing is downloaded);
`file://` frames are sent as bytes. Rekognition's limits are handled per frame rather than
crashing the batch:

* JPEG/PNG only, at least 80 px a side: anything else fails its frame with the reason;
* at most 5 MB as bytes, 15 MB from S3: a larger frame is re-encoded smaller (JPEG, same aspect
  ratio, so the normalised boxes still fit the original) and sent as bytes; the response records it
  under ``RekoInput``;
* DetectText reads at most 100 words: a frame that hits the cap is marked under ``RekoInput``.

Errors: throttling and 5xx are retried by botocore (adaptive mode, every attempt paced by
`reko.aws.ratelimit`); if they persist they surface as `RetryableAnalysisError`. Errors about
the image or the request are `FrameAnalysisError`, recorded against the frame.
"""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError

from reko import config
from reko.analysis.base import Analysis, FrameAnalysisError, RetryableAnalysisError
from reko.aws import ratelimit

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

log = logging.getLogger(__name__)

MAX_BYTES = 5 * 1024 * 1024
MAX_S3_BYTES = 15 * 1024 * 1024
MIN_SIDE_PX = 80
MAX_WORDS = 100
MAX_REGIONS = 10
RETRYABLE_CODES = frozenset({"ThrottlingException", "ProvisionedThroughputExceededException"})
FRAME_CODES = frozenset(
    {
        "InvalidImageFormatException",
        "ImageTooLargeException",
        "InvalidS3ObjectException",
        "InvalidParameterException",
    }
)
_REFETCH_CODES = frozenset(
    {"ImageTooLargeException", "InvalidImageFormatException", "InvalidParameterException"}
)
OPERATIONS = {"text": "DetectText", "faces": "DetectFaces", "labels": "DetectLabels"}
_METHODS = {"text": "detect_text", "faces": "detect_faces", "labels": "detect_labels"}
VERSION_KEYS = {"text": "TextModelVersion", "labels": "LabelModelVersion"}  # DetectFaces names none
_JPEG, _PNG = b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n"


def default_client_config(threads: int | None = None) -> Config:
    """Adaptive retries (a per-client token bucket that backs off after a throttle, retrying
    throttles and 5xx) and enough pooled connections for the task's threads."""
    threads = threads or config.rekognition_threads()
    return Config(
        retries={"mode": "adaptive", "total_max_attempts": config.rekognition_max_attempts()},
        max_pool_connections=max(10, threads + 2),
        connect_timeout=10,
        read_timeout=60,
    )


class RekognitionHook(AwsBaseHook):
    """Interact with Amazon Rekognition, every request paced by reko's client-side rate limiter.

    Thin wrapper around :external+boto3:py:class:`boto3.client("rekognition") <Rekognition.Client>`.
    Additional arguments (such as ``aws_conn_id``) are passed down to AwsBaseHook.

    :param rate_limit: pace requests with `reko.aws.ratelimit` (sized from `quota_tps`); turn off
        only for tools that pace themselves.
    """

    def __init__(self, *args: Any, rate_limit: bool = True, **kwargs: Any) -> None:
        kwargs["client_type"] = "rekognition"
        kwargs.setdefault("config", default_client_config())
        super().__init__(*args, **kwargs)
        self.rate_limit = rate_limit
        self._tps: dict[str, float] = {}
        self._tps_lock = threading.Lock()

    @cached_property
    def conn(self) -> Any:
        client = super().conn
        if self.rate_limit:
            client.meta.events.register(
                "before-send.rekognition", ratelimit.before_send_handler(self.limiter_for)
            )
        return client

    def limiter_for(self, operation: str) -> ratelimit.RateLimiter:
        """The limiter pacing `operation`, sized once per hook from `quota_tps`."""
        with self._tps_lock:  # the batch's threads share one lookup
            if operation not in self._tps:
                self._tps[operation] = ratelimit.quota_tps(operation, aws_conn_id=self.aws_conn_id)
        return ratelimit.get_limiter(operation, self.conn_region_name, self._tps[operation])


def _image_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the header, or a FrameAnalysisError naming what is wrong."""
    if not (data.startswith(_JPEG) or data.startswith(_PNG)):
        head = data[:8].hex() or "empty"
        raise FrameAnalysisError(
            f"frame is not a JPEG or PNG image (starts with {head}); Rekognition reads only those"
        )
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            size = image.size
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise FrameAnalysisError(f"frame image cannot be decoded: {exc}") from exc
    if min(size) < MIN_SIDE_PX:
        raise FrameAnalysisError(
            f"frame is {size[0]}x{size[1]} px; Rekognition needs at least {MIN_SIDE_PX} px a side"
        )
    return size


def shrink(data: bytes, limit: int = MAX_BYTES) -> tuple[bytes, dict[str, Any]]:
    """Re-encode an image as JPEG under `limit` bytes, keeping its aspect ratio; say what was done."""
    from PIL import Image

    original = _image_size(data)
    with Image.open(io.BytesIO(data)) as image:
        image = image.convert("RGB")
        scale, quality = 1.0, 90
        while True:
            size = (round(original[0] * scale), round(original[1] * scale))
            if min(size) < MIN_SIDE_PX:
                raise FrameAnalysisError(
                    f"frame of {len(data)} bytes cannot be made smaller than {limit} bytes"
                    f" while keeping {MIN_SIDE_PX} px a side"
                )
            candidate = image if scale == 1.0 else image.resize(size, Image.Resampling.LANCZOS)
            out = io.BytesIO()
            candidate.save(out, "JPEG", quality=quality, optimize=True)
            if out.tell() <= limit:
                break
            if quality > 75:
                quality -= 10
            else:
                scale *= 0.8
    encoded = out.getvalue()
    note = {
        "resized": True,
        "original_bytes": len(data),
        "sent_bytes": len(encoded),
        "original_size": list(original),
        "sent_size": list(size),
        "jpeg_quality": quality,
    }
    return encoded, note


def _regions(value: Any) -> list[dict]:
    """Validate `regions_of_interest`: up to 10 `{"BoundingBox": {Left, Top, Width, Height}}` in 0-1."""
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_REGIONS:
        raise ValueError(f"regions_of_interest must be a list of 1-{MAX_REGIONS} regions, got {value!r}")
    regions = []
    for region in value:
        box = region.get("BoundingBox") if isinstance(region, dict) else None
        keys = ("Left", "Top", "Width", "Height")
        if not isinstance(box, dict) or set(box) != set(keys):
            raise ValueError(
                f"each of regions_of_interest must be {{'BoundingBox': {{{', '.join(keys)}}}}},"
                f" got {region!r}"
            )
        if not all(isinstance(box[k], int | float) and 0 <= box[k] <= 1 for k in keys):
            raise ValueError(f"bounding box values are ratios of the frame (0-1), got {box!r}")
        regions.append({"BoundingBox": {k: float(box[k]) for k in keys}})
    return regions


def request_params(kind: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """The request parameters besides `Image` for one analysis, from the run's options:
    `min_confidence` (0-100), `regions_of_interest` (text), `face_attributes`, `max_labels`."""
    options = options or {}
    unknown = set(options) - {"min_confidence", "regions_of_interest", "face_attributes", "max_labels"}
    if unknown:
        raise ValueError(f"unknown Rekognition options {sorted(unknown)}")
    confidence = options.get("min_confidence")
    if confidence is not None and not 0 <= float(confidence) <= 100:
        raise ValueError(f"min_confidence must be between 0 and 100, got {confidence}")
    params: dict[str, Any] = {}
    if kind == "text":
        filters: dict[str, Any] = {}
        if confidence is not None:
            filters["WordFilter"] = {"MinConfidence": float(confidence)}
        if options.get("regions_of_interest"):
            filters["RegionsOfInterest"] = _regions(options["regions_of_interest"])
        if filters:
            params["Filters"] = filters
    elif kind == "faces":
        params["Attributes"] = list(options.get("face_attributes") or ["DEFAULT"])
    elif kind == "labels":
        if confidence is not None:
            params["MinConfidence"] = float(confidence)
        if options.get("max_labels"):
            params["MaxLabels"] = int(options["max_labels"])
    else:
        raise ValueError(f"unknown analysis kind {kind!r}; Rekognition does {sorted(OPERATIONS)}")
    return params


class RekognitionAnalyser:
    """One Rekognition analysis (`text`, `faces` or `labels`) of frames, bound to a hook.

    Subclasses call another operation (`operation`, `method`) with per-frame parameters
    (`frame_params`) and reshape its answer (`_annotated`); the limits and errors stay these."""

    operation: str
    method: str

    def __init__(self, kind: str, options: dict[str, Any] | None = None, hook: RekognitionHook | None = None):
        self.kind = kind
        self.params = request_params(kind, options)
        if not hasattr(self, "operation"):
            self.operation, self.method = OPERATIONS[kind], _METHODS[kind]
        self.hook = hook or RekognitionHook(aws_conn_id=config.aws_conn_id())
        self._method: Callable[..., dict] | None = None
        self._lock = threading.Lock()

    def _call(self, **params: Any) -> dict[str, Any]:
        if self._method is None:
            with self._lock:  # threads of one batch share one client (boto3 clients are thread safe)
                if self._method is None:
                    self._method = getattr(self.hook.conn, self.method)
        return self._method(**params)

    def frame_params(self, frame: ObjectStoragePath) -> dict[str, Any]:
        """Request parameters that depend on the frame (none here)."""
        return {}

    def run(self, frame: ObjectStoragePath) -> dict[str, Any]:
        """Analyse one frame; a Rekognition-shaped response (plus `RekoInput` when adapted)."""
        note: dict[str, Any] = {}
        extra = self.frame_params(frame)
        if frame.protocol == "s3":
            image: dict[str, Any] = {"S3Object": {"Bucket": frame.bucket, "Name": frame.key}}
        else:
            image, note = self._bytes_image(frame.read_bytes())
        try:
            response = self._send(image, extra)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if "S3Object" not in image or code not in _REFETCH_CODES:
                raise self._mapped(exc, frame) from exc
            # the object is over a limit or unreadable: fetch it once to adapt it or to say why
            try:
                data = frame.read_bytes()
            except FileNotFoundError as missing:
                raise FrameAnalysisError(f"frame image missing: {frame}") from missing
            _image_size(data)  # a clear reason for a bad or tiny image
            if code != "ImageTooLargeException":
                raise self._mapped(exc, frame) from exc
            log.info("%s: %s is too large to read from S3: sending it re-encoded", self.operation, frame)
            image, note = self._bytes_image(data, rejected=code)
            try:
                response = self._send(image, extra)
            except ClientError as again:
                raise self._mapped(again, frame) from again
        return self._annotated(response, note)

    def _bytes_image(self, data: bytes, rejected: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        _image_size(data)
        if len(data) <= MAX_BYTES and rejected is None:
            return {"Bytes": data}, {}
        encoded, note = shrink(data)
        note["reason"] = (
            f"{rejected} from S3" if rejected else f"over the {MAX_BYTES} byte limit for images sent as bytes"
        )
        return {"Bytes": encoded}, note

    def _send(self, image: dict[str, Any], extra: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            response = self._call(Image=image, **self.params, **(extra or {}))
        except ClientError:
            raise
        except (ConnectionError, HTTPClientError) as exc:
            raise RetryableAnalysisError(f"{self.operation} connection failed: {exc}") from exc
        except BotoCoreError as exc:
            raise FrameAnalysisError(f"{self.operation} request failed: {exc}") from exc
        response.pop("ResponseMetadata", None)
        return response

    def _mapped(self, exc: ClientError, frame: ObjectStoragePath) -> Exception:
        error = exc.response.get("Error", {})
        code, message = error.get("Code", "Unknown"), error.get("Message", str(exc))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        reason = f"{self.operation} {code}: {message}"
        if code in RETRYABLE_CODES or status >= 500:
            return RetryableAnalysisError(reason)
        if code == "InvalidS3ObjectException":
            reason += f" ({frame})"
        return FrameAnalysisError(reason)

    def _annotated(self, response: dict[str, Any], note: dict[str, Any]) -> dict[str, Any]:
        if self.kind == "text":
            words = sum(1 for d in response.get("TextDetections", []) if d.get("Type") == "WORD")
            if words >= MAX_WORDS:
                note["word_limit_reached"] = MAX_WORDS
        if note:
            response["RekoInput"] = note
        return response


def rekognition_analysis(kind: str, options: dict[str, Any] | None = None) -> Analysis:
    """A Rekognition analysis bound into the seam; `model` is completed from each response."""
    analyser = RekognitionAnalyser(kind, options)
    return Analysis(
        kind,
        "aws",
        f"rekognition-{OPERATIONS[kind]}",
        analyser.run,
        version_key=VERSION_KEYS.get(kind),
        concurrency=config.rekognition_threads(),
    )
