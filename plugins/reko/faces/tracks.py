"""Face tracks: the faces of one person's appearance linked from frame to frame.

A face joins the track whose last face is near it in the frame (in that face's widths, with a
gate growing with the time unseen) *and* whose embedding is near its own: position alone would
swap two people crossing, the embedding alone would join two separate appearances of one person.
Per frame the links are an optimal assignment (`reko.runners.passes.assign`), like the runner
tracker's. Light to import (no numpy): embeddings are plain lists.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from reko.runners.passes import assign

MAX_GAP_S = 3.0  # a track may go this long unseen (a turned head, a missed detection)
GATE_BASE = 1.5  # face widths a face may move between two consecutive sightings ...
GATE_PER_SECOND = 1.5  # ... plus this many per second between them
MAX_EMBEDDING_DISTANCE = 0.6  # dlib's same-person threshold
POSITION_WEIGHT = 0.1  # cost per face width moved, next to the embedding distance
_NO_LINK = 1e6


@dataclass
class TrackedFace:
    """One indexed face as the tracker needs it; `key` is the caller's (e.g. the document id)."""

    key: str
    frame_index: int
    timestamp_ms: int
    left: float
    top: float
    width: float
    height: float
    embedding: Sequence[float]


@dataclass
class FaceTrack:
    """One person's continuous appearance: its faces in frame order."""

    faces: list[TrackedFace] = field(default_factory=list)

    @property
    def last(self) -> TrackedFace:
        return self.faces[-1]

    @property
    def start_ms(self) -> int:
        return self.faces[0].timestamp_ms

    @property
    def end_ms(self) -> int:
        return self.faces[-1].timestamp_ms

    def track_id(self, video_id: str) -> str:
        first = self.faces[0]
        return f"{video_id}:ft:{first.frame_index:07d}:{first.key.rsplit(':', 1)[-1]}"


def _centre(face: TrackedFace) -> tuple[float, float]:
    return face.left + face.width / 2, face.top + face.height / 2


def _cost(track: FaceTrack, face: TrackedFace, max_gap_ms: int) -> float:
    last = track.last
    gap_ms = face.timestamp_ms - last.timestamp_ms
    if gap_ms <= 0 or gap_ms > max_gap_ms:
        return _NO_LINK
    (ax, ay), (bx, by) = _centre(last), _centre(face)
    size = max(1e-6, (last.width + last.height) / 2)
    moved = math.hypot((bx - ax) / size, (by - ay) / size)
    if moved > GATE_BASE + GATE_PER_SECOND * gap_ms / 1000:
        return _NO_LINK
    distance = math.dist(last.embedding, face.embedding)
    if distance > MAX_EMBEDDING_DISTANCE:
        return _NO_LINK
    return distance + POSITION_WEIGHT * moved


def build_face_tracks(faces: Iterable[TrackedFace], max_gap_s: float = MAX_GAP_S) -> list[FaceTrack]:
    """Link faces (any order) into tracks, in time order; a face that links to nothing starts one."""
    by_frame: dict[tuple[int, int], list[TrackedFace]] = {}
    for face in faces:
        by_frame.setdefault((face.timestamp_ms, face.frame_index), []).append(face)
    max_gap_ms = round(max_gap_s * 1000)
    done: list[FaceTrack] = []
    active: list[FaceTrack] = []
    for key in sorted(by_frame):
        frame = by_frame[key]
        now = key[0]
        still = []
        for track in active:
            (still if now - track.last.timestamp_ms <= max_gap_ms else done).append(track)
        active = still
        cost = [[_cost(t, f, max_gap_ms) for f in frame] for t in active]
        linked = set()
        for row, col in assign(cost) if active else []:
            if cost[row][col] < _NO_LINK:
                active[row].faces.append(frame[col])
                linked.add(col)
        active += [FaceTrack([f]) for i, f in enumerate(frame) if i not in linked]
    done += active
    return sorted(done, key=lambda t: (t.start_ms, t.faces[0].key))
