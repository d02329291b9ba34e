"""One person, found by a photo or by a face of the index: the faces that match, the face tracks
they belong to, the runner passes linked to those tracks, and the stretches of video where the
person is seen (what `video_clips` cuts and the page's timeline shows).

A person is named in what gets stored (a clip's subject, a run's conf) by a face id of the faces
index (`face:<id>`), never by an embedding or a photo: a reference photo is read into memory,
embedded and dropped. Nothing about faces is logged (`reko.faces.privacy`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from reko.faces.privacy import private
from reko.index.client import IndexNames, search_pages

if TYPE_CHECKING:
    from opensearchpy import OpenSearch

SUBJECT_PREFIX = "face:"
MAX_TRACKS = 10_000  # the most face tracks one person is looked up in (a search's result window)
PAGE = 1000


class PersonInputError(ValueError):
    """The person cannot be looked up as asked: an unknown face id, a missing or unreadable photo."""


def face_subject(face_id: str) -> str:
    """How a person is named as a clip subject: by a face of the index, never by biometric data."""
    return f"{SUBJECT_PREFIX}{face_id}"


def face_of_subject(subject: str) -> str | None:
    """The face id a `face:<id>` subject names, else None (a text subject)."""
    subject = subject.strip()
    if subject[: len(SUBJECT_PREFIX)].lower() != SUBJECT_PREFIX:
        return None
    return subject[len(SUBJECT_PREFIX) :].strip() or None


@dataclass
class PersonMatch:
    """The faces that match one person (doc id -> video, frame, time, track, similarity) and the
    face id that names the person: the given one, or the best match of a photo."""

    anchor_face: str | None
    faces: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def track_ids(self) -> list[str]:
        return sorted({f["track_id"] for f in self.faces.values() if f.get("track_id")})


def read_photo(uri: str, limit: int) -> bytes:
    """The bytes of a reference photo at a file:// or s3:// URI (ObjectStoragePath), or an error
    naming the problem; the bytes stay in memory."""
    from reko.storage import parse_uri

    try:
        path = parse_uri(uri, "face_photo_uri")
    except ValueError as exc:
        raise PersonInputError(str(exc)) from None
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise PersonInputError(f"face_photo_uri {uri!r} does not exist") from None
    except OSError as exc:
        raise PersonInputError(f"face_photo_uri {uri!r} cannot be read: {type(exc).__name__}") from None
    if size > limit:
        raise PersonInputError(f"face_photo_uri {uri!r} is {size:,} bytes; the limit is {limit:,}")
    return path.read_bytes()


def face_embedding(client: OpenSearch, names: IndexNames, face_id: str) -> list[float]:
    """The stored embedding of one face of the index (local backend), or an error naming the id."""
    from opensearchpy.exceptions import NotFoundError

    with private():
        try:
            doc = client.get(index=names.faces, id=face_id, _source=["embedding"])
        except NotFoundError:
            doc = {}
    if not doc.get("found"):
        raise PersonInputError(f"face_id {face_id!r} is not in the faces index {names.faces}")
    embedding = (doc.get("_source") or {}).get("embedding")
    if not embedding:
        raise PersonInputError(f"face_id {face_id!r} has no embedding to search by (not a local face)")
    return embedding


def match_by_face(
    client: OpenSearch,
    names: IndexNames,
    face_id: str,
    *,
    threshold: float,
    video_ids: list[str] | None = None,
) -> PersonMatch:
    """Every indexed face at `threshold` similarity or more to the face `face_id` (itself included)."""
    from reko.faces.search import MAX_MATCHES
    from reko.faces.similarity import distance_for, l2_from_lucene_score, similarity
    from reko.index.faces import exact_query

    embedding = face_embedding(client, names, face_id)
    body = exact_query(embedding, distance_for(threshold), video_ids=video_ids, size=MAX_MATCHES)
    with private():
        hits = client.search(index=names.faces, body=body)["hits"]["hits"]
    match = PersonMatch(anchor_face=face_id)
    for hit in hits:
        score = similarity(l2_from_lucene_score(hit["_score"]))
        if score >= threshold:
            match.faces[hit["_id"]] = _face_entry(hit["_source"], score)
    return match


def match_by_photo(
    client: OpenSearch,
    names: IndexNames,
    photo: bytes,
    *,
    threshold: float,
    video_ids: list[str] | None = None,
) -> PersonMatch:
    """The faces `find_person` matches to the photo's face, with their tracks."""
    from reko.faces.search import find_person

    result = find_person(client, names, photo, threshold=threshold, video_ids=video_ids)
    return match_of_result(client, names, result)


