"""Number reads -> box tracks -> one voted number per track -> runner passes.

A runner is a bib box moving through the frames. Tracks are built from position and motion
(a constant-velocity prediction matched by an optimal assignment per frame), so a misread, an
unread frame or a crossing runner does not split or swap a runner. Text is never required for a
read to join a moving track; it seeds a track before it has a velocity, breaks ties between boxes
equally close, and keeps a read that is nothing like an established runner's number (another
runner entering where this one leaves) out of its track. Each track then votes, weighted by
confidence, and tolerates reads one OCR edit away. Tracks that do not
behave like a runner's bib are rejected with the reason: static (a clock, a sign), riding with a
bigger number on the same bib (the race year), or a number that wins in many tracks at once.

All boxes are normalised to the frame; distances are measured in the track's own box widths
(horizontally) and heights (vertically), so the thresholds do not depend on the aspect ratio.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from reko.runners.reads import Read, number_candidate
from reko.runners.roster import Roster, RosterEntry

# Seeding: a one-observation track has no velocity, so it links to the next box on its row that
# is reachable at no more than this speed (frame widths per second; a sprint finish crosses a
# 1280-px frame in ~2 s) and whose text is similar.
SEED_MAX_SPEED = 0.5
SEED_ROW_TOLERANCE = 1.0  # |dy| in box heights
HEIGHT_RATIO = (0.6, 1 / 0.6)  # a box of another size is other text (the year under the number)
# Gate around a prediction, in box widths / heights: a fixed part for box jitter, a part
# proportional to the predicted displacement (pace changes), a part growing with time unseen.
GATE_X_BASE = 1.5
GATE_X_PER_DISPLACEMENT = 0.3
GATE_X_PER_SECOND = 0.5
GATE_Y_BASE = 1.0
GATE_Y_PER_SECOND = 0.25
# A read whose text has nothing in common with the track's number must sit closer to the
# prediction (another runner's bib near the edge of the gate), and costs a little more.
UNLIKE_TEXT_GATE = 0.6
UNLIKE_TEXT_COST = 0.5
LIKE_TEXT_COST = 0.2
# A seed's "reachable on the same row" is weaker evidence than a box where a moving track
# predicted it: a stranded first read must not take a read from an established runner.
SEED_COST = 0.5
EDGE_TOUCH = 0.005  # a box this close to the frame's edge (share of the frame) touches it
CUT_MAX_SHARE = 0.8  # a box cut by the edge keeps at most this share of the track's width
ESTABLISHED_MIN_SPEED = 0.5  # box sizes per second: slower tracks (clocks, signs) get no text guard
VELOCITY_WINDOW = 3  # observations the velocity is measured over
# Not runners
STATIC_MAX_TRAVEL = 0.5  # box widths (heights vertically) over the whole track
STATIC_MIN_OBSERVATIONS = 3
STATIC_MIN_SPAN_MS = 2000
RIDES_MAX_DY = 2.0  # in the bigger box's heights
RIDES_MAX_HEIGHT_RATIO = 0.65  # the year is printed at well under half the number's height
RIDES_MIN_FIT = 0.75  # share of the shared frames where the smaller box sits on the bigger one
# Occlusion: a runner unseen while another runner's box is over its path is hidden, not gone.
COVER_DX = 2.0  # hidden bib's box widths between its path and the other box's centre
COVER_DY = 3.0  # its box heights: a nearer runner's body spans well above and below its own bib
COVERED_MAX_FACTOR = 2.0  # a split joined across a cover: at most this many times max_step_ms
UBIQUITOUS_MIN_TRACKS = 3
UBIQUITOUS_SHARE = 0.25
# Vote and roster
SUPPORT_WEIGHT = 0.5  # a similar read counts half for a candidate when choosing the winner
RUNNER_UP_MIN_SHARE = 0.3
VOTE_CONTENDERS = 12
_UNSEEN = 1e6


@dataclass(frozen=True)
class PassSettings:
    interval_ms: int  # capture interval of the frames
    max_gap_s: float = 3.0  # a track survives this long unseen (occlusion, unreadable frames)
    min_reads: int = 2  # without a roster: consistent reads a track needs to become a pass
    # ... and the time those reads must span, first to last: evidence is counted in seconds, so
    # 0.5 s sampling does not halve it (two reads of noise in adjacent frames are 0.5 s apart,
    # a runner's bib is in view for seconds; at 1 s two adjacent reads already span 1 s).
    min_read_span_s: float = 1.0
    # ... and one read of the number itself at least this sure: noise read twice (a "0000" of a
    # shirt's pattern, "623" of a blurred bib) stays unsure, while every runner's number is read
    # clearly somewhere in its pass. 80 % is what the search page and the frame recall call a read.
    # With a roster an exact bib needs no sure read, but a snap does (of the number snapped from
    # or of the bib): a snap corrects reads, and correcting unsure reads is a guess.
    min_sure_confidence: float = 80.0
    min_confidence: float = 50.0  # reads below are ignored

    @property
    def max_step_ms(self) -> float:
        """Longest time between two observations of one track: the time unseen plus one capture.

        A bib hidden for 2.4 s at 1 s sampling misses up to three captures, so its observations
        are 4 s apart: the gap a user chooses is time unseen, not time between reads.
        """
        return self.max_gap_s * 1000 + self.interval_ms

    def __post_init__(self) -> None:
        if self.interval_ms <= 0:
            raise ValueError(f"interval_ms must be positive, got {self.interval_ms}")


@dataclass
class RunnerPass:
    number: str
    track_id: int
    start_frame: int
    end_frame: int
    start_ms: int
    end_ms: int
    frames: list[dict]
    read_count: int
    vote_share: float
    vote_margin: float
    overruled: list[dict]
    best_confidence: float
    entry: RosterEntry | None = None
    snapped_from: str | None = None

    def to_doc(self, video_id: str, backend: str) -> tuple[str, dict]:
        """(deterministic id, pass document): a re-run over the same reads overwrites the same ids."""
        best = max(self.frames, key=lambda f: (f["confidence"], -f["frame_index"]))
        doc = {
            "video_id": video_id,
            "number": self.number,
            "name": self.entry.name if self.entry else None,
            "category": self.entry.category if self.entry else None,
            # With a roster every pass is on it (the rest are rejected); without one it is unknown.
            "on_roster": True if self.entry is not None else None,
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "duration_ms": self.end_ms - self.start_ms,
            "start_frame": self.start_frame,
            "end_frame": self.end_frame,
            "frame_count": len(self.frames),
            "read_count": self.read_count,
            "vote_share": round(self.vote_share, 3),
            "vote_margin": round(self.vote_margin, 3),
            "best_confidence": round(self.best_confidence, 3),
            "overruled": [dict(o) for o in self.overruled],
            "snapped_from": self.snapped_from,
            "frames": [
                {
                    **f,
                    "bbox": {k: round(v, 3) for k, v in f["bbox"].items()},
                    "confidence": round(f["confidence"], 3),
                }
                for f in self.frames
            ],
            "thumbnail_frame_index": best["frame_index"],
            "thumbnail_uri": best["frame_uri"],
            "backend": backend,
            "track_id": self.track_id,
        }
        return f"{video_id}:pass:{self.number}:{self.start_frame:07d}", doc


@dataclass
class PassResult:
    passes: list[RunnerPass]  # sorted by start_ms, number
    rejected: list[dict]  # {"track_id", "text", "frames" (frame indexes), "reason"}


# ---------------------------------------------------------------- text similarity


def within_one_edit(a: str, b: str) -> bool:
    """One substitution, insertion or deletion at most (linear: no full edit-distance table)."""
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b, strict=True)) <= 1
    short, long = (a, b) if len(a) < len(b) else (b, a)
    i = 0
    while i < len(short) and short[i] == long[i]:
        i += 1
    return short[i:] == long[i + 1 :]


def is_truncation(short: str, long: str) -> bool:
    """A read that lost digits at an edge of the bib ("417" or "172" of "4172")."""
    return 2 <= len(short) < len(long) and (long.startswith(short) or long.endswith(short))


# Digit pairs bib fonts are commonly misread as (closed loops, missing strokes).
CONFUSABLE_DIGITS = frozenset(
    frozenset(pair) for pair in ("38", "08", "17", "56", "41", "69", "58", "35", "27", "05", "89", "06")
)


def confusable(a: str, b: str, max_subs: int = 2) -> bool:
    """Same length and every differing digit a commonly confused pair (4172 vs 4778)."""
    if len(a) != len(b):
        return False
    diffs = [frozenset((x, y)) for x, y in zip(a, b, strict=True) if x != y]
    return len(diffs) <= max_subs and all(d in CONFUSABLE_DIGITS for d in diffs)


@functools.lru_cache(maxsize=65536)
def same_number(read: str, number: str) -> bool:
    """Whether a read can be a misread of `number`: one edit, two confusable digits, a truncation."""
    return (
        read == number
        or within_one_edit(read, number)
        or confusable(read, number)
        or is_truncation(read, number)
    )


def like_numbers(a: str, b: str) -> bool:
    """Either read can be a misread of the other."""
    return same_number(a, b) or same_number(b, a)


# ---------------------------------------------------------------- tracking


@dataclass(frozen=True)
class _Obs:
    read: Read
    number: str

    @property
    def t(self) -> int:
        return self.read.timestamp_ms

    @property
    def x(self) -> float:
        return self.read.left + self.read.width / 2

    @property
    def y(self) -> float:
        return self.read.top + self.read.height / 2

    @property
    def w(self) -> float:
        return max(self.read.width, 1e-6)

    @property
    def h(self) -> float:
        return max(self.read.height, 1e-6)


@dataclass
class _Track:
    id: int
    obs: list[_Obs]
    _weight: Counter[str] = field(default_factory=Counter, repr=False)
    _count: Counter[str] = field(default_factory=Counter, repr=False)
    _best: tuple[float, int, str] = (-1.0, 0, "")  # (weight, length, text) of the heaviest number

    def __post_init__(self) -> None:
        observed, self.obs = self.obs, []
        for o in observed:
            self.add(o)

    def add(self, obs: _Obs) -> None:
        """Append an observation; weights only grow, so the heaviest number is kept in O(1)."""
        self.obs.append(obs)
        self._weight[obs.number] += obs.read.confidence
        self._count[obs.number] += 1
        self._best = max(self._best, (self._weight[obs.number], len(obs.number), obs.number))

    @property
    def last(self) -> _Obs:
        return self.obs[-1]

    @property
    def start_ms(self) -> int:
        return self.obs[0].t

    @property
    def end_ms(self) -> int:
        return self.obs[-1].t

    def size(self) -> tuple[float, float]:
        recent = self.obs[-5:]
        return statistics.median(o.w for o in recent), statistics.median(o.h for o in recent)

    def velocity(self) -> tuple[float, float] | None:
        """Normalised units per ms over the last few observations; None before the second."""
        if len(self.obs) < 2:
            return None
        first = self.obs[-min(VELOCITY_WINDOW, len(self.obs))]
        dt = self.last.t - first.t
        if dt <= 0:
            return None
        return (self.last.x - first.x) / dt, (self.last.y - first.y) / dt

    def numbers(self) -> list[str]:
        return list(self._weight)

    def leader(self) -> tuple[str, bool]:
        """The number the track reads as so far (heaviest by confidence), and whether it is an
        established runner: moving, with at least two reads like the number holding half the
        weight. A clock (reads all different, never moving) never is."""
        number = self._best[2]
        velocity = self.velocity()
        if velocity is None:
            return number, False
        w, h = self.size()
        if math.hypot(velocity[0] / w, velocity[1] / h) * 1000 < ESTABLISHED_MIN_SPEED:
            return number, False
        like = [n for n in self._weight if like_numbers(n, number)]
        like_count = sum(self._count[n] for n in like)
        like_weight = sum(self._weight[n] for n in like)
        return number, like_count >= 2 and like_weight >= 0.5 * sum(self._weight.values())


def _height_fits(track_h: float, obs_h: float) -> bool:
    return HEIGHT_RATIO[0] <= obs_h / track_h <= HEIGHT_RATIO[1]


def _cut_at_edge(obs: _Obs, w: float, h: float) -> bool:
    """A read cut by the frame's edge ("76" of 7615 leaving): it touches the edge and is narrower
    (or shorter) than the track's box, so the runner is still partly in view."""
    r = obs.read
    at_side = r.left <= EDGE_TOUCH or r.left + r.width >= 1 - EDGE_TOUCH
    at_top_or_bottom = r.top <= EDGE_TOUCH or r.top + r.height >= 1 - EDGE_TOUCH
    return (at_side and r.width <= CUT_MAX_SHARE * w) or (at_top_or_bottom and r.height <= CUT_MAX_SHARE * h)


