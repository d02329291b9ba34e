"""Runtime settings read from the environment, with defaults that work out of the box.

Kept free of Airflow imports so DAG files can read defaults at parse time cheaply.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
BACKENDS = ("local", "aws")
ANALYSES = ("text", "faces", "labels")


def default_backend() -> str:
    """The backend a run uses when its Param is left alone (`REKO_BACKEND`, else `local`)."""
    backend = os.environ.get("REKO_BACKEND", "local")
    if backend not in BACKENDS:
        raise ValueError(f"REKO_BACKEND={backend!r} is not one of {BACKENDS}")
    return backend


def preload_enabled() -> bool:
    """Whether a LocalExecutor's scheduler imports what reko's tasks need before it forks its
    workers (`REKO_PRELOAD_TASK_MODULES`, default on; `reko.preload`)."""
    return os.environ.get("REKO_PRELOAD_TASK_MODULES", "true").lower() not in ("0", "false", "no")


def work_uri() -> str:
    """Where frames and per-frame results are stored (`REKO_WORK_URI`)."""
    return os.environ.get("REKO_WORK_URI", (REPO_ROOT / ".data" / "work").as_uri())


def index_prefix() -> str:
    """Prefix of the OpenSearch indices, so several deployments (or test runs) share a cluster."""
    return os.environ.get("REKO_INDEX_PREFIX", "reko")


def opensearch_conn_id() -> str:
    return os.environ.get("REKO_OPENSEARCH_CONN_ID", "opensearch_default")


def analyser_override(kind: str) -> str | None:
    """A `module:Class` path replacing the local analyser for `kind` (`REKO_LOCAL_<KIND>_ANALYSER`).

    Lets a deployment plug in its own model without editing code.
    """
    return os.environ.get(f"REKO_LOCAL_{kind.upper()}_ANALYSER") or None


def _positive_number(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number") from None
    if value <= 0:
        raise ValueError(f"{name} must be greater than 0, got {raw!r}")
    return value


def near_duplicate_bits() -> int:
    """Frames whose perceptual hash (256-bit dHash) is within this many bits of the last analysed
    frame reuse its result (`REKO_NEAR_DUPLICATE_BITS`, default 0: off, only byte-identical
    frames are reused). Measured on the finish footage (seed 1): consecutive frames differ by
    >= 6 bits, and a 6-bit pair held a new bib read, so 4 costs nothing there and 8 costs recall.
    """
    return _bounded_int("REKO_NEAR_DUPLICATE_BITS", 0, 0, 256)


def _bounded_int(name: str, default: int, low: int, high: int) -> int:
    """A whole-number setting within [low, high], or a clear error naming the variable."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a whole number") from None
    if not low <= value <= high:
        raise ValueError(f"{name} must be {low}..{high}, got {raw!r}")
    return value


TEXT_DET_SIDE = 736  # RapidOCR's default: the frame is scaled so its shorter side is this long


def text_det_side() -> int:
    """Shorter side (px) the local text detector scales the frame (or its region of interest) to
    (`REKO_TEXT_DET_SIDE`, default 736). Larger finds smaller text and costs about its square."""
    return _bounded_int("REKO_TEXT_DET_SIDE", TEXT_DET_SIDE, 64, 4096)


def text_roi() -> tuple[float, float, float, float]:
    """Region of the frame the local text detector searches, as left,top,right,bottom fractions
    (`REKO_TEXT_ROI`, default the whole frame "0,0,1,1"; e.g. "0,0.33,1,1" skips the sky)."""
    raw = os.environ.get("REKO_TEXT_ROI", "").strip()
    if not raw:
        return (0.0, 0.0, 1.0, 1.0)
    try:
        left, top, right, bottom = (float(v) for v in raw.split(","))
    except ValueError:
        raise ValueError(f"REKO_TEXT_ROI={raw!r} must be four numbers: left,top,right,bottom") from None
    if not (0.0 <= left < right <= 1.0 and 0.0 <= top < bottom <= 1.0):
        raise ValueError(f"REKO_TEXT_ROI={raw!r}: need 0 <= left < right <= 1 and 0 <= top < bottom <= 1")
    return (left, top, right, bottom)


def bulk_max_bytes() -> int:
    """Largest `_bulk` request body in bytes (`REKO_BULK_MAX_BYTES`, default 5 MiB).

    Amazon OpenSearch Service caps HTTP bodies at 10 MiB on small instance types and 100 MiB on
    large ones; a few MiB per request is the usual sweet spot for throughput.
    """
    return int(_positive_number("REKO_BULK_MAX_BYTES", 5 * 1024 * 1024))


def bulk_max_docs() -> int:
    """Most actions in one `_bulk` request (`REKO_BULK_MAX_DOCS`, default 5000)."""
    return int(_positive_number("REKO_BULK_MAX_DOCS", 5000))