def match_of_result(client: OpenSearch, names: IndexNames, result: dict[str, Any]) -> PersonMatch:
    """A `find_person` result as a PersonMatch: its faces, their tracks (read from the faces index:
    the result names each face by its id) and its best face as the anchor."""
    scores: dict[str, float] = {}
    for video in result["videos"]:
        for frame in video["frames"]:
            for face in frame["faces"]:
                scores[face["face"]] = max(scores.get(face["face"], 0.0), face["similarity"])
    match = PersonMatch(anchor_face=max(scores, key=lambda k: (scores[k], k)) if scores else None)
    if not scores:
        return match
    fields = ["video_id", "frame_index", "timestamp_ms", "track_id"]
    with private():
        docs = client.mget(index=names.faces, body={"ids": list(scores)}, _source=fields)["docs"]
    for doc in docs:
        if doc.get("found"):
            match.faces[doc["_id"]] = _face_entry(doc["_source"], scores[doc["_id"]])
    return match


def _face_entry(src: dict[str, Any], score: float) -> dict[str, Any]:
    return {
        "video_id": src["video_id"],
        "frame_index": src["frame_index"],
        "timestamp_ms": src["timestamp_ms"],
        "track_id": src.get("track_id"),
        "similarity": score,
    }


def track_spans(client: OpenSearch, names: IndexNames, track_ids: Iterable[str]) -> dict[str, dict]:
    """Each face track's video, first and last sighting and face count: a track is one continuous
    appearance of the person, so all of it is theirs, also the faces under the threshold."""
    ids = sorted(set(track_ids))[:MAX_TRACKS]
    if not ids:
        return {}
    body = {
        "size": 0,
        "query": {"terms": {"track_id": ids}},
        "aggs": {
            "tracks": {
                "terms": {"field": "track_id", "size": len(ids)},
                "aggs": {
                    "video": {"terms": {"field": "video_id", "size": 1}},
                    "start": {"min": {"field": "timestamp_ms"}},
                    "end": {"max": {"field": "timestamp_ms"}},
                },
            }
        },
    }
    with private():
        buckets = client.search(index=names.faces, body=body)["aggregations"]["tracks"]["buckets"]
    return {
        b["key"]: {
            "track_id": b["key"],
            "video_id": b["video"]["buckets"][0]["key"],
            "start_ms": int(b["start"]["value"]),
            "end_ms": int(b["end"]["value"]),
            "face_count": b["doc_count"],
        }
        for b in buckets
    }


def linked_passes(
    client: OpenSearch, names: IndexNames, track_ids: Iterable[str]
) -> list[tuple[str, dict[str, Any]]]:
    """(id, runner pass) of every pass linked to one of the face tracks, by video and time (their
    spans already take in the frames where only the face was seen)."""
    ids = sorted(set(track_ids))[:MAX_TRACKS]
    if not ids or not client.indices.exists(index=names.passes):
        return []
    body = {
        "size": PAGE,
        "query": {"terms": {"face_track_id": ids}},
        "sort": [{"video_id": "asc"}, {"start_ms": "asc"}, {"_id": "asc"}],
        "_source": [
            "video_id",
            "number",
            "name",
            "start_ms",
            "end_ms",
            "face_track_id",
            "bib_start_ms",
            "bib_end_ms",
        ],
    }
    return [(hit["_id"], hit["_source"]) for hit in search_pages(client, names.passes, body)]