def _link_cost(track: _Track, obs: _Obs, leader: str, established: bool) -> float:
    """Cost of `obs` continuing `track` (lower is better), or _UNSEEN outside the gate.

    A read whose text is unlike an established number is another bib even when it sits where
    the runner was predicted: runners leave and enter the frame at the same edges, and a bib
    read twice the same way is not misread as three different digits. Text is never needed
    for a read to join (a clock, a bib read differently every frame, link on motion alone).
    """
    w, h = track.size()
    if not _height_fits(h, obs.h):
        return _UNSEEN
    dt = obs.t - track.last.t
    dt_s = dt / 1000
    velocity = track.velocity()
    if velocity is None:
        # Seed: same row, reachable at a runner's top speed, text similar.
        dx = abs(obs.x - track.last.x)
        dy = abs(obs.y - track.last.y) / h
        reach = SEED_MAX_SPEED * dt_s + w
        if dy > SEED_ROW_TOLERANCE or dx > reach or not like_numbers(obs.number, leader):
            return _UNSEEN
        text_cost = 0.0 if obs.number == leader else 1.0
        return SEED_COST + text_cost + 0.5 * dx / reach + 0.5 * dy / SEED_ROW_TOLERANCE
    vx, vy = velocity
    predicted_x, predicted_y = track.last.x + vx * dt, track.last.y + vy * dt
    if not (0.0 <= predicted_x <= 1.0 and 0.0 <= predicted_y <= 1.0) and not _cut_at_edge(obs, w, h):
        return _UNSEEN  # the runner has left the frame: a whole box at the edge is someone entering
    ex = abs(obs.x - predicted_x) / w
    ey = abs(obs.y - predicted_y) / h
    gate_x = GATE_X_BASE + GATE_X_PER_DISPLACEMENT * abs(vx * dt) / w + GATE_X_PER_SECOND * dt_s
    gate_y = GATE_Y_BASE + GATE_Y_PER_SECOND * dt_s
    if obs.number == leader:
        text_cost = 0.0
    elif like_numbers(obs.number, leader):
        text_cost = LIKE_TEXT_COST
    elif established and not any(like_numbers(obs.number, n) for n in track.numbers()):
        return _UNSEEN
    else:
        text_cost = UNLIKE_TEXT_COST
        gate_x *= UNLIKE_TEXT_GATE
        gate_y *= UNLIKE_TEXT_GATE
    if ex > gate_x or ey > gate_y:
        return _UNSEEN
    return ex / gate_x + ey / gate_y + text_cost


