"""Keeping many mapped tasks together at, not over, a Rekognition TPS quota.

Three layers, each doing what the others cannot:

* The Airflow pool (`ensure_pool`) bounds how many analysis tasks run at once, across all workers.
* The client-side limiter here spaces the calls so their sum stays under the quota. It is a GCRA
  ("virtual scheduling") limiter: every call reserves the next free slot ``1 / rate`` seconds after
  the previous reservation and sleeps until it. It is hooked into botocore's ``before-send`` event,
  so every HTTP attempt passes through it, botocore's own retries included.
* botocore's ``retries={"mode": "adaptive"}`` slows one client down after a throttle and retries
  it; it cannot see other processes, so on its own N tasks still start at N times the quota.

Sizing (``rate`` = TPS x headroom, per Rekognition operation):

* scope ``host`` (default): one limiter for every process on the host, its schedule kept in a small
  file under an exclusive ``flock``; all tasks of the host share ``rate``, whatever their number,
  so a host with 1 or 8 running tasks both call at ``rate``. Correct when all analysis workers
  share one host (LocalExecutor, one Celery worker). The file is per deployment (under
  ``$AIRFLOW_HOME`` unless ``REKO_REKOGNITION_LIMITER_DIR`` says otherwise): two deployments on one
  host have a schedule each; point both at one folder to make them share a quota.
* scope ``task``: each task limits itself to ``rate / pool_slots``. The pool guarantees at most
  ``pool_slots`` tasks run at once anywhere, so the sum never exceeds ``rate``, on any number of
  hosts; the price is idle quota whenever fewer than ``pool_slots`` tasks are running.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from reko import config

log = logging.getLogger(__name__)

QUOTA_SERVICE_CODE = "rekognition"
_MAX_BACKLOG_S = 600.0  # a schedule further ahead than this is a clock jump or a stale file: reset


class RateLimiter(Protocol):
    rate: float

    def acquire(self) -> float:
        """Wait for the next free slot; return the seconds waited."""


def _reserve(tat: float, now: float, interval: float) -> tuple[float, float]:
    """GCRA step: (time this call may go, the next theoretical arrival time)."""
    if tat > now + _MAX_BACKLOG_S or tat <= 0:
        tat = now
    start = max(tat, now)
    return start, start + interval


class LocalRateLimiter:
    """Spaces calls of one process (all its threads) at ``rate`` per second."""

    def __init__(self, rate: float) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be > 0, got {rate}")
        self.rate = rate
        self._interval = 1.0 / rate
        self._tat = 0.0
        self._lock = threading.Lock()

    def acquire(self) -> float:
        with self._lock:
            now = time.time()
            start, self._tat = _reserve(self._tat, now, self._interval)
        wait = start - now
        if wait > 0:
            time.sleep(wait)
        return max(wait, 0.0)


class HostRateLimiter:
    """Spaces calls of every process on this host that uses the same state file at ``rate``/s.

    The schedule (one double, the next free slot in wall-clock seconds) lives in ``path``; a call
    locks the file, reserves a slot, unlocks, then sleeps outside the lock.
    """

    def __init__(self, rate: float, path: Path) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be > 0, got {rate}")
        self.rate = rate
        self.path = path
        self._interval = 1.0 / rate
        self._lock = threading.Lock()  # flock is per open file: threads serialise here first
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)

    def acquire(self) -> float:
        with self._lock:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                raw = os.pread(self._fd, 8, 0)
                tat = struct.unpack("d", raw)[0] if len(raw) == 8 else 0.0
                now = time.time()
                start, tat = _reserve(tat, now, self._interval)
                os.pwrite(self._fd, struct.pack("d", tat), 0)
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        wait = start - now
        if wait > 0:
            time.sleep(wait)
        return max(wait, 0.0)

    def close(self) -> None:
        os.close(self._fd)


_limiters: dict[tuple, RateLimiter] = {}
_limiters_lock = threading.Lock()


def limiter_rate(tps: float, *, scope: str | None = None, pool_slots: int | None = None) -> float:
    """Calls per second one limiter may make: TPS x headroom, divided by the pool's slots for `task`."""
    scope = scope or config.rekognition_limiter_scope()
    rate = tps * config.rekognition_headroom()
    if scope == "task":
        rate /= pool_slots or config.rekognition_pool_slots()
    return rate


