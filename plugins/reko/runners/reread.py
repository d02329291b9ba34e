"""Bibs the detector missed, read again where a runner's bib must be.

Why: on the finish footage every runner pass that was not found had never been *detected*: the
PP-OCR detector's text probability stays under 0.1 on a blurred (7 px), shaded bib, while its
recogniser reads a crop of the very same bib at over 99 %. So, after a first tracking, two cheap
searches over the frame images add reads, and the tracker runs again on all of them:

1. search: in every frame, dark-on-light blobs the size of this video's bibs, within the rows
   where bibs were read (a morphological black-hat, OpenCV only, ~0.1 CPU-s a frame), each read
   by the recogniser alone;
2. gaps: where a runner's pass has a frame without a read (occluded, blurred) or may go on past
   its first or last read, the box predicted from the pass's neighbouring boxes is read the same
   way; a read is kept only when it could be the pass's own number, so no new number appears.

Both only add reads: the tracker, the vote, the roster and the not-a-runner rules decide as before
(a search read of a number nobody else read still needs `min_reads` reads over `min_read_span_s`,
one of them at `min_sure_confidence` (also when it is snapped to the roster), or to be an exact
bib of the roster, to be a pass).
A backend without a local recogniser (Rekognition) has no crop reader and skips this step.
"""

from __future__ import annotations

import functools
import logging
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from reko.runners.passes import PassSettings, RunnerPass, find_passes, same_number
from reko.runners.reads import Read, number_candidate
from reko.runners.roster import Roster

log = logging.getLogger(__name__)

CropReader = Callable[[Any], list[tuple[str, float, float, float]]]  # BGR crop -> (text, conf, x0, x1)

# Search (tuned on finish seed 1 only)
BLACKHAT_KERNEL_SHARE = 0.7  # of the median bib box height: wider than a digit's stroke, not the card
BLACKHAT_THRESHOLD = 35  # grey levels a digit's ink is darker than its surroundings
BAND_MARGIN = 1.0  # rows searched: where bibs were read, widened by this many box heights
HEIGHT_RANGE = (0.7, 1.4)  # a proposal's height against the smallest / largest bib box read
ASPECT_RANGE = (1.2, 6.0)  # width / height of a 2-6 digit number
MAX_PROPOSALS = 40  # per frame: bounds the cost on a crowded frame
SEARCH_MIN_CONFIDENCE = 80.0  # a search read names a number nobody may have read: be sure of it
# Gaps
GAP_MIN_CONFIDENCE = 50.0  # a gap read must also agree with the pass's number
END_REACH = 3  # frames a pass may be followed past its first / last read
IMAGES_KEPT = 16  # decoded frames kept while filling gaps (a 720p frame is 2.7 MB)
GAP_MARGIN = (0.35, 0.25)  # crop margin around a predicted box, in its widths / heights
READ_MARGIN = (0.2, 0.15)  # crop margin around a proposal
DUPLICATE_IOU = 0.2  # an added read overlapping a read of its frame this much is that read again


@dataclass(frozen=True)
class FrameImages:
    """The video's sampled frames, as the pass step finds them in the work store."""

    count: int
    timestamp_ms: Callable[[int], int]
    uri: Callable[[int], str]
    load: Callable[[int], bytes]


@dataclass
class RereadStats:
    frames_searched: int = 0
    proposals: int = 0
    crops_read: int = 0
    search_reads: int = 0
    gap_reads: int = 0
    cpu_s: float = 0.0
    skipped: str | None = None
    numbers_added: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in self.__dict__.items()}


# ---------------------------------------------------------------- geometry


def _decode(data: bytes):
    import cv2
    import numpy as np

    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"frame image is not a readable JPEG or PNG ({len(data)} bytes)")
    return image


def bib_proposals(
    grey, *, min_h: float, max_h: float, band: tuple[int, int], kernel: int
) -> list[tuple[int, int, int, int]]:
    """Boxes (x0, y0, x1, y1 px) of dark text blobs of a bib's size within rows `band`.

    A black-hat (closing minus image) keeps dark marks narrower than `kernel` on a lighter
    ground, whatever the card's own brightness (a shaded card is grey, not white); digits close
    into one blob per number, kept when its height and shape are a bib number's.
    """
    import cv2
    import numpy as np

    top, bottom = max(0, band[0]), min(grey.shape[0], band[1])
    if bottom - top < 4:
        return []
    rows = grey[top:bottom]
    element = cv2.getStructuringElement(cv2.MORPH_RECT, (kernel, kernel))
    ink = (cv2.morphologyEx(rows, cv2.MORPH_BLACKHAT, element) > BLACKHAT_THRESHOLD).astype(np.uint8)
    join = max(3, round(0.4 * kernel)) | 1
    ink = cv2.morphologyEx(ink, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (join, 3)))
    _, _, stats, _ = cv2.connectedComponentsWithStats(ink)
    found = []
    for x, y, w, h, _area in stats[1:]:
        if (
            HEIGHT_RANGE[0] * min_h <= h <= HEIGHT_RANGE[1] * max_h
            and ASPECT_RANGE[0] * h <= w <= ASPECT_RANGE[1] * h
        ):
            found.append((int(x), int(y) + top, int(x + w), int(y + h) + top))
    found.sort(key=lambda b: -(b[3] - b[1]) * (b[2] - b[0]))
    return found[:MAX_PROPOSALS]