def bulk_max_retry_s() -> float:
    """Time a bulk load may spend backing off and retrying before it fails (`REKO_BULK_MAX_RETRY_S`)."""
    return _positive_number("REKO_BULK_MAX_RETRY_S", 300.0)


def mediaconvert_poll_s() -> int:
    """Seconds between MediaConvert job status checks (`REKO_MEDIACONVERT_POLL_S`, default 30)."""
    return int(_positive_number("REKO_MEDIACONVERT_POLL_S", 30))


def aws_conn_id() -> str:
    """The Airflow AWS connection the Rekognition calls use (`REKO_AWS_CONN_ID`)."""
    return os.environ.get("REKO_AWS_CONN_ID", "aws_default")


def rekognition_tps() -> float:
    """Transactions per second allowed per Rekognition operation (`REKO_REKOGNITION_TPS`, default 5).

    The account's quota (or the share of it this deployment may use); single digits in some regions.
    """
    return _positive_number("REKO_REKOGNITION_TPS", 5.0)


def rekognition_tps_configured() -> bool:
    return bool(os.environ.get("REKO_REKOGNITION_TPS"))


def rekognition_headroom() -> float:
    """Fraction of the TPS the limiter aims at (`REKO_REKOGNITION_HEADROOM`, default 0.95).

    Calls leave on schedule but arrive with jitter; aiming exactly at the quota gets some of them
    throttled by a 1-second window, aiming 5 % below does not (measured in bench/).
    """
    value = _positive_number("REKO_REKOGNITION_HEADROOM", 0.95)
    if value > 1:
        raise ValueError(f"REKO_REKOGNITION_HEADROOM={value} must be at most 1")
    return value


def rekognition_quota_lookup() -> bool:
    """Read the TPS quota from Service Quotas (`REKO_REKOGNITION_QUOTA_LOOKUP=true`; needs
    `servicequotas:ListServiceQuotas` / `GetServiceQuota`), falling back to `REKO_REKOGNITION_TPS`."""
    return os.environ.get("REKO_REKOGNITION_QUOTA_LOOKUP", "false").lower() in ("1", "true", "yes")


def rekognition_pool() -> str:
    """The Airflow pool every Rekognition-calling task runs in (`REKO_REKOGNITION_POOL`)."""
    return os.environ.get("REKO_REKOGNITION_POOL", "rekognition")


def rekognition_pool_slots() -> int:
    """How many analysis tasks may call Rekognition at once (`REKO_REKOGNITION_POOL_SLOTS`, default 4)."""
    return int(_positive_number("REKO_REKOGNITION_POOL_SLOTS", 4))


def rekognition_threads() -> int:
    """Concurrent calls inside one analysis task (`REKO_REKOGNITION_THREADS`, default 4).

    One thread waits ~0.2-0.5 s per real call, so a task needs a few to use its share of the TPS.
    """
    return int(_positive_number("REKO_REKOGNITION_THREADS", 4))


def rekognition_max_attempts() -> int:
    """Attempts per call botocore makes on throttling/5xx before the frame's own retry
    (`REKO_REKOGNITION_MAX_ATTEMPTS`, default 5); every attempt waits for the rate limiter."""
    return int(_positive_number("REKO_REKOGNITION_MAX_ATTEMPTS", 5))


LIMITER_SCOPES = ("host", "task")


def rekognition_limiter_scope() -> str:
    """`host` (default): one limiter shared by every process on this machine, at the full TPS.
    `task`: each task limits itself to TPS / pool slots (for workers spread over several hosts).
    Set with `REKO_REKOGNITION_LIMITER`."""
    scope = os.environ.get("REKO_REKOGNITION_LIMITER", "host")
    if scope not in LIMITER_SCOPES:
        raise ValueError(f"REKO_REKOGNITION_LIMITER={scope!r} is not one of {LIMITER_SCOPES}")
    return scope


def rekognition_limiter_dir() -> str:
    """Folder of the host limiter's state files (`REKO_REKOGNITION_LIMITER_DIR`).

    Default `$AIRFLOW_HOME/reko-limiter`: one schedule per deployment. The system temp folder
    would make two deployments on one host share (and halve) one quota schedule.
    """
    configured = os.environ.get("REKO_REKOGNITION_LIMITER_DIR")
    if configured:
        return configured
    home = os.environ.get("AIRFLOW_HOME") or str(Path.home() / "airflow")
    return str(Path(home) / "reko-limiter")