def get_limiter(operation: str, region: str | None, tps: float) -> RateLimiter:
    """The limiter for one Rekognition operation in one region (quotas are per operation), one per
    process and key; with scope `host` its schedule is shared with the host's other processes."""
    scope = config.rekognition_limiter_scope()
    rate = limiter_rate(tps, scope=scope)
    folder = Path(config.rekognition_limiter_dir()) if scope == "host" else None
    key = (scope, operation, region or "default", round(rate, 6), folder)
    with _limiters_lock:
        limiter = _limiters.get(key)
        if limiter is None:
            if folder is not None:
                name = re.sub(r"[^A-Za-z0-9_.-]", "_", f"reko-rekognition-{region or 'default'}-{operation}")
                limiter = HostRateLimiter(rate, folder / f"{name}.gcra")
            else:
                limiter = LocalRateLimiter(rate)
            log.info("Rekognition %s limited to %.2f calls/s (scope %s)", operation, rate, scope)
            _limiters[key] = limiter
        return limiter


def before_send_handler(limiter_for: Callable[[str], RateLimiter | None]) -> Callable[..., None]:
    """A botocore ``before-send`` handler that makes every attempt wait for its operation's slot."""

    def handler(request: Any = None, event_name: str = "", **_: Any) -> None:
        operation = event_name.rsplit(".", 1)[-1]
        limiter = limiter_for(operation)
        if limiter is not None:
            limiter.acquire()
        return None  # returning a response would short-circuit the request

    return handler


def _matches(name: str, operation: str) -> bool:
    """Does a Service Quotas quota name describe the TPS of this operation?"""
    lowered = name.lower()
    return operation.lower() in lowered.replace(" ", "") and (
        "per second" in lowered or "tps" in lowered or "transactions" in lowered
    )


def quota_tps(operation: str, client: Any | None = None, *, aws_conn_id: str | None = None) -> float:
    """The TPS to size the limiter with for `operation` (e.g. "DetectText").

    With `REKO_REKOGNITION_QUOTA_LOOKUP=true`, reads the applied quota from Service Quotas (the
    quota whose name mentions the operation and transactions per second; codes differ between
    quotas and are not in the API model, so they are found by name), and takes the smaller of it
    and `REKO_REKOGNITION_TPS` when that is set too (a deployment may use only part of the quota).
    Any failure (no permission, no such quota) logs why and falls back to `REKO_REKOGNITION_TPS`.
    """
    configured = config.rekognition_tps()
    if not config.rekognition_quota_lookup():
        return configured
    try:
        if client is None:
            from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

            client = AwsBaseHook(
                aws_conn_id=aws_conn_id or config.aws_conn_id(), client_type="service-quotas"
            ).conn
        found = None
        for page in client.get_paginator("list_service_quotas").paginate(ServiceCode=QUOTA_SERVICE_CODE):
            for quota in page.get("Quotas", []):
                if _matches(quota.get("QuotaName", ""), operation):
                    found = quota
                    break
            if found:
                break
        if found is None:
            log.warning("no Service Quotas entry for Rekognition %s: using %s TPS", operation, configured)
            return configured
        # the applied value (list_service_quotas may list defaults only for unadjusted quotas)
        applied = client.get_service_quota(ServiceCode=QUOTA_SERVICE_CODE, QuotaCode=found["QuotaCode"])
        value = float(applied["Quota"]["Value"])
    except Exception as exc:  # noqa: BLE001 - lookup is best effort by design
        log.warning("cannot read the Rekognition %s quota (%s): using %s TPS", operation, exc, configured)
        return configured
    if value <= 0:
        return configured
    tps = min(value, configured) if config.rekognition_tps_configured() else value
    log.info("Rekognition %s quota %s TPS (%s): using %s TPS", operation, value, found["QuotaCode"], tps)
    return tps


def ensure_pool(name: str | None = None, slots: int | None = None) -> dict[str, Any]:
    """Create the Rekognition pool, or set its slots, in the metadata DB (run where the DB is
    reachable: a deployment step, `airflow pools set` is the CLI equivalent). Returns the pool."""
    from airflow.models.pool import Pool

    name = name or config.rekognition_pool()
    slots = slots or config.rekognition_pool_slots()
    description = (
        f"Tasks calling Amazon Rekognition; with {config.rekognition_tps():g} TPS each of {slots}"
        " running tasks shares the quota (reko.aws.ratelimit)"
    )
    pool = Pool.create_or_update_pool(name, slots, description, include_deferred=False)
    return {"name": pool.pool, "slots": pool.slots, "description": pool.description}


def pool_cli_command(name: str | None = None, slots: int | None = None) -> list[str]:
    """The `airflow pools set` command creating the same pool (for compose/init scripts)."""
    name = name or config.rekognition_pool()
    slots = slots or config.rekognition_pool_slots()
    return ["airflow", "pools", "set", name, str(slots), "Tasks calling Amazon Rekognition"]