def _crop(image, box: tuple[float, float, float, float], margin: tuple[float, float]):
    """The region of `box` (px) widened by `margin` (in its width / height), clipped to the frame;
    (crop, x offset, y0, y1) or None when too little of it is inside."""
    height, width = image.shape[:2]
    x0, y0, x1, y1 = box
    mx, my = margin[0] * (x1 - x0), margin[1] * (y1 - y0)
    cx0, cx1 = max(0, round(x0 - mx)), min(width, round(x1 + mx))
    cy0, cy1 = max(0, round(y0 - my)), min(height, round(y1 + my))
    if cx1 - cx0 < 8 or cy1 - cy0 < 8:
        return None
    return image[cy0:cy1, cx0:cx1], cx0, cy0, cy1


def _reads_in(
    read_crop: CropReader,
    image,
    box: tuple[float, float, float, float],
    margin: tuple[float, float],
    frame: int,
    frames: FrameImages,
    min_confidence: float,
) -> list[tuple[str, Read]]:
    """(number, read) for every number the recogniser reads in the crop around `box`."""
    cut = _crop(image, box, margin)
    if cut is None:
        return []
    crop, cx0, cy0, cy1 = cut
    height, width = image.shape[:2]
    out = []
    for text, confidence, x0, x1 in read_crop(crop):
        number = number_candidate(text)
        if number is None or confidence < min_confidence:
            continue
        # The word's ink rows are the box's (the recogniser gives columns only).
        top, bottom = max(cy0, box[1]), min(cy1, box[3])
        left, right = cx0 + x0, cx0 + x1
        out.append(
            (
                number,
                Read(
                    frame_index=frame,
                    timestamp_ms=frames.timestamp_ms(frame),
                    text=text,
                    confidence=round(confidence, 4),
                    left=left / width,
                    top=top / height,
                    width=(right - left) / width,
                    height=(bottom - top) / height,
                    frame_uri=frames.uri(frame),
                ),
            )
        )
    return out


def _overlaps(box: tuple[float, float, float, float], read: Read, width: int, height: int) -> bool:
    x0, y0 = read.left * width, read.top * height
    x1, y1 = x0 + read.width * width, y0 + read.height * height
    return box[0] < x1 and x0 < box[2] and box[1] < y1 and y0 < box[3]


# ---------------------------------------------------------------- the two searches


def search_frames(
    reads: Sequence[Read],
    passes: Sequence[RunnerPass],
    frames: FrameImages,
    read_crop: CropReader,
    stats: RereadStats,
) -> list[Read]:
    """Reads of bib-sized numbers in every frame, in the rows where this video's runners were read."""

    import cv2

    boxes = [f["bbox"] for p in passes for f in p.frames]
    if not boxes:
        stats.skipped = "no runner passes to learn bib sizes from"
        return []
    by_frame: dict[int, list[Read]] = {}
    for r in reads:
        by_frame.setdefault(r.frame_index, []).append(r)
    found: list[Read] = []
    for frame in range(frames.count):
        try:
            image = _decode(frames.load(frame))
        except (OSError, ValueError) as exc:  # a frame gone from the store: nothing to re-read
            log.warning("re-read: frame %d unreadable (%s)", frame, exc)
            continue
        height, width = image.shape[:2]
        heights = [b["height"] * height for b in boxes]
        band = (
            round(min(b["top"] for b in boxes) * height - BAND_MARGIN * max(heights)),
            round(max(b["top"] + b["height"] for b in boxes) * height + BAND_MARGIN * max(heights)),
        )
        kernel = max(9, round(BLACKHAT_KERNEL_SHARE * statistics.median(heights))) | 1
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        stats.frames_searched += 1
        known = list(by_frame.get(frame, []))
        for box in bib_proposals(grey, min_h=min(heights), max_h=max(heights), band=band, kernel=kernel):
            stats.proposals += 1
            if any(_overlaps(box, r, width, height) for r in known):
                continue  # already read there (by the detector, or by a bigger proposal)
            stats.crops_read += 1
            for number, read in _reads_in(
                read_crop, image, box, READ_MARGIN, frame, frames, SEARCH_MIN_CONFIDENCE
            ):
                found.append(read)
                known.append(read)
                stats.numbers_added[number] = stats.numbers_added.get(number, 0) + 1
    stats.search_reads = len(found)
    return found


