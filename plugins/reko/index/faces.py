"""Faces in OpenSearch: one document per face (with its track), and the k-NN search a photo is
matched with.

Loaded from the stored frame results (like detections), so a re-run converges to the same index;
`_id` = video:frame:face:ordinal, where ordinal counts the faces kept after the confidence filter.
The local backend's documents carry the 128-d embedding in a `knn_vector` field (k-NN plugin,
pure-Java `lucene` HNSW engine, `l2` space: score = 1 / (1 + d^2)); the AWS backend's carry
`face_id`, the face's id in the index prefix's Rekognition collection (`reko.aws.face_collection`)
when Rekognition stored it (faces under its quality bar have none and cannot be found by photo).
Nothing about a face is logged, only counts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from reko.index.bulk import bulk_load, delete_stale
from reko.index.client import IndexNames, ensure_templates
from reko.storage import VideoStore, read_json

if TYPE_CHECKING:
    from opensearchpy import OpenSearch

log = logging.getLogger(__name__)

KIND = "faces"
EMBEDDING_DIM = 128
MAX_CANDIDATES = 10_000  # the most faces one search returns (OpenSearch's default result window)


def face_id(video_id: str, frame_index: int, ordinal: int) -> str:
    return f"{video_id}:{frame_index:07d}:face:{ordinal:03d}"


def face_docs(
    *,
    video_id: str,
    frame_index: int,
    timestamp_ms: int,
    frame_uri: str,
    response: dict[str, Any],
    backend: str,
    model: str,
    min_confidence: float,
) -> list[tuple[str, dict[str, Any]]]:
    """(id, document) for every face at or above `min_confidence`, in response order, with its
    embedding when the response has one (`Embeddings`, local) and Rekognition's `FaceId` if any."""
    details = response.get("FaceDetails") or []
    embeddings = response.get("Embeddings") or []
    if embeddings and len(embeddings) != len(details):
        raise ValueError(f"frame {frame_index}: {len(details)} faces but {len(embeddings)} embeddings")
    docs = []
    for i, face in enumerate(details):
        confidence = float(face.get("Confidence", 0.0))
        box = face.get("BoundingBox")
        if confidence < min_confidence or not box:
            continue
        ordinal = len(docs)
        doc: dict[str, Any] = {
            "video_id": video_id,
            "frame_index": frame_index,
            "timestamp_ms": timestamp_ms,
            "ordinal": ordinal,
            "confidence": round(confidence, 3),
            "bbox": {k.lower(): round(float(box[k]), 6) for k in ("Left", "Top", "Width", "Height")},
            "frame_uri": frame_uri,
            "backend": backend,
            "model": model,
        }
        if embeddings:
            vector = embeddings[i]
            if len(vector) != EMBEDDING_DIM:
                raise ValueError(
                    f"frame {frame_index}: embedding has {len(vector)} values, not {EMBEDDING_DIM}"
                )
            doc["embedding"] = vector
        if face.get("FaceId"):
            doc["face_id"] = face["FaceId"]
        docs.append((face_id(video_id, frame_index, ordinal), doc))
    return docs


def load_faces(
    client: OpenSearch,
    names: IndexNames,
    store: VideoStore,
    *,
    frame_count: int,
    backend: str,
    min_confidence: float,
) -> dict[str, Any]:
    """Index every stored faces result of the video, then delete its faces this load did not write.

    Frames without a result are counted by the detections load (the same frames fail both). A
    backend with its own face store (a Rekognition collection) first has the faces removed from
    it that the index still names but no stored result does any more (a frame analysed again,
    frames cut again from a changed source): once their documents are overwritten or deleted,
    nothing would name them. Removed first, so a failure leaves the documents that name them."""
    from reko.analysis.base import face_store_deleter

    started = time.monotonic()
    ensure_templates(client, names)
    counts = [0] * frame_count
    docs: list[tuple[str, dict[str, Any]]] = []
    stored_ids: set[str] = set()  # every face id the results name, under the threshold too
    for index in range(frame_count):
        result = read_json(store.result(backend, KIND, index))
        if result is None:
            continue
        stored_ids.update(f["FaceId"] for f in result["response"].get("FaceDetails") or [] if f.get("FaceId"))
        frame_docs = face_docs(
            video_id=store.video_id,
            frame_index=index,
            timestamp_ms=result["timestamp_ms"],
            frame_uri=result["frame_uri"],
            response=result["response"],
            backend=result["backend"],
            model=result["model"],
            min_confidence=min_confidence,
        )
        counts[index] = len(frame_docs)
        docs += frame_docs
    tracks = assign_tracks(store.video_id, docs)
    released = 0
    delete_from_store = face_store_deleter(backend)
    if delete_from_store is not None:
        orphans = indexed_face_ids(client, names, store.video_id, backend) - stored_ids
        if orphans:
            released = delete_from_store(orphans, names)["requested"]

    def actions() -> Iterator[dict[str, Any]]:
        for doc_id, doc in docs:
            yield {"_index": names.faces, "_id": doc_id, "_source": doc}

    from reko.faces.privacy import private

    with private():  # the bulk bodies hold embeddings and boxes
        indexed = bulk_load(client, actions()).written

    def stale(hit: dict[str, Any]) -> bool:
        src = hit["_source"]
        frame = src["frame_index"]
        return frame >= frame_count or src["ordinal"] >= counts[frame]

    removed = delete_stale(client, names.faces, store.video_id, stale, ["frame_index", "ordinal"])
    client.indices.refresh(index=names.faces)
    log.info("indexed %d faces, deleted %d stale", indexed, removed)
    return {
        "faces": indexed,
        "tracks": tracks,
        "stale_deleted": removed,
        "store_faces_released": released,
        "elapsed_s": round(time.monotonic() - started, 3),
    }


