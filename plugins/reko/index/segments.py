"""Merge detections of one value into continuous appearance segments.

Two sightings of a value belong to one segment when they are at most `gap_factor` x the
capture interval apart (default 1.2: one missed frame splits a segment, jitter does not).
The input arrives sorted by (value, time), so only the open segment is held in memory.
`load_segments` reads a video's indexed detections that way and replaces its segments.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reko.index.bulk import bulk_load, delete_stale

if TYPE_CHECKING:
    from opensearchpy import OpenSearch

    from reko.index.client import IndexNames
    from reko.storage import VideoStore

DEFAULT_GAP_FACTOR = 1.2


@dataclass(frozen=True)
class Sighting:
    value_norm: str
    value: str
    frame_index: int
    timestamp_ms: int
    confidence: float
    frame_uri: str


def segment_id(video_id: str, kind: str, value_norm: str, start_frame: int) -> str:
    digest = hashlib.sha1(value_norm.encode()).hexdigest()[:12]
    return f"{video_id}:{kind}:{digest}:{start_frame:07d}"


def build_segments(
    sightings: Iterable[Sighting],
    *,
    video_id: str,
    kind: str,
    backend: str,
    interval_ms: int,
    gap_factor: float = DEFAULT_GAP_FACTOR,
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield (id, segment document) from sightings sorted by value_norm then time."""
    max_gap = gap_factor * interval_ms
    run: list[Sighting] = []
    for s in sightings:
        if run and (s.value_norm != run[-1].value_norm or s.timestamp_ms - run[-1].timestamp_ms > max_gap):
            yield _segment(run, video_id, kind, backend)
            run = []
        if run and s.frame_index == run[-1].frame_index:
            if s.confidence > run[-1].confidence:
                run[-1] = s  # the same value twice in a frame: keep the better sighting
            continue
        run.append(s)
    if run:
        yield _segment(run, video_id, kind, backend)


def _segment(run: list[Sighting], video_id: str, kind: str, backend: str) -> tuple[str, dict[str, Any]]:
    first, last = run[0], run[-1]
    best = max(run, key=lambda s: (s.confidence, -s.frame_index))
    doc = {
        "video_id": video_id,
        "kind": kind,
        "value": best.value,
        "value_norm": first.value_norm,
        "start_ms": first.timestamp_ms,
        "end_ms": last.timestamp_ms,
        "duration_ms": last.timestamp_ms - first.timestamp_ms,
        "start_frame": first.frame_index,
        "end_frame": last.frame_index,
        "frame_count": len(run),
        "best_confidence": round(best.confidence, 3),
        "thumbnail_frame_index": best.frame_index,
        "thumbnail_uri": best.frame_uri,
        "backend": backend,
    }
    return segment_id(video_id, kind, first.value_norm, first.frame_index), doc


def _sightings(client: OpenSearch, index: str, video_id: str, kind: str) -> Iterator[Sighting]:
    """This video's detections of `kind`, sorted by value then time, paged with search_after."""
    from reko.index.client import search_pages

    filters: list[dict] = [{"term": {"video_id": video_id}}, {"term": {"kind": kind}}]
    if kind == "text":
        filters.append({"term": {"text_type": "WORD"}})  # bibs are words; lines would double them
    body: dict[str, Any] = {
        "size": 2000,
        "query": {"bool": {"filter": filters}},
        "sort": [{"value_norm": "asc"}, {"frame_index": "asc"}, {"ordinal": "asc"}],
        "_source": list(SIGHTING_FIELDS),
    }
    for hit in search_pages(client, index, body):
        yield Sighting(**hit["_source"])


TEXT = {"term": {"kind": "text"}}
SIGHTING_FIELDS = ("value", "value_norm", "frame_index", "timestamp_ms", "confidence", "frame_uri")


def phrase_query(text: str, value_norm: str) -> dict[str, Any]:
    """LINEs that are the phrase or hold it ("FINISH LINE" in "CITY MARATHON FINISH LINE")."""
    should = [{"term": {"value_norm": value_norm}}, {"match_phrase": {"value": text}}]
    lines = [{"term": {"text_type": "LINE"}}]
    return {"bool": {"should": should, "minimum_should_match": 1, "filter": lines}}


def phrase_segments(
    client: OpenSearch,
    names: IndexNames,
    text: str,
    *,
    filters: list[dict[str, Any]],
    interval_ms_of: dict[str, int] | None = None,
) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """{video id: [(id, segment)]} of a phrase of several words, from the LINEs that hold it.

    The index has segments of words only (a bib is a word; lines would double every box), so a
    phrase's appearances are merged here, from every hit and exactly as words' are, for the page's
    timeline and for clips. `filters` narrow the hits (videos, confidence); `interval_ms_of` gives
    each video's capture interval (the merge gap), read from the videos index when not given.
    """
    from reko.index.client import search_pages
    from reko.index.docs import normalise

    value_norm = normalise(text)
    body: dict[str, Any] = {
        "size": 2000,
        "query": {"bool": {"must": [phrase_query(text, value_norm)], "filter": [TEXT, *filters]}},
        "sort": [{"video_id": "asc"}, {"frame_index": "asc"}, {"ordinal": "asc"}],
        "_source": ["video_id", *SIGHTING_FIELDS],
    }
    by_video: dict[str, list[Sighting]] = {}
    for hit in search_pages(client, names.detections, body):
        src = hit["_source"]
        by_video.setdefault(src["video_id"], []).append(
            Sighting(
                value_norm=value_norm,
                value=text,
                frame_index=src["frame_index"],
                timestamp_ms=src["timestamp_ms"],
                confidence=src["confidence"],
                frame_uri=src.get("frame_uri") or "",
            )
        )
    intervals = dict(interval_ms_of or {})
    unknown = [v for v in by_video if v not in intervals]
    if unknown:
        docs = client.mget(index=names.videos, body={"ids": unknown}, _source_includes=["frame_interval_ms"])
        intervals |= {d["_id"]: d["_source"]["frame_interval_ms"] for d in docs["docs"] if d.get("found")}
    segments: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for video_id, sightings in by_video.items():
        interval = intervals.get(video_id, 1000)
        segments[video_id] = list(
            build_segments(sightings, video_id=video_id, kind="text", backend="", interval_ms=interval)
        )
    return segments


def load_segments(
    client: OpenSearch,
    names: IndexNames,
    store: VideoStore,
    *,
    backend: str,
    analyses: list[str],
) -> dict[str, Any]:
    """Merge this video's indexed detections into segments, replace its old segments."""
    started = time.monotonic()
    emitted: set[str] = set()

    def actions() -> Iterator[dict[str, Any]]:
        for kind in analyses:
            sightings = _sightings(client, names.detections, store.video_id, kind)
            for seg_id, doc in build_segments(
                sightings, video_id=store.video_id, kind=kind, backend=backend, interval_ms=store.interval_ms
            ):
                emitted.add(seg_id)
                yield {"_index": names.segments, "_id": seg_id, "_source": doc}

    indexed = bulk_load(client, actions()).written
    stale = delete_stale(client, names.segments, store.video_id, lambda hit: hit["_id"] not in emitted)
    client.indices.refresh(index=names.segments)
    return {"segments": indexed, "stale_deleted": stale, "elapsed_s": round(time.monotonic() - started, 3)}