def _predict(frames_doc: list[dict], t: int) -> tuple[float, float, float, float] | None:
    """The pass's normalised box (x0, y0, x1, y1) at time t: its centre interpolated between the
    observations around it, or carried on at the velocity of the last two at either end.

    The box keeps the pass's median size: a bib's size hardly changes within a pass, while the
    boxes of reads jitter (a search read's rows are its blob's), and a size extrapolated from
    two of them can shrink a 25 px bib to a 7 px crop that nothing can be read in."""
    obs = sorted(frames_doc, key=lambda f: f["timestamp_ms"])
    before = [f for f in obs if f["timestamp_ms"] < t]
    after = [f for f in obs if f["timestamp_ms"] > t]
    if before and after:
        a, b = before[-1], after[0]
    elif len(before) >= 2:
        a, b = before[-2], before[-1]
    elif len(after) >= 2:
        a, b = after[0], after[1]
    else:
        return None
    ta, tb = a["timestamp_ms"], b["timestamp_ms"]
    if tb == ta:
        return None
    k = (t - ta) / (tb - ta)

    def centre(key: str, size: str) -> float:
        at_a = a["bbox"][key] + a["bbox"][size] / 2
        return at_a + k * (b["bbox"][key] + b["bbox"][size] / 2 - at_a)

    w = max(statistics.median(f["bbox"]["width"] for f in obs), 1e-6)
    h = max(statistics.median(f["bbox"]["height"] for f in obs), 1e-6)
    cx, cy = centre("left", "width"), centre("top", "height")
    if not (0.0 <= cx <= 1.0 and 0.0 <= cy <= 1.0):
        return None  # the runner has left the frame
    return cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2


def fill_gaps(
    passes: Sequence[RunnerPass],
    frames: FrameImages,
    read_crop: CropReader,
    stats: RereadStats,
) -> list[Read]:
    """Reads of each pass's own number where its track predicts the bib but nothing was read."""
    found: list[Read] = []

    @functools.lru_cache(maxsize=IMAGES_KEPT)  # passes overlap in time: runners share frames
    def image(frame: int):
        try:
            return _decode(frames.load(frame))
        except (OSError, ValueError) as exc:
            log.warning("re-read: frame %d unreadable (%s)", frame, exc)
            return None

    def read_at(p: RunnerPass, doc: list[dict], frame: int) -> Read | None:
        picture = image(frame)
        if picture is None:
            return None
        box = _predict(doc, frames.timestamp_ms(frame))
        if box is None:
            return None
        height, width = picture.shape[:2]
        px = (box[0] * width, box[1] * height, box[2] * width, box[3] * height)
        stats.crops_read += 1
        for number, read in _reads_in(read_crop, picture, px, GAP_MARGIN, frame, frames, GAP_MIN_CONFIDENCE):
            if same_number(number, p.number):
                return read
        return None

    for p in passes:
        doc = list(p.frames)
        seen = {f["frame_index"] for f in doc}
        inside = [i for i in range(p.start_frame + 1, p.end_frame) if i not in seen]
        for frame in inside:
            read = read_at(p, doc, frame)
            if read is not None:
                found.append(read)
        for step, start in ((-1, p.start_frame), (1, p.end_frame)):
            for reach in range(1, END_REACH + 1):
                frame = start + step * reach
                if not 0 <= frame < frames.count:
                    break
                read = read_at(p, doc, frame)
                if read is None:
                    break
                found.append(read)
                doc.append(_doc_of(read))  # the next frame out is predicted from this one
    stats.gap_reads = len(found)
    return found


def _doc_of(read: Read) -> dict:
    return {
        "frame_index": read.frame_index,
        "timestamp_ms": read.timestamp_ms,
        "bbox": {"left": read.left, "top": read.top, "width": read.width, "height": read.height},
    }


def more_reads(
    reads: Sequence[Read],
    settings: PassSettings,
    roster: Roster | None,
    frames: FrameImages,
    read_crop: CropReader,
) -> tuple[list[Read], RereadStats]:
    """The reads plus what the two searches add (see the module doc), and what they cost."""
    started = time.process_time()
    stats = RereadStats()
    reads = list(reads)
    first = find_passes(reads, settings, roster).passes
    reads = _add_new(reads, search_frames(reads, first, frames, read_crop, stats))
    second = find_passes(reads, settings, roster).passes
    reads = _add_new(reads, fill_gaps(second, frames, read_crop, stats))
    stats.cpu_s = time.process_time() - started
    return reads, stats


def _add_new(reads: list[Read], added: list[Read]) -> list[Read]:
    """`reads` and the added reads whose box no read of their frame already covers: one bib read
    twice in a frame would start a second, one-read track of the same runner."""
    by_frame: dict[int, list[Read]] = {}
    for r in reads:
        by_frame.setdefault(r.frame_index, []).append(r)
    kept = list(reads)
    for r in added:
        same = by_frame.setdefault(r.frame_index, [])
        if not any(_iou(r, other) > DUPLICATE_IOU for other in same):
            kept.append(r)
            same.append(r)
    return kept


def _iou(a: Read, b: Read) -> float:
    w = min(a.left + a.width, b.left + b.width) - max(a.left, b.left)
    h = min(a.top + a.height, b.top + b.height) - max(a.top, b.top)
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / (a.width * a.height + b.width * b.height - inter)