def assign(cost: Sequence[Sequence[float]]) -> list[tuple[int, int]]:
    """Minimum-cost assignment of rows to columns (Hungarian, O(n^3)); pairs at _UNSEEN dropped.

    Per frame there are only a handful of tracks and boxes, so a small pure-Python solver keeps
    the library free of scipy while still resolving crossings optimally instead of greedily.
    """
    if not cost or not cost[0]:
        return []
    rows, cols = len(cost), len(cost[0])
    transposed = rows > cols
    matrix = [list(col) for col in zip(*cost, strict=True)] if transposed else [list(r) for r in cost]
    n, m = len(matrix), len(matrix[0])
    u, v = [0.0] * (n + 1), [0.0] * (m + 1)
    p, way = [0] * (m + 1), [0] * (m + 1)
    for i in range(1, n + 1):
        p[0], j0 = i, 0
        minv, used = [math.inf] * (m + 1), [False] * (m + 1)
        while True:
            used[j0] = True
            i0, delta, j1 = p[j0], math.inf, 0
            for j in range(1, m + 1):
                if not used[j]:
                    current = matrix[i0 - 1][j - 1] - u[i0] - v[j]
                    if current < minv[j]:
                        minv[j], way[j] = current, j0
                    if minv[j] < delta:
                        delta, j1 = minv[j], j
            for j in range(m + 1):
                if used[j]:
                    u[p[j]] += delta
                    v[j] -= delta
                else:
                    minv[j] -= delta
            j0 = j1
            if p[j0] == 0:
                break
        while j0:
            j1 = way[j0]
            p[j0] = p[j1]
            j0 = j1
    pairs = [(p[j] - 1, j - 1) for j in range(1, m + 1) if p[j]]
    if transposed:
        pairs = [(c, r) for r, c in pairs]
    return sorted((r, c) for r, c in pairs if cost[r][c] < _UNSEEN)


