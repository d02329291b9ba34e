"""The bib <-> face link: a face track that moves with a runner's bib track is that runner's face.

A runner's bib sits below their face, about 1.5-2.8 face heights down (chest height) and roughly
under it. A face track and a pass are linked when, in the frames both were seen, the bib is where
the face says it should be in most of them (`MIN_FIT`), in at least `MIN_SHARED` frames: so a
face passing behind a bib once, or a spectator's face above a passing bib, does not link. Each
face track links to at most one pass and each pass to at most one face track (an optimal
assignment on the fit). The pass then also covers the frames where only the face was seen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from reko.runners.passes import assign

BIB_BELOW = (1.3, 3.2)  # bib centre below face centre, in face heights (1.5-2.8 with tolerance)
BIB_ACROSS = 1.0  # |bib centre - face centre| horizontally, in face widths
MIN_SHARED = 2  # frames in which both the face and the bib were seen
MIN_FIT = 0.6  # share of those frames in which the bib sits under the face
_NO_LINK = 1e6


@dataclass(frozen=True)
class FaceBox:
    frame_index: int
    timestamp_ms: int
    left: float
    top: float
    width: float
    height: float


def bib_under_face(face: FaceBox, bib: dict[str, float]) -> bool:
    """Whether a bib box (normalised, like a pass frame's `bbox`) sits where this face's bib would."""
    fx, fy = face.left + face.width / 2, face.top + face.height / 2
    bx, by = bib["left"] + bib["width"] / 2, bib["top"] + bib["height"] / 2
    down = (by - fy) / face.height
    return BIB_BELOW[0] <= down <= BIB_BELOW[1] and abs(bx - fx) <= BIB_ACROSS * face.width


def fit(track: Sequence[FaceBox], pass_frames: Sequence[dict[str, Any]]) -> tuple[int, float]:
    """(frames shared, share of them in which the bib sits under the face)."""
    faces = {f.frame_index: f for f in track}
    shared = [(faces[p["frame_index"]], p["bbox"]) for p in pass_frames if p["frame_index"] in faces]
    if not shared:
        return 0, 0.0
    good = sum(bib_under_face(face, bib) for face, bib in shared)
    return len(shared), good / len(shared)


def link(
    tracks: dict[str, Sequence[FaceBox]], passes: dict[str, Sequence[dict[str, Any]]]
) -> dict[str, dict]:
    """{pass id: {"face_track_id", "shared_frames", "fit"}} for every linked pass."""
    track_ids, pass_ids = sorted(tracks), sorted(passes)
    if not track_ids or not pass_ids:
        return {}
    scores = {}
    cost = []
    for p in pass_ids:
        row = []
        for t in track_ids:
            shared, share = fit(tracks[t], passes[p])
            scores[(p, t)] = (shared, share)
            row.append(1.0 - share if shared >= MIN_SHARED and share >= MIN_FIT else _NO_LINK)
        cost.append(row)
    out = {}
    for r, c in assign(cost):
        if cost[r][c] < _NO_LINK:
            shared, share = scores[(pass_ids[r], track_ids[c])]
            out[pass_ids[r]] = {
                "face_track_id": track_ids[c],
                "shared_frames": shared,
                "fit": round(share, 3),
            }
    return out


def extend_pass(doc: dict[str, Any], track: Sequence[FaceBox], linked: dict[str, Any]) -> None:
    """Record the link on a pass document and widen its span to the frames where only the face was
    seen (the bib's own span stays in `bib_start_ms` / `bib_end_ms`)."""
    doc["bib_start_ms"], doc["bib_end_ms"] = doc["start_ms"], doc["end_ms"]
    doc["face_track_id"] = linked["face_track_id"]
    doc["face_link_fit"] = linked["fit"]
    bib_frames = {f["frame_index"] for f in doc["frames"]}
    face_only = sorted({f.frame_index for f in track} - bib_frames)
    doc["face_only_frames"] = face_only
    first, last = min(track, key=lambda f: f.frame_index), max(track, key=lambda f: f.frame_index)
    if first.timestamp_ms < doc["start_ms"]:
        doc["start_ms"], doc["start_frame"] = first.timestamp_ms, first.frame_index
    if last.timestamp_ms > doc["end_ms"]:
        doc["end_ms"], doc["end_frame"] = last.timestamp_ms, last.frame_index
    doc["duration_ms"] = doc["end_ms"] - doc["start_ms"]