def rekognition_price_per_1000() -> float:
    """USD per 1,000 images for the run's cost estimate (`REKO_REKOGNITION_PRICE_PER_1000`).

    Default 1.00: DetectText/DetectLabels/DetectFaces (group 2) and IndexFaces/SearchFacesByImage
    (group 1) list price for the first million images a month in us-east-1; set your region's and
    tier's price. Storing faces in a collection is billed apart (per face-month) and not counted.
    """
    return _positive_number("REKO_REKOGNITION_PRICE_PER_1000", 1.0)


FACE_QUALITY_FILTERS = ("NONE", "AUTO", "LOW", "MEDIUM", "HIGH")


def face_quality_filter() -> str:
    """Rekognition's `QualityFilter` for IndexFaces (`REKO_FACE_QUALITY_FILTER`, default `AUTO`:
    Rekognition's own bar). Faces under the bar are still detected and indexed in OpenSearch, but
    not stored in the collection, so a photo cannot find them (blurred, dark, extreme pose)."""
    value = os.environ.get("REKO_FACE_QUALITY_FILTER", "").strip().upper() or "AUTO"
    if value not in FACE_QUALITY_FILTERS:
        raise ValueError(f"REKO_FACE_QUALITY_FILTER={value!r} is not one of {FACE_QUALITY_FILTERS}")
    return value


def face_max_faces() -> int:
    """Rekognition's `MaxFaces` for IndexFaces (`REKO_FACE_MAX_FACES`, default 100: every face it
    can index, as many as DetectFaces returns). Lower keeps only the largest faces in the
    collection (background spectators out); the others are still in the faces index."""
    return _bounded_int("REKO_FACE_MAX_FACES", 100, 1, 100)


def mediaconvert_price_per_minute() -> float:
    """USD per output minute of the frame-capture job's proxy (`REKO_MEDIACONVERT_PRICE_PER_MINUTE`).

    Default 0.0075: an SD AVC minute of MediaConvert's Basic on-demand tier at its first volume
    tier in us-east-1 (check your region's price; multipliers apply to HD and above 30 fps).
    """
    return _positive_number("REKO_MEDIACONVERT_PRICE_PER_MINUTE", 0.0075)


def lease_wait_s() -> float:
    """Seconds between checks while another run holds a video's lease (`REKO_LEASE_WAIT_S`, default 15).

    The waiting task is rescheduled, so it holds no worker slot meanwhile.
    """
    return _positive_number("REKO_LEASE_WAIT_S", 15.0)


def roster_uri() -> str:
    """Default race roster for `video_analysis` (`REKO_ROSTER_URI`): a CSV of bibs, or empty for none."""
    return os.environ.get("REKO_ROSTER_URI", "").strip()


VIDEO_EXTENSIONS = (".mp4", ".mov", ".m4v", ".mkv", ".avi", ".webm", ".mpg", ".mpeg", ".ts", ".mts", ".mxf")


def archive_uri() -> str:
    """The prefix `video_archive_scan` lists when its Param is left alone (`REKO_ARCHIVE_URI`)."""
    return os.environ.get("REKO_ARCHIVE_URI") or (REPO_ROOT / ".data" / "archive").as_uri()


def scan_schedule() -> str:
    """Cron expression (or preset) of the scan's data intervals, in UTC (`REKO_SCAN_SCHEDULE`, `@hourly`)."""
    return os.environ.get("REKO_SCAN_SCHEDULE") or "@hourly"


def scan_start_date() -> str:
    """First data interval a backfill may ask for (`REKO_SCAN_START_DATE`, ISO date, default 2000-01-01).

    The scan never catches up by itself, so an early date costs nothing; it only bounds backfills.
    """
    return os.environ.get("REKO_SCAN_START_DATE") or "2000-01-01"


def max_active_analyses() -> int:
    """Most `video_analysis` runs at once (`REKO_MAX_ACTIVE_ANALYSES`, default 8): the DAG's
    `max_active_runs`. Runs beyond it, such as a backfill's, wait queued for a slot.

    `REKO_SCAN_MAX_IN_FLIGHT`, the scans' own bound before, is read when the new name is not set.
    """
    if not os.environ.get("REKO_MAX_ACTIVE_ANALYSES") and os.environ.get("REKO_SCAN_MAX_IN_FLIGHT"):
        return int(_positive_number("REKO_SCAN_MAX_IN_FLIGHT", 8))
    return int(_positive_number("REKO_MAX_ACTIVE_ANALYSES", 8))


def scan_poke_s() -> int:
    """Seconds between checks of the triggered analysis runs' states (`REKO_SCAN_POKE_S`, default 15)."""
    return int(_positive_number("REKO_SCAN_POKE_S", 15))


def scan_probe_timeout_s() -> float:
    """Seconds ffprobe/ffmpeg may take to check one archive object (`REKO_SCAN_PROBE_TIMEOUT_S`, 60)."""
    return _positive_number("REKO_SCAN_PROBE_TIMEOUT_S", 60.0)