def _frames_of(reads: Iterable[Read], settings: PassSettings) -> list[list[_Obs]]:
    """Number candidates at or above the confidence floor, one list per frame, in time order."""
    by_frame: dict[tuple[int, int], list[_Obs]] = defaultdict(list)
    for read in reads:
        if read.confidence < settings.min_confidence or read.height <= 0 or read.width <= 0:
            continue
        number = number_candidate(read.text)
        if number is not None:
            by_frame[(read.timestamp_ms, read.frame_index)].append(_Obs(read, number))
    return [by_frame[key] for key in sorted(by_frame)]


def build_tracks(reads: Iterable[Read], settings: PassSettings) -> list[_Track]:
    """Follow boxes frame to frame; a track unseen for more than max_gap_s is closed."""
    max_gap_ms = settings.max_step_ms
    live: list[_Track] = []
    closed: list[_Track] = []
    next_id = 1
    for frame in _frames_of(reads, settings):
        now = frame[0].t
        still = []
        for track in live:
            (still if now - track.end_ms <= max_gap_ms else closed).append(track)
        live = still
        cost = []
        for track in live:
            leader, established = track.leader()
            cost.append([_link_cost(track, obs, leader, established) for obs in frame])
        taken: set[int] = set()
        for t_index, o_index in assign(cost):
            live[t_index].add(frame[o_index])
            taken.add(o_index)
        for o_index, obs in enumerate(frame):
            if o_index not in taken:
                live.append(_Track(next_id, [obs]))
                next_id += 1
    return sorted(closed + live, key=lambda tr: tr.id)


