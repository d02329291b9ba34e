"""Runner passes in OpenSearch: read a video's words, track and vote them, replace its passes.

Tracking runs after the detections are loaded, on what the index holds, so both backends feed it
the same Rekognition-shaped WORD detections and cached frame results are never paid for twice.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from reko.index.client import IndexNames, search_pages
from reko.runners.passes import PassSettings, find_passes
from reko.runners.reads import Read, number_candidate

if TYPE_CHECKING:
    from opensearchpy import OpenSearch

    from reko.faces.link import FaceBox
    from reko.runners.reread import CropReader, FrameImages
    from reko.runners.roster import Roster

PAGE = 5000
MAX_REJECTED_REPORTED = 50


def number_reads(client: OpenSearch, names: IndexNames, video_id: str) -> Iterator[Read]:
    """This video's number-like WORD detections in frame order (paged with search_after)."""
    body: dict[str, Any] = {
        "size": PAGE,
        "query": {
            "bool": {
                "filter": [
                    {"term": {"video_id": video_id}},
                    {"term": {"kind": "text"}},
                    {"term": {"text_type": "WORD"}},
                ]
            }
        },
        "sort": [{"frame_index": "asc"}, {"ordinal": "asc"}],
        "_source": ["frame_index", "timestamp_ms", "value", "confidence", "bbox", "frame_uri"],
    }
    for hit in search_pages(client, names.detections, body):
        src = hit["_source"]
        box = src.get("bbox")
        if box and number_candidate(src["value"]) is not None:
            yield Read(
                frame_index=src["frame_index"],
                timestamp_ms=src["timestamp_ms"],
                text=src["value"],
                confidence=src["confidence"],
                left=box["left"],
                top=box["top"],
                width=box["width"],
                height=box["height"],
                frame_uri=src.get("frame_uri") or "",
            )


def load_passes(
    client: OpenSearch,
    names: IndexNames,
    video_id: str,
    *,
    backend: str,
    settings: PassSettings,
    roster: Roster | None = None,
    frames: FrameImages | None = None,
    read_crop: CropReader | None = None,
) -> dict[str, Any]:
    """Find this video's runner passes, index them, and delete the passes a re-run no longer finds.

    With the frame images and a crop reader, bibs the detector missed are read again first
    (`reko.runners.reread`); the reads it adds live in the passes only, not in the detections.
    """
    from reko.index.bulk import bulk_load, delete_stale

    started = time.monotonic()
    reads: list[Read] = list(number_reads(client, names, video_id))
    reread = None
    if frames is not None and read_crop is not None:
        from reko.runners.reread import more_reads

        reads, stats = more_reads(reads, settings, roster, frames, read_crop)
        reread = stats.as_dict()
    result = find_passes(reads, settings, roster)
    docs = [p.to_doc(video_id, backend) for p in result.passes]
    linked = link_faces(client, names, video_id, docs)
    written = bulk_load(client, ({"_index": names.passes, "_id": i, "_source": d} for i, d in docs)).written
    emitted = {doc_id for doc_id, _ in docs}
    stale = delete_stale(client, names.passes, video_id, lambda hit: hit["_id"] not in emitted)
    client.indices.refresh(index=names.passes)
    return {
        "passes": written,
        "numbers": sorted({p.number for p in result.passes}),
        "rejected": result.rejected[:MAX_REJECTED_REPORTED],
        "rejected_count": len(result.rejected),
        "roster": roster is not None,
        "face_links": linked,
        "stale_deleted": stale,
        "reread": reread,
        "elapsed_s": round(time.monotonic() - started, 3),
    }


def face_tracks(client: OpenSearch, names: IndexNames, video_id: str) -> dict[str, list[FaceBox]]:
    """This video's face tracks (track id -> its boxes in frame order), from the faces index."""
    from reko.faces.link import FaceBox
    from reko.faces.privacy import private

    if not client.indices.exists(index=names.faces):
        return {}
    body: dict[str, Any] = {
        "size": PAGE,
        "query": {"bool": {"filter": [{"term": {"video_id": video_id}}, {"exists": {"field": "track_id"}}]}},
        "sort": [{"frame_index": "asc"}, {"ordinal": "asc"}],
        "_source": ["track_id", "frame_index", "timestamp_ms", "bbox"],
    }
    tracks: dict[str, list[FaceBox]] = {}
    with private():
        for hit in search_pages(client, names.faces, body):
            src = hit["_source"]
            box = src["bbox"]
            tracks.setdefault(src["track_id"], []).append(
                FaceBox(
                    src["frame_index"],
                    src["timestamp_ms"],
                    box["left"],
                    box["top"],
                    box["width"],
                    box["height"],
                )
            )
    return tracks


def link_faces(client: OpenSearch, names: IndexNames, video_id: str, docs: list[tuple[str, dict]]) -> int:
    """Link the video's face tracks to its passes (`reko.faces.link`), widening each linked pass to
    the frames where only the face was seen; how many passes were linked."""
    from reko.faces.link import extend_pass, link

    tracks = face_tracks(client, names, video_id)
    if not tracks or not docs:
        return 0
    by_id = dict(docs)
    links = link(tracks, {doc_id: doc["frames"] for doc_id, doc in docs})
    for doc_id, found in links.items():
        extend_pass(by_id[doc_id], tracks[found["face_track_id"]], found)
    return len(links)
