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