# ---------------------------------------------------------------- voting


@dataclass
class _Vote:
    number: str
    read_count: int
    share: float
    margin: float
    overruled: list[dict]
    weights: dict[str, float]
    read_span_ms: int  # first to last read counted for the number
    surest: float  # the highest confidence of a read of the number itself (not of a misread)


def surest_read(obs: Sequence[_Obs], numbers: Sequence[str]) -> float:
    """The highest confidence of a read of one of `numbers` themselves (a misread does not count)."""
    return max((o.read.confidence for o in obs if o.number in numbers), default=0.0)


def vote(obs: Sequence[_Obs], number: str | None = None, also_absorb: str | None = None) -> _Vote:
    """Confidence-weighted vote; the winner absorbs reads one edit away and truncations of it.

    The winner is the candidate with the most support: its own weight plus half the weight of
    reads that could be misreads of it. Among equal own weights that picks the read the others
    agree with (4172 over a lone 4173 and a lone 4162), and the full number over its truncation.
    With `number` given (a roster snap), the tally is counted for that number instead, and reads
    that were misreads of `also_absorb` (the voted number it replaced) still count for it.
    """
    weights: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    for o in obs:
        weights[o.number] += o.read.confidence
        counts[o.number] += 1
    total = sum(weights.values()) or 1.0
    if number is None:
        # A clock's track has a new text every second: rank only the heaviest few by support.
        contenders = sorted(weights, key=lambda c: (-weights[c], c))[:VOTE_CONTENDERS]

        def support(candidate: str) -> tuple[float, float, int, int, str]:
            similar = sum(w for c, w in weights.items() if c != candidate and same_number(c, candidate))
            return (
                weights[candidate] + SUPPORT_WEIGHT * similar,
                weights[candidate],
                len(candidate),
                counts[candidate],
                candidate,
            )

        number = max(contenders, key=support)
    like = [number] if also_absorb is None else [number, also_absorb]
    absorbed = [c for c in weights if c != number and any(same_number(c, n) for n in like)]
    rivals = [w for c, w in weights.items() if c != number and c not in absorbed]
    winner_weight = weights[number] + sum(weights[c] for c in absorbed)
    overruled = sorted(
        ({"text": c, "count": counts[c]} for c in absorbed), key=lambda o: (-o["count"], o["text"])
    )
    counted = {number, *absorbed}
    times = [o.t for o in obs if o.number in counted]
    return _Vote(
        number=number,
        read_count=counts[number] + sum(counts[c] for c in absorbed),
        share=winner_weight / total,
        margin=(winner_weight - max(rivals, default=0.0)) / total,
        overruled=overruled,
        weights=dict(weights),
        read_span_ms=max(times) - min(times) if times else 0,
        surest=surest_read(obs, (number,)),
    )


# ---------------------------------------------------------------- fragments and non-runners


def _mean_vx(track: _Track) -> float | None:
    if len(track.obs) < 2 or track.end_ms == track.start_ms:
        return None
    return (track.last.x - track.obs[0].x) / (track.end_ms - track.start_ms)


