"""One run at a time per video: a lease document in OpenSearch, taken atomically.

Two runs of the same video at once (a double click, a scan racing a manual trigger, a delete
during an analysis) would cut frames into the same folder and interleave their loads, so
detections of one run's settings could be deleted or kept by the other's. The run that holds the
lease works; the other waits. A lease whose run has ended (killed scheduler, deleted run) is
taken over, so nothing is locked for ever. OpenSearch is the one store every task already
reaches; `op_type=create` and `if_seq_no`/`if_primary_term` make taking and taking over atomic.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from reko.index.client import IndexNames

if TYPE_CHECKING:
    from opensearchpy import OpenSearch

log = logging.getLogger(__name__)

LEASE_MAPPING = {
    "dynamic": "strict",
    "properties": {
        "video_id": {"type": "keyword"},
        "dag_id": {"type": "keyword"},
        "run_id": {"type": "keyword"},
        "taken_at": {"type": "date"},
    },
}
LIVE_RUN_STATES = frozenset({"queued", "running"})


@dataclass(frozen=True)
class Holder:
    """The DAG run that holds (or asks for) a video's lease."""

    dag_id: str
    run_id: str

    def __str__(self) -> str:
        return f"{self.dag_id} run {self.run_id}"


def _ensure_index(client: OpenSearch, index: str) -> None:
    if not client.indices.exists(index=index):
        body = {"settings": {"number_of_shards": 1, "auto_expand_replicas": "0-1"}, "mappings": LEASE_MAPPING}
        client.indices.create(index=index, body=body, params={"ignore": 400})


def claim(
    client: OpenSearch,
    names: IndexNames,
    video_id: str,
    me: Holder,
    run_is_live: Callable[[Holder], bool],
) -> Holder | None:
    """Take the video's lease for `me`; None when taken (or already mine), else who holds it.

    `run_is_live(holder)` says whether the holder's run is still queued or running; a lease of a
    finished run is taken over.
    """
    from opensearchpy.exceptions import ConflictError, NotFoundError

    index = names.leases
    _ensure_index(client, index)
    body = {**asdict(me), "video_id": video_id, "taken_at": datetime.now(UTC).isoformat()}
    try:
        client.create(index=index, id=video_id, body=body, params={"refresh": "true"})
        return None
    except ConflictError:
        pass
    try:
        current = client.get(index=index, id=video_id)
    except NotFoundError:  # released between our create and get: try once more
        return claim(client, names, video_id, me, run_is_live)
    holder = Holder(current["_source"]["dag_id"], current["_source"]["run_id"])
    if holder == me:
        return None
    if run_is_live(holder):
        return holder
    try:
        client.index(
            index=index,
            id=video_id,
            body=body,
            params={
                "if_seq_no": current["_seq_no"],
                "if_primary_term": current["_primary_term"],
                "refresh": "true",
            },
        )
    except ConflictError:  # another run took it over first
        return Holder(**{k: client.get(index=index, id=video_id)["_source"][k] for k in ("dag_id", "run_id")})
    log.warning("took over the lease on %s from %s, which is no longer running", video_id, holder)
    return None


def release(client: OpenSearch, names: IndexNames, video_id: str, me: Holder) -> bool:
    """Give the lease back if `me` holds it (never someone else's); True when released."""
    from opensearchpy.exceptions import ConflictError, NotFoundError

    try:
        current = client.get(index=names.leases, id=video_id)
    except NotFoundError:
        return False
    if Holder(current["_source"]["dag_id"], current["_source"]["run_id"]) != me:
        return False
    try:
        client.delete(
            index=names.leases,
            id=video_id,
            params={
                "if_seq_no": current["_seq_no"],
                "if_primary_term": current["_primary_term"],
                "refresh": "true",
            },
        )
    except (ConflictError, NotFoundError):
        return False
    return True


def holder_of(client: OpenSearch, names: IndexNames, video_id: str) -> Holder | None:
    """Who holds the video's lease now, if anyone."""
    from opensearchpy.exceptions import NotFoundError

    try:
        source = client.get(index=names.leases, id=video_id)["_source"]
    except NotFoundError:
        return None
    return Holder(source["dag_id"], source["run_id"])


def airflow_run_is_live(holder: Holder) -> bool:
    """From inside a task: is the holder's run still queued or running (via the execution API)?"""
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    try:
        state = RuntimeTaskInstance.get_dagrun_state(holder.dag_id, holder.run_id)
    except Exception as exc:  # noqa: BLE001 - a run that cannot be found holds nothing
        log.warning("cannot read the state of %s (%s): treating it as ended", holder, exc)
        return False
    return str(state).lower().rsplit(".", 1)[-1] in LIVE_RUN_STATES