def track_sightings(client: OpenSearch, names: IndexNames, track_ids: Iterable[str]) -> dict[str, dict]:
    """Each face track's video and the times it was seen (every face of it, also those under the
    threshold: a track is one person's appearance), in time order."""
    ids = sorted(set(track_ids))[:MAX_TRACKS]
    if not ids:
        return {}
    body = {
        "size": PAGE,
        "query": {"terms": {"track_id": ids}},
        "sort": [{"video_id": "asc"}, {"frame_index": "asc"}, {"ordinal": "asc"}],
        "_source": ["track_id", "video_id", "timestamp_ms"],
    }
    tracks: dict[str, dict] = {}
    with private():
        for hit in search_pages(client, names.faces, body):
            src = hit["_source"]
            track = tracks.setdefault(src["track_id"], {"video_id": src["video_id"], "times_ms": []})
            track["times_ms"].append(src["timestamp_ms"])
    return tracks


def sighting_runs(times_ms: list[int], max_gap_ms: float) -> list[tuple[int, int]]:
    """(first, last) time of each run of sightings at most `max_gap_ms` apart."""
    runs: list[list[int]] = []
    for t in sorted(times_ms):
        if runs and t - runs[-1][1] <= max_gap_ms:
            runs[-1][1] = t
        else:
            runs.append([t, t])
    return [(a, b) for a, b in runs]


def person_segments(
    client: OpenSearch, names: IndexNames, match: PersonMatch, intervals_ms: dict[str, int], gap_factor: float
) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """Per video, the (id, {start_ms, end_ms}) stretches where the person is seen: each run of a
    matched face track's sightings (split where more than `gap_factor` capture intervals pass
    unseen, as text segments are), each runner pass linked to one of the tracks, and each matched
    face without a track. Ids are track, pass or face ids, never biometric data; `plan_ranges`
    then merges and pads them like any subject's segments."""
    by_video: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    tracks = track_sightings(client, names, match.track_ids)
    for track_id, track in tracks.items():
        video_id = track["video_id"]
        max_gap = gap_factor * intervals_ms[video_id]
        for start, end in sighting_runs(track["times_ms"], max_gap):
            by_video.setdefault(video_id, []).append(
                (f"{track_id}@{start}", {"start_ms": start, "end_ms": end})
            )
    for pass_id, runner_pass in linked_passes(client, names, tracks):
        by_video.setdefault(runner_pass["video_id"], []).append((pass_id, runner_pass))
    for face_id, face in match.faces.items():
        if not face.get("track_id") or face["track_id"] not in tracks:
            at = {"start_ms": face["timestamp_ms"], "end_ms": face["timestamp_ms"]}
            by_video.setdefault(face["video_id"], []).append((face_id, at))
    return {v: sorted(s, key=lambda s: (s[1]["start_ms"], s[0])) for v, s in sorted(by_video.items())}


def describe(client: OpenSearch, names: IndexNames, result: dict[str, Any]) -> dict[str, Any]:
    """A `find_person` result with what the page shows beside its frames: each face's track, each
    video's face tracks (the timeline) and linked runner passes (bib number, name), and
    `person_face`, the face id a clip request names the person by. The result is changed in place."""
    match = match_of_result(client, names, result)
    spans = track_spans(client, names, match.track_ids)
    passes: dict[str, list[dict[str, Any]]] = {}
    for pass_id, runner_pass in linked_passes(client, names, spans):
        passes.setdefault(runner_pass["video_id"], []).append({"pass_id": pass_id, **runner_pass})
    for video in result["videos"]:
        tracks: dict[str, dict[str, Any]] = {}
        for frame in video["frames"]:
            for face in frame["faces"]:
                track_id = (match.faces.get(face["face"]) or {}).get("track_id")
                face["track_id"] = track_id
                if track_id in spans:
                    best = tracks.setdefault(track_id, {**spans[track_id], "best_similarity": 0.0})
                    best["best_similarity"] = max(best["best_similarity"], face["similarity"])
        video["tracks"] = sorted(tracks.values(), key=lambda t: (t["start_ms"], t["track_id"]))
        video["passes"] = passes.get(video["video_id"], [])
    result["person_face"] = match.anchor_face
    return result