def _continues(a: _Track, b: _Track) -> bool:
    """Whether b, starting after a ended, moves on from where a's runner would be (an occlusion
    the tracker split); how long the gap may be is the caller's rule."""
    gap = b.start_ms - a.end_ms
    if gap <= 0:
        return False
    w, h = a.size()
    if not _height_fits(h, b.obs[0].h) or abs(b.obs[0].y - a.last.y) > 1.5 * h:
        return False
    implied = (b.obs[0].x - a.last.x) / gap
    if abs(implied) * 1000 > SEED_MAX_SPEED + w * 1000 / gap:
        return False
    slack = w / gap  # a box width of jitter over the gap
    for vx in (_mean_vx(a), _mean_vx(b)):
        if vx is not None and abs(implied - vx) > 0.5 * abs(vx) + slack:
            return False
    return True


class _Covers:
    """Every observation by capture time, to ask whether a runner was behind another one then."""

    def __init__(self, tracks: Sequence[_Track]):
        self.at: dict[int, list[tuple[int, _Obs]]] = defaultdict(list)
        for track in tracks:
            for o in track.obs:
                self.at[o.t].append((track.id, o))
        self.times = sorted(self.at)

    def hidden(self, a: _Track, b: _Track, max_step_ms: float, own: set[int]) -> bool:
        """Whether a's runner, moving straight from a's last box to b's first, was behind another
        runner whenever it went unseen longer than max_step_ms: at the captures in between, a box of
        another track sits over the path (a nearer runner's body hides a band around its bib)."""
        start, end = a.end_ms, b.start_ms
        first, last = a.last, b.obs[0]
        w, h = a.size()
        seen = [start]
        for t in self.times[bisect.bisect_right(self.times, start) : bisect.bisect_left(self.times, end)]:
            k = (t - start) / (end - start)
            x, y = first.x + k * (last.x - first.x), first.y + k * (last.y - first.y)
            if any(
                tid not in own and abs(o.x - x) <= COVER_DX * w and abs(o.y - y) <= COVER_DY * h
                for tid, o in self.at[t]
            ):
                seen.append(t)
        seen.append(end)
        return all(later - earlier <= max_step_ms for earlier, later in itertools.pairwise(seen))


def merge_fragments(tracks: list[_Track], settings: PassSettings) -> list[_Track]:
    """Join tracks of one number split by a long occlusion or a bad prediction (never laps: the
    gap is at most max_gap_s of time unseen, not counting time behind another runner, and at most
    COVERED_MAX_FACTOR times that in all)."""
    max_gap_ms = settings.max_step_ms
    covers = _Covers(tracks)
    merged: list[_Track] = []
    numbers: dict[int, str] = {}
    pieces: dict[int, set[int]] = {}  # ids of the fragments each merged track is made of
    for track in sorted(tracks, key=lambda tr: (tr.start_ms, tr.id)):
        number = vote(track.obs).number
        target = None
        for earlier in reversed(merged):
            gap = track.start_ms - earlier.end_ms
            if not 0 < gap <= COVERED_MAX_FACTOR * max_gap_ms:
                continue
            if (
                like_numbers(number, numbers[earlier.id])
                and _continues(earlier, track)
                and (
                    gap <= max_gap_ms
                    or covers.hidden(earlier, track, max_gap_ms, pieces[earlier.id] | {track.id})
                )
            ):
                target = earlier
                break
        if target is None:
            target = _Track(track.id, list(track.obs))
            merged.append(target)
        else:
            for o in track.obs:
                target.add(o)
        pieces.setdefault(target.id, set()).add(track.id)
        numbers[target.id] = vote(target.obs).number
    return sorted(merged, key=lambda tr: tr.id)


def is_static(track: _Track) -> bool:
    """A box that stays put over a real span of time: a clock, a sign, a banner."""
    if len(track.obs) < STATIC_MIN_OBSERVATIONS and track.end_ms - track.start_ms < STATIC_MIN_SPAN_MS:
        return False
    w = statistics.median(o.w for o in track.obs)
    h = statistics.median(o.h for o in track.obs)
    travel_x = max(o.x for o in track.obs) - min(o.x for o in track.obs)
    travel_y = max(o.y for o in track.obs) - min(o.y for o in track.obs)
    return travel_x < STATIC_MAX_TRAVEL * w and travel_y < STATIC_MAX_TRAVEL * h


