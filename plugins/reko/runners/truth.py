"""Score runner passes against a ground-truth file: what a race organiser would check by hand.

The truth lists each runner pass with the video frames where its bib is visible (see
`include/sample/make_finish.py`; the clean sample's `bibs` segments are read the same way).
Frames are captured at i x interval (the first decoded frame at or after it), so sampled frame i
shows video frame ceil(i x interval x fps).

Measures, per the runner-identity issue:
- a pass is *found whole* when exactly one found pass of its number overlaps it and each end is
  within one interval of the truth's first (last) visible sampled frame, or reaches past it no
  further than the runner is on screen (a bib read while the frame edge cuts its card, or
  followed through a moment's cover, is still that runner);
- *frame recall*: of the sampled frames where a bib is visible, the share covered by a found pass
  of the right number (read there, or attributed through its track);
- *read recall*: the same share, counting only frames where the reader itself said the number at
  >= `read_confidence` (what the reader alone achieves);
- a *false pass* is a found pass whose number has no truth pass overlapping it in time.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class TruthPass:
    bib: str
    visible: frozenset[int]  # sampled frame indexes where the bib is visible
    on_screen: tuple[int, int] | None = None  # sampled frames where the runner is in the frame at all
    props: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def ends_fit(self, start: int, end: int) -> bool:
        """Both ends of a found pass are where this pass begins and ends (see the module doc)."""
        low, high = self.on_screen or (self.first, self.last)
        starts = min(low, self.first - 1) <= start <= self.first + 1
        return starts and self.last - 1 <= end <= max(high, self.last + 1)

    @property
    def first(self) -> int:
        return min(self.visible)

    @property
    def last(self) -> int:
        return max(self.visible)


def sampled_index(video_frame_count: int, fps: float, interval_ms: int) -> dict[int, int]:
    """Video frame shown by each sampled frame: capture i is the first frame at or after i x interval."""
    mapping = {}
    i = 0
    while True:
        video_frame = math.ceil(round(i * interval_ms * fps / 1000, 6))
        if video_frame >= video_frame_count:
            return mapping
        mapping[i] = video_frame
        i += 1


def truth_passes(truth: Mapping[str, Any], interval_ms: int) -> list[TruthPass]:
    """Each truth pass as the set of sampled frames where its bib is visible (empty ones dropped)."""
    samples = sampled_index(truth["frame_count"], truth["fps"], interval_ms)
    shown_by = {video_frame: i for i, video_frame in samples.items()}
    raw = truth.get("passes")
    if raw is None:  # the clean sample: every visible run of a bib is one pass
        raw = [
            {"bib": b["text"], "visible_frames": range(s["start_frame"], s["end_frame"] + 1)}
            for b in truth["bibs"]
            for s in b["segments"]
        ]
    passes = []
    for p in raw:
        visible = frozenset(shown_by[f] for f in p["visible_frames"] if f in shown_by)
        if visible:
            props = {k: v for k, v in p.items() if k not in ("visible_frames", "boxes")}
            passes.append(TruthPass(str(p["bib"]), visible, _on_screen(samples, p), props))
    return passes


def _on_screen(samples: dict[int, int], p: Mapping[str, Any]) -> tuple[int, int] | None:
    """First and last sampled frame in which the runner's figure is in the frame (make_finish truth)."""
    if "start_frame" not in p or "end_frame" not in p:
        return None
    inside = [i for i, video_frame in samples.items() if p["start_frame"] <= video_frame <= p["end_frame"]]
    return (min(inside), max(inside)) if inside else None


@dataclass
class Score:
    interval_ms: int
    duration_s: float
    rows: list[dict[str, Any]]
    false_passes: list[dict[str, Any]]

    @property
    def passes(self) -> int:
        return len(self.rows)

    @property
    def whole(self) -> int:
        return sum(r["whole"] for r in self.rows)

    @property
    def visible_frames(self) -> int:
        return sum(r["visible"] for r in self.rows)

    @property
    def frame_recall(self) -> float:
        return _share(sum(r["attributed"] for r in self.rows), self.visible_frames)

    @property
    def read_recall(self) -> float:
        return _share(sum(r["read"] for r in self.rows), self.visible_frames)

    @property
    def false_per_10_min(self) -> float:
        return round(len(self.false_passes) * 600 / self.duration_s, 2) if self.duration_s else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "interval_ms": self.interval_ms,
            "truth_passes": self.passes,
            "found_whole": self.whole,
            "whole_share": _share(self.whole, self.passes),
            "frame_recall": self.frame_recall,
            "read_recall": self.read_recall,
            "false_passes": len(self.false_passes),
            "false_per_10_min": self.false_per_10_min,
            "false": self.false_passes,
        }


def _share(part: int, whole: int) -> float:
    return round(part / whole, 3) if whole else 0.0


def score(
    truth: Mapping[str, Any],
    found: Iterable[Mapping[str, Any]],
    *,
    interval_ms: int,
    reads: Iterable[tuple[int, str, float]] = (),
    read_confidence: float = 80.0,
) -> Score:
    """Compare found pass documents (number, start_frame, end_frame) with the truth.

    `reads` are (sampled frame, normalised text, confidence) of every word the reader returned,
    for the read-recall column.
    """
    expected = truth_passes(truth, interval_ms)
    found = [dict(p) for p in found]
    read_at: dict[tuple[int, str], float] = {}
    for frame, text, confidence in reads:
        read_at[(frame, text)] = max(confidence, read_at.get((frame, text), 0.0))
    rows = []
    for t in sorted(expected, key=lambda p: (p.first, p.bib)):
        mine = [p for p in found if p["number"] == t.bib and _overlaps(p, t.first, t.last)]
        covered = {i for i in t.visible if any(p["start_frame"] <= i <= p["end_frame"] for p in mine)}
        whole = len(mine) == 1 and t.ends_fit(mine[0]["start_frame"], mine[0]["end_frame"])
        rows.append(
            {
                "bib": t.bib,
                "first_s": _seconds(t.first, interval_ms),
                "last_s": _seconds(t.last, interval_ms),
                "visible": len(t.visible),
                "read": sum(read_at.get((i, t.bib), 0.0) >= read_confidence for i in t.visible),
                "attributed": len(covered),
                # Seconds, like the truth's columns, whatever the interval (frame indexes at 0.5 s
                # read as twice the time).
                "found": [
                    [_seconds(p["start_frame"], interval_ms), _seconds(p["end_frame"], interval_ms)]
                    for p in mine
                ],
                "whole": whole,
                **{
                    k: t.props[k]
                    for k in ("digit_px", "blur_px", "tilt_deg", "shade", "speed")
                    if k in t.props
                },
            }
        )
    false_passes = [
        {
            "number": p["number"],
            "start_frame": p["start_frame"],
            "end_frame": p["end_frame"],
            "start_s": _seconds(p["start_frame"], interval_ms),
            "end_s": _seconds(p["end_frame"], interval_ms),
        }
        for p in found
        if not any(t.bib == p["number"] and _overlaps(p, t.first, t.last) for t in expected)
    ]
    return Score(interval_ms, float(truth["duration_s"]), rows, false_passes)


def _seconds(frame: int, interval_ms: int) -> float:
    """Capture time of sampled frame `frame` (capture i is at i x interval)."""
    return round(frame * interval_ms / 1000, 2)


def _overlaps(found: Mapping[str, Any], first: int, last: int) -> bool:
    return found["start_frame"] <= last and found["end_frame"] >= first
