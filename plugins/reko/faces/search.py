"""Search by photo: read the uploaded photo's face in memory, find the indexed faces near it.

The photo is never written anywhere (not to storage, not to a temp file, not to a log): its bytes
are decoded, embedded and dropped. The distance of each hit is mapped to a Rekognition-style
similarity (`reko.faces.similarity`), so `threshold` means what Rekognition's
`FaceMatchThreshold` means. Nothing about the query or its matches is logged.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from reko.faces.privacy import private
from reko.faces.similarity import distance_for, l2_from_lucene_score, match_threshold, similarity
from reko.index.client import IndexNames

if TYPE_CHECKING:
    from opensearchpy import OpenSearch

MAX_PHOTO_BYTES = 15 * 1024 * 1024  # Rekognition's limit for an image read from S3
MAX_MATCHES = 1000
SEARCHES = ("exact", "knn", "radial")


def search_mode() -> str:
    """How photos are searched (`REKO_FACE_SEARCH`, default `exact`).

    Measured at 100,000 faces (bench/results/faces.md): `exact` found every face and its query was
    as fast as top-k `knn` (k = 1000) on a merged index and faster on a freshly loaded one (25
    segments: the graph is searched per segment); `radial` missed 40 % of the faces on the merged
    index. Exact costs grow linearly with the faces indexed: switch to `knn` for millions.
    """
    mode = os.environ.get("REKO_FACE_SEARCH", "").strip() or "exact"
    if mode not in SEARCHES:
        raise ValueError(f"REKO_FACE_SEARCH={mode!r} is not one of {list(SEARCHES)}")
    return mode


class PhotoSearchError(ValueError):
    """The request cannot be answered as asked (bad threshold, photo too large, ...)."""


def find_person(
    client: OpenSearch,
    names: IndexNames,
    photo: bytes,
    *,
    threshold: float | None = None,
    video_ids: list[str] | None = None,
    max_matches: int = MAX_MATCHES,
    search: str | None = None,
) -> dict[str, Any]:
    """Frames whose faces match the photo's face at `threshold` similarity or more, by video.

    The deployment's backend (`REKO_BACKEND`) answers, through its `photo_search` trait
    (`reko.analysis.base`): locally the photo is embedded and the faces index's embeddings are
    searched; on AWS Rekognition searches the index prefix's collection (`search` is then
    `rekognition`; `faces_in_photo` is None: Rekognition does not say how many it saw).
    Raises ValueError (`PhotoSearchError`, `reko.faces.local.FaceNotFoundError`) naming what is
    wrong with the photo or the request. Local `search` (default `search_mode()`): `exact` (every
    indexed face scored by the k-NN plugin's script: always right), `knn` (top-k on the HNSW
    graph, then the threshold), or `radial` (the graph search stops at the threshold)."""
    from reko.analysis.base import photo_searcher
    from reko.config import default_backend

    if len(photo) > MAX_PHOTO_BYTES:
        raise PhotoSearchError(f"photo is {len(photo):,} bytes; the limit is {MAX_PHOTO_BYTES:,}")
    threshold = match_threshold() if threshold is None else float(threshold)
    if not 0 <= threshold <= 100:
        raise PhotoSearchError(f"threshold must be a similarity between 0 and 100, got {threshold}")
    if not 1 <= max_matches <= MAX_MATCHES:
        raise PhotoSearchError(f"max_matches must be 1-{MAX_MATCHES}, got {max_matches}")
    search_by = photo_searcher(default_backend())
    return search_by(
        client, names, photo, threshold=threshold, video_ids=video_ids, max_matches=max_matches, search=search
    )


def search_embeddings(
    client: OpenSearch,
    names: IndexNames,
    photo: bytes,
    *,
    threshold: float,
    video_ids: list[str] | None,
    max_matches: int,
    search: str | None,
) -> dict[str, Any]:
    """The local backend's photo search: embed the photo, score the indexed embeddings."""
    from reko.faces.local import embed_photo
    from reko.index.faces import exact_query, knn_query

    started = time.monotonic()
    face = embed_photo(photo)
    embedded = time.monotonic()
    max_distance = distance_for(threshold)
    search = search_mode() if search is None else search
    if search not in SEARCHES:
        raise PhotoSearchError(f"search must be one of {list(SEARCHES)}, got {search!r}")
    if search == "exact":
        body = exact_query(face.embedding, max_distance, video_ids=video_ids, size=max_matches)
    else:
        body = knn_query(
            face.embedding, max_distance, video_ids=video_ids, size=max_matches, radial=search == "radial"
        )
    with private():
        exists = client.indices.exists(index=names.faces)
        hits: list[dict[str, Any]] = (
            client.search(index=names.faces, body=body)["hits"]["hits"] if exists else []
        )
    scored = [(similarity(l2_from_lucene_score(hit["_score"])), hit) for hit in hits]
    return result_shape(
        [(score, hit) for score, hit in scored if score >= threshold],
        query={"faces_in_photo": face.faces_in_photo, "bbox": face.bbox},
        threshold=threshold,
        search=search,
        truncated=len(hits) >= max_matches,
        embed_s=embedded - started,
        search_s=time.monotonic() - embedded,
    )


def result_shape(
    matches: list[tuple[float, dict[str, Any]]],
    *,
    query: dict[str, Any],
    threshold: float,
    search: str,
    truncated: bool,
    embed_s: float,
    search_s: float,
) -> dict[str, Any]:
    """`find_person`'s answer from (similarity, faces-index hit) pairs at or above the threshold,
    the same on every backend: videos by best similarity, their frames in order, each frame's
    faces best first. `embed_ms` is the time to read the photo's face (on AWS: the Rekognition
    call, which embeds and searches), `search_ms` the time to find the matching documents."""
    videos: dict[str, dict[str, Any]] = {}
    for score, hit in matches:
        src = hit["_source"]
        video = videos.setdefault(
            src["video_id"], {"video_id": src["video_id"], "best_similarity": 0.0, "frames": {}}
        )
        video["best_similarity"] = max(video["best_similarity"], score)
        frame = video["frames"].setdefault(
            src["frame_index"],
            {
                "frame_index": src["frame_index"],
                "timestamp_ms": src["timestamp_ms"],
                "frame_uri": src.get("frame_uri"),
                "faces": [],
            },
        )
        frame["faces"].append(
            {"bbox": src["bbox"], "confidence": src["confidence"], "similarity": score, "face": hit["_id"]}
        )
    out_videos = []
    for video in sorted(videos.values(), key=lambda v: (-v["best_similarity"], v["video_id"])):
        frames = sorted(video["frames"].values(), key=lambda f: f["frame_index"])
        for frame in frames:
            frame["faces"].sort(key=lambda f: -f["similarity"])
        out_videos.append(
            {
                **video,
                "frames": frames,
                "first_ms": frames[0]["timestamp_ms"],
                "last_ms": frames[-1]["timestamp_ms"],
            }
        )
    return {
        "query": query,
        "threshold": threshold,
        "max_distance": round(distance_for(threshold), 4),
        "search": search,
        "matches": len(matches),
        "truncated": truncated,
        "videos": out_videos,
        "embed_ms": round(embed_s * 1000, 1),
        "search_ms": round(search_s * 1000, 1),
    }