def rides_with(small: _Track, big: _Track) -> bool:
    """Whether `small` is smaller text printed on `big`'s bib: in the frames both are seen, its
    box sits within a couple of the big box's heights and its centre inside the big box's span."""
    big_by_frame = {o.read.frame_index: o for o in big.obs}
    shared = [(o, big_by_frame[o.read.frame_index]) for o in small.obs if o.read.frame_index in big_by_frame]
    if len(shared) < min(2, len(small.obs)):
        return False
    if statistics.median(o.h for o in small.obs) >= RIDES_MAX_HEIGHT_RATIO * statistics.median(
        o.h for o in big.obs
    ):
        return False
    fits = 0
    for s, b in shared:
        within_x = b.read.left <= s.x <= b.read.left + b.read.width
        if within_x and abs(s.y - b.y) <= RIDES_MAX_DY * b.h:
            fits += 1
    return fits >= RIDES_MIN_FIT * len(shared)


def _overlap_in_time(a: _Track, b: _Track) -> bool:
    return a.start_ms <= b.end_ms and b.start_ms <= a.end_ms


# ---------------------------------------------------------------- passes


def _frames_doc(track: _Track) -> list[dict]:
    return [
        {
            "frame_index": o.read.frame_index,
            "timestamp_ms": o.read.timestamp_ms,
            "bbox": {
                "left": o.read.left,
                "top": o.read.top,
                "width": o.read.width,
                "height": o.read.height,
            },
            "text": o.read.text,
            "confidence": o.read.confidence,
            "frame_uri": o.read.frame_uri,
        }
        for o in track.obs
    ]


def find_passes(reads: Iterable[Read], settings: PassSettings, roster: Roster | None = None) -> PassResult:
    """Runner passes in one video's word reads, and the tracks rejected with the reason why."""
    tracks = merge_fragments(build_tracks(reads, settings), settings)
    votes = {track.id: vote(track.obs) for track in tracks}
    rejected: list[dict] = []

    def reject(track: _Track, reason: str) -> None:
        rejected.append(
            {
                "track_id": track.id,
                "text": votes[track.id].number,
                "frames": [o.read.frame_index for o in track.obs],
                "reason": reason,
            }
        )

    static = {track.id for track in tracks if is_static(track)}
    moving = [track for track in tracks if track.id not in static]
    riding: dict[int, int] = {}
    for small in moving:
        for big in moving:
            if big.id != small.id and _overlap_in_time(small, big) and rides_with(small, big):
                riding[small.id] = big.id
                break
    # A number winning in many tracks, some of them at the same time, is printed on every bib
    # (or on every shirt); one runner's laps never overlap, so they are not caught by this.
    by_number: dict[str, list[_Track]] = defaultdict(list)
    for track in moving:
        by_number[votes[track.id].number].append(track)
    limit = max(UBIQUITOUS_MIN_TRACKS, UBIQUITOUS_SHARE * len(moving))
    ubiquitous = {
        number
        for number, group in by_number.items()
        if len(group) > limit
        and any(_overlap_in_time(a, b) for i, a in enumerate(group) for b in group[i + 1 :])
    }

    # Without a roster, a number that also stands still in the scene (the year on the finish
    # banner, the "42" of a KM sign) is the event's own text wherever it moves: on a bib whose
    # number went unread it is the sponsor band's year, often cut short ("26" of "2026").
    scenery = {votes[track.id].number for track in tracks if track.id in static}

    def event_text(number: str) -> str | None:
        return next((s for s in sorted(scenery) if s == number or is_truncation(number, s)), None)

    passes: list[RunnerPass] = []
    for track in tracks:
        result = votes[track.id]
        if track.id in static:
            reject(track, "static (does not move)")
            continue
        if track.id in riding:
            reject(track, f"rides with track {riding[track.id]} (smaller text on the same bib)")
            continue
        if result.number in ubiquitous:
            reject(track, f"text in {len(by_number[result.number])} tracks (not a runner)")
            continue
        entry, snapped_from = None, None
        if roster is not None:
            entry, why = roster.snap(result.number)
            snapped_number = result.number
            if entry is None:
                runner_up = _runner_up(result)
                if runner_up is not None:
                    up_entry, up_why = roster.snap(runner_up)
                    if up_entry is not None:
                        entry, why, snapped_number = up_entry, up_why, runner_up
            if entry is None:
                reject(track, why.replace("ambiguous:", "ambiguous on roster:"))
                continue
            if entry.bib != result.number:
                snapped_from = result.number
                result = vote(track.obs, number=entry.bib, also_absorb=result.number)
                # A snap corrects the reads, so it needs the evidence a pass without a roster
                # needs: one read one edit from a bib is as likely a fragment of other text (a
                # "22" beside the course) as that bib, and two unsure reads of different numbers
                # ("55" and "75" of a runner entering at the edge) are a guess between bibs.
                # An exact bib may stand on one read.
                sure = surest_read(track.obs, (snapped_number, entry.bib))
                if (short := too_little_evidence(result, settings)) is not None:
                    reject(track, f"snapped to {entry.bib} from {snapped_from} on {short}")
                    continue
                if sure < settings.min_sure_confidence:
                    reject(
                        track,
                        f"snapped to {entry.bib} from {snapped_number}, never read surely"
                        f" ({sure:.0f} % < {settings.min_sure_confidence:g} %)",
                    )
                    continue
        elif (short := too_little_evidence(result, settings)) is not None:
            reject(track, short)
            continue
        elif result.surest < settings.min_sure_confidence:
            reject(track, f"never read surely ({result.surest:.0f} % < {settings.min_sure_confidence:g} %)")
            continue
        elif (sign := event_text(result.number)) is not None:
            reject(track, f"the scene's own text ({sign} stands still in the frame)")
            continue
        passes.append(_runner_pass(track, result, entry, snapped_from))
    passes = _without_nested(passes, rejected)
    passes.sort(key=lambda p: (p.start_ms, p.number, p.track_id))
    rejected.sort(key=lambda r: r["track_id"])
    return PassResult(passes=passes, rejected=rejected)


