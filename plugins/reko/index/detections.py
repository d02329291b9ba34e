"""Detections in OpenSearch: index a video's stored frame results, then delete its stale ids.

Reads results from storage rather than XCom, so what a failed batch did finish is indexed and a
re-run converges to the same index as a clean run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from reko.index.bulk import bulk_load, delete_stale
from reko.index.client import IndexNames, ensure_templates
from reko.index.docs import detection_docs
from reko.storage import VideoStore, read_json

if TYPE_CHECKING:
    from opensearchpy import OpenSearch

log = logging.getLogger(__name__)


def load_detections(
    client: OpenSearch,
    names: IndexNames,
    store: VideoStore,
    *,
    frame_count: int,
    backend: str,
    analyses: list[str],
    min_confidence: float,
) -> dict[str, Any]:
    """Index every stored result, record every failed frame, then delete this video's stale ids.

    Reads results from storage rather than XCom, so what a failed batch did finish is indexed
    and a re-run converges to the same index as a clean run.
    """
    started = time.monotonic()
    ensure_templates(client, names)
    counts: dict[str, list[int]] = {kind: [0] * frame_count for kind in analyses}
    failed: list[dict[str, Any]] = []
    frames_with_results = set()
    models: set[str] = set()

    def actions() -> Iterator[dict[str, Any]]:
        for index in range(frame_count):
            for kind in analyses:
                result = read_json(store.result(backend, kind, index))
                if result is None:
                    error = read_json(store.error(backend, kind, index)) or {}
                    reason = error.get("reason", "not analysed (its batch did not run to the end)")
                    failed.append({"frame_index": index, "kind": kind, "reason": reason})
                    continue
                frames_with_results.add(index)
                models.add(result["model"])
                docs = detection_docs(
                    video_id=store.video_id,
                    frame_index=index,
                    timestamp_ms=result["timestamp_ms"],
                    frame_uri=result["frame_uri"],
                    kind=kind,
                    response=result["response"],
                    backend=result["backend"],
                    model=result["model"],
                    min_confidence=min_confidence,
                )
                counts[kind][index] = len(docs)
                for doc_id, doc in docs:
                    yield {"_index": names.detections, "_id": doc_id, "_source": doc}

    indexed = bulk_load(client, actions()).written
    stale = delete_stale(
        client,
        names.detections,
        store.video_id,
        lambda hit: (
            hit["_source"]["ordinal"]
            >= _count_at(counts, hit["_source"]["kind"], hit["_source"]["frame_index"])
        ),
        ["kind", "frame_index", "ordinal"],
    )
    client.indices.refresh(index=names.detections)
    log.info("indexed %d detections, deleted %d stale, %d failed frames", indexed, stale, len(failed))
    return {
        "detections": indexed,
        "stale_deleted": stale,
        "frames_with_results": len(frames_with_results),
        "failed_frames": failed,
        "models": sorted(models),
        "elapsed_s": round(time.monotonic() - started, 3),
    }


def _count_at(counts: dict[str, list[int]], kind: str, index: int) -> int:
    per_frame = counts.get(kind)
    return per_frame[index] if per_frame is not None and index < len(per_frame) else 0