def indexed_face_ids(client: OpenSearch, names: IndexNames, video_id: str, backend: str) -> set[str]:
    """The face-store ids (`face_id`) the video's `backend` documents carry."""
    from opensearchpy.helpers import scan

    if not client.indices.exists(index=names.faces):
        return set()
    client.indices.refresh(index=names.faces)
    filters = [
        {"term": {"video_id": video_id}},
        {"term": {"backend": backend}},
        {"exists": {"field": "face_id"}},
    ]
    query = {"query": {"bool": {"filter": filters}}, "_source": ["face_id"]}
    return {hit["_source"]["face_id"] for hit in scan(client, index=names.faces, query=query)}


def assign_tracks(video_id: str, docs: list[tuple[str, dict[str, Any]]]) -> int:
    """Set `track_id` on every face document with an embedding (`reko.faces.tracks`); the count.

    The video's faces are held in memory for this (128 floats each: ~1 KB a face, ~100 MB for a
    six-hour video sampled every second with five faces in every frame)."""
    from reko.faces.tracks import TrackedFace, build_face_tracks

    by_key = {doc_id: doc for doc_id, doc in docs if doc.get("embedding")}
    faces = [
        TrackedFace(
            key=doc_id,
            frame_index=doc["frame_index"],
            timestamp_ms=doc["timestamp_ms"],
            left=doc["bbox"]["left"],
            top=doc["bbox"]["top"],
            width=doc["bbox"]["width"],
            height=doc["bbox"]["height"],
            embedding=doc["embedding"],
        )
        for doc_id, doc in by_key.items()
    ]
    tracks = build_face_tracks(faces)
    for track in tracks:
        track_id = track.track_id(video_id)
        for face in track.faces:
            by_key[face.key]["track_id"] = track_id
    return len(tracks)


def knn_query(
    embedding: list[float],
    max_distance: float,
    *,
    video_ids: list[str] | None = None,
    size: int = 1000,
    radial: bool = False,
) -> dict[str, Any]:
    """An approximate k-NN search (lucene HNSW) for the faces within `max_distance` (l2) of
    `embedding`, nearest first, at most `size`.

    Top-k (the default): the graph is searched for the `size` nearest faces (lucene explores
    `size` candidates per segment) and `min_score`, the l2 score at `max_distance`
    (1 / (1 + d^2)), drops the farther ones. Radial (`radial=True`): the graph search itself stops
    at `min_score`; measured here it missed 40 % of the exact answer's faces on a merged
    100,000-face index (bench/results/faces.md), so it is not the default.
    """
    if len(embedding) != EMBEDDING_DIM:
        raise ValueError(f"embedding must have {EMBEDDING_DIM} values, got {len(embedding)}")
    size = min(size, MAX_CANDIDATES)
    min_score = 1.0 / (1.0 + max_distance**2)
    knn: dict[str, Any] = {"vector": list(embedding)}
    knn.update({"min_score": min_score} if radial else {"k": size})
    if video_ids:
        knn["filter"] = {"terms": {"video_id": list(video_ids)}}
    body: dict[str, Any] = {
        "size": size,
        "query": {"knn": {"embedding": knn}},
        "_source": {"excludes": ["embedding"]},
    }
    if not radial:
        body["min_score"] = min_score
    return body


def exact_query(
    embedding: list[float], max_distance: float, *, video_ids: list[str] | None = None, size: int = 1000
) -> dict[str, Any]:
    """The same search, exact: the k-NN plugin's `knn_score` script over every candidate face
    (brute force; the baseline the approximate search is measured against)."""
    filters: list[dict[str, Any]] = [{"exists": {"field": "embedding"}}]
    if video_ids:
        filters.append({"terms": {"video_id": list(video_ids)}})
    return {
        "size": min(size, MAX_CANDIDATES),
        "min_score": 1.0 / (1.0 + max_distance**2),
        "query": {
            "script_score": {
                "query": {"bool": {"filter": filters}},
                "script": {
                    "source": "knn_score",
                    "lang": "knn",
                    "params": {"field": "embedding", "query_value": list(embedding), "space_type": "l2"},
                },
            }
        },
        "_source": {"excludes": ["embedding"]},
    }