def too_little_evidence(result: _Vote, settings: PassSettings) -> str | None:
    """Why a vote's reads are too few or too brief to stand without a roster, or None."""
    if result.read_count < settings.min_reads:
        return f"too few reads ({result.read_count} < {settings.min_reads})"
    # a quarter capture of slack: capture timestamps may jitter by a few milliseconds
    if result.read_span_ms < settings.min_read_span_s * 1000 - settings.interval_ms / 4:
        return f"reads too brief ({result.read_span_ms / 1000:g} s < {settings.min_read_span_s:g} s)"
    return None


def _without_nested(passes: list[RunnerPass], rejected: list[dict]) -> list[RunnerPass]:
    """Drop a pass lying within the time of a longer pass of the same number: one runner cannot be
    in two places at once, so it is a second box of that runner's bib in the same frames (a box
    swollen by a neighbour's edge, read once) and not a runner of its own."""
    kept = []
    for p in passes:
        host = next(
            (
                q
                for q in passes
                if q is not p
                and q.number == p.number
                and q.start_ms <= p.start_ms
                and p.end_ms <= q.end_ms
                and (len(q.frames), q.track_id) > (len(p.frames), p.track_id)
            ),
            None,
        )
        if host is None:
            kept.append(p)
        else:
            rejected.append(
                {
                    "track_id": p.track_id,
                    "text": p.number,
                    "frames": [f["frame_index"] for f in p.frames],
                    "reason": f"within track {host.track_id}'s pass of the same number (a second box)",
                }
            )
    return kept


def _runner_up(result: _Vote) -> str | None:
    """The second candidate by weight, when it holds enough of the track to be the real bib."""
    total = sum(result.weights.values()) or 1.0
    others = sorted(((w, c) for c, w in result.weights.items() if c != result.number), reverse=True)
    if others and others[0][0] / total >= RUNNER_UP_MIN_SHARE:
        return others[0][1]
    return None


def _runner_pass(
    track: _Track, result: _Vote, entry: RosterEntry | None, snapped_from: str | None
) -> RunnerPass:
    first, last = track.obs[0].read, track.obs[-1].read
    return RunnerPass(
        number=result.number,
        track_id=track.id,
        start_frame=first.frame_index,
        end_frame=last.frame_index,
        start_ms=first.timestamp_ms,
        end_ms=last.timestamp_ms,
        frames=_frames_doc(track),
        read_count=result.read_count,
        vote_share=result.share,
        vote_margin=result.margin,
        overruled=result.overruled,
        best_confidence=max(o.read.confidence for o in track.obs),
        entry=entry,
        snapped_from=snapped_from,
    )
