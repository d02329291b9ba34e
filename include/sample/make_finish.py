#!/usr/bin/env python3
"""Seeded generator of finish-line race footage over a real video, with exact ground truth.

Why: reko's runner tracking and bib OCR need footage that is as hard as the real thing
(small, blurred, tilted, shaded bibs; runners crossing and hiding each other; numbers on
clocks and signs that are not bibs) and whose correct answer is still known exactly, so a
change can be tuned on one seed (``--seed 1``) and reported on another (``--seed 2``)
without overfitting to one video. ``make_sample.py``'s discipline is kept: every position,
size and pose is a closed-form function of time, and the truth is computed by the same
functions that draw (coverage between runners is measured on the very sprites that are
composited), so ``build_truth`` needs no pixels of the background and no encoding.

Background: ``vtest.avi`` from Debian's ``opencv-doc`` (a real pedestrian scene, 768x576,
10 fps), scaled to 1280x960 and cropped to 1280x720; it plays at its real speed (output
frame ``i`` shows source frame ``floor(i * 10 / 25)``), so its pedestrians are real moving
distractors. Its sha256 is checked so a different file cannot silently change the video.

Outputs (in ``--out-dir``): ``finish-s{seed}.mp4`` (libx264 CRF 26, yuv420p, GOP 2 s,
``+faststart``, no audio), ``finish-s{seed}.truth.json`` and ``finish-s{seed}.roster.csv``.
The truth's ``definition`` field states the exact visibility rule.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import math
import random
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache, lru_cache
from itertools import combinations
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

WIDTH, HEIGHT, FPS = 1280, 720, 25
DURATION_S = 60.0
N_FRAMES = int(DURATION_S * FPS)
CRF = 26

DEFAULT_SOURCE = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
SOURCE = {
    "file": "vtest.avi",
    "path": str(DEFAULT_SOURCE),
    "package": "opencv-doc",
    "version": "4.6.0+dfsg-12",
    "licence": "Apache-2.0 AND BSD-3-Clause",
    "licence_basis": (
        "debian/copyright of opencv-doc 4.6.0+dfsg-12 has no stanza for samples/data/vtest.avi, "
        "so the catch-all 'Files: *' applies: Copyright 2000-2022 Intel Corporation, Willow "
        "Garage, NVIDIA, AMD, OpenCV Foundation, Itseez, Xperience AI, Shenzhen Institute of AI "
        "and Robotics for Society and OpenCV contributors; License: Apache-2.0 AND BSD-3-Clause"
    ),
    "provenance_note": (
        "the scene appears to be the PETS 2009 benchmark (University of Reading), whose own note "
        "grants free download for the PETS 2009 workshop and academic and industrial research "
        "with acknowledgement; Debian's copyright file does not mention this"
    ),
    "sha256": "45cddc9490be69345cbdab64ca583be65987e864ca408038e648db99e10516cf",
    "fps": 10,
    "size": [768, 576],
    "transform": "scale 1280x960 (bicubic), crop 1280x720 at y=120; output frame i shows source frame "
    "floor(i*10/25)",
}
SRC_FPS = 10
SRC_SCALED_H = 960
SRC_CROP_Y = 120

FONTS = {
    "bib": "/usr/share/fonts/truetype/dejavu/DejaVuSansCondensed-Bold.ttf",
    "bold": "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "mono": "/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf",
}

VISIBLE_MAX_COVER = 0.30

DEFINITION = (
    "Frame i is shown at t = i / fps. A pass is one crossing of the frame by one runner; start/end "
    "are the first/last frame in which any pixel of the runner's figure is inside the frame. The "
    "bib card is the white card after its tilt and shear; the bib is *visible* in frame i when the "
    "card's four corners lie inside the frame (0 <= x <= width, 0 <= y <= height) and less than "
    "30 % of the card's pixels are covered by nearer runners, where a card pixel is covered when a "
    "nearer runner's figure alpha after its motion blur is >= 0.5 there (the very sprites that are "
    "composited, drawn far to near). 'occluded' lists maximal runs of frames in which the card is "
    "inside the frame and one nearer runner ('by') covers >= 30 % of it on its own; start_s/end_s "
    "are the times of the first/last frame of the run and duration_s = frames / fps. 'boxes' gives, "
    "for every visible frame, the axis-aligned pixel box [x0, y0, x1, y1] (x1, y1 exclusive) of the "
    "digits' ink after tilt and shear and before motion blur (blur widens the ink by blur_px - 1 "
    "horizontally). digit_px is the digits' ink height on the untilted card. 'crosses' lists the "
    "runners whose figure box intersects this pass's figure box in some frame; an overtake is two "
    "passes in the same direction whose order along the direction of travel swaps while both are "
    "in view. 'bibs' segments are maximal runs of consecutive visible frames of a bib text over all "
    "its passes (the shape of race.truth.json). Times are rounded to milliseconds."
)

# Camera model: a camera 1.5 m above the road, horizon at y = HORIZON_Y; a runner at scale s
# (pixels per metre at its depth) stands on y = HORIZON_Y + CAM_H * s and is 1.75 m tall.
HORIZON_Y = 330.0
CAM_H = 1.5
BODY_M = 1.75
DIGIT_M = 0.131  # digit height on the card in metres (so digit_px = 0.131 * s)

ROWS = {"far": (20, 23), "mid": (23, 27), "near": (27, 34)}  # digit_px range per depth row
# Defocus (Gaussian sigma, px) per row: the lens is focused near the nearest row.
FOCUS = {"far": (0.9, 1.3), "mid": (0.7, 1.0), "near": (0.5, 0.8)}
SPEED_CROSS_S = {"walk": (12.0, 15.0), "jog": (6.0, 9.0), "race": (3.0, 5.0)}  # frame-width crossing
BLUR_PX = {"walk": (3, 4), "jog": (4, 6), "race": (5, 7)}
CADENCE = {"walk": 1.8, "jog": 2.6, "race": 3.0}  # strides (one leg) per second
BOUNCE = {"walk": 0.6, "jog": 1.4, "race": 2.0}  # vertical bob, in units of 1 % of body height

CLOCK_BOX = (968, 78, 1252, 150)
SIGN_BOX = (56, 96, 256, 176)
BANNER_BOX = (0, 0, WIDTH, 58)
BANNER_TEXT = "CITY RUN 2026  ·  FINISH"
SIGN_TEXT = "KM 42"
SPONSOR_TEXT = "CITY RUN"
YEAR_TEXT = "2026"


def require_fonts() -> dict[str, str]:
    """Return the font paths; fail loudly, since another font would change every digit box."""
    missing = [p for p in FONTS.values() if not Path(p).is_file()]
    if missing:
        raise SystemExit(f"fonts missing: {missing}; install the Debian package fonts-dejavu-core")
    return dict(FONTS)


def require_source(path: Path) -> Path:
    """Check the background video exists and is the exact file the truth was made for."""
    if not path.is_file():
        raise SystemExit(
            f"source video {path} not found: install the Debian package opencv-doc "
            "(apt-get install opencv-doc) or pass --source PATH_TO_vtest.avi"
        )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != SOURCE["sha256"]:
        raise SystemExit(f"{path} has sha256 {digest}, expected {SOURCE['sha256']} (opencv-doc 4.6.0)")
    return path


# ----------------------------------------------------------------------------- schedule


@dataclass(frozen=True)
class PassSpec:
    """One crossing of the frame by one runner: everything that decides its pixels."""

    bib: str
    lap: int  # 0 for the runner's first pass, 1 for the second
    row: str
    digit_target: int  # requested digit ink height (px); the truth records the measured one
    speed: str
    v: float  # px/s along the direction of travel
    direction: str  # "ltr" | "rtl"
    t_enter: float  # time at which the figure centre is at x = -margin (ltr) or W + margin (rtl)
    blur_px: int
    tilt_deg: float
    shear: float
    shade: float  # 1.0 in the sun; < 1 darkens and flattens the whole runner (in shadow)
    phase: float
    look: int  # index into the runner's colours (same runner, same look)
    hard: bool = False
    focus_sigma: float = 0.0  # defocus, Gaussian sigma in px (applied after the motion blur)
    squeeze: float = 1.0  # horizontal foreshortening of the card (cos of the runner's turn away)

    @property
    def s(self) -> float:
        """Pixels per metre at this runner's depth (size by depth)."""
        return self.digit_target / DIGIT_M

    @property
    def u(self) -> float:
        """One per cent of the body height, in pixels: the figure's drawing unit."""
        return BODY_M * self.s / 100.0

    @property
    def ground_y(self) -> float:
        return HORIZON_Y + CAM_H * self.s

    @property
    def margin(self) -> float:
        """Half the sprite width: where the figure is fully outside the frame."""
        return 32 * self.u + self.blur_px + 3 * self.focus_sigma

    @property
    def t_exit(self) -> float:
        return self.t_enter + (WIDTH + 2 * self.margin) / self.v


def center_x(p: PassSpec, t: float) -> float:
    """Horizontal centre of the figure at time t: the one motion function for pixels and truth."""
    d = p.v * (t - p.t_enter) - p.margin
    return d if p.direction == "ltr" else WIDTH - d


def bob(p: PassSpec, t: float) -> float:
    """Vertical bounce in pixels (<= 0, upwards) at time t."""
    return -BOUNCE[p.speed] * p.u * abs(math.sin(math.pi * CADENCE[p.speed] * t + p.phase))


def origin(p: PassSpec, t: float) -> tuple[int, int]:
    """Integer frame position of the figure's feet centre, as pasted."""
    return int(round(center_x(p, t))), int(round(p.ground_y + bob(p, t)))


FIRST_W = ["Anna", "Chloé", "Elif", "Farah", "Hana", "Jana", "Lena", "Nadia", "Priya", "Rosa", "Ursula",
           "Ximena", "Zoe", "Aiko", "Carmen", "Emma", "Grace", "Ines", "Kira", "Maya", "Sofia"]  # fmt: skip
FIRST_M = ["Ben", "Dmitri", "Gustav", "Ivan", "Kofi", "Mateo", "Oskar", "Quentin", "Sven", "Tariq", "Viktor",
           "Yusuf", "Bruno", "Diego", "Felix", "Hiro", "Jonas", "Luca", "Noah", "Wen", "Samuel"]  # fmt: skip
LAST = ["Andersen", "Becker", "Costa", "Dubois", "Eriksson", "Fischer", "García", "Hoffmann", "Jensen",
        "Kowalski", "Lindqvist", "Moreau", "Nakamura", "Okafor", "Petrov", "Quinn", "Rossi", "Schmidt",
        "Tanaka", "Usman", "Varga", "Weber", "Xu", "Yilmaz", "Zimmermann", "Almeida", "Brennan", "Kim",
        "Novak", "Silva", "Müller", "Park", "Horvat", "Sato", "Lopez", "Haddad"]  # fmt: skip
AGE_GROUPS = ["20", "35", "40", "45", "50", "55", "60"]


def _person(rng: random.Random) -> tuple[str, str]:
    """A plausible name and its age-group category (W.. or M..)."""
    sex = rng.choice("WM")
    first = rng.choice(FIRST_W if sex == "W" else FIRST_M)
    return f"{first} {rng.choice(LAST)}", f"{sex}{rng.choice(AGE_GROUPS)}"


@dataclass
class Runner:
    """A person in the race; a runner on a lap course passes the camera more than once."""

    bib: str
    name: str
    category: str
    look: int


@dataclass
class Schedule:
    """The seeded race: runners, their passes, the clock's start and the distractor bibs."""

    seed: int
    runners: list[Runner]
    passes: list[PassSpec]
    clock_start_s: int
    extra_roster: list[Runner] = field(default_factory=list)


def _bibs(rng: random.Random, n: int) -> list[str]:
    out: list[str] = []
    while len(out) < n:
        b = str(rng.randint(100, 999) if rng.random() < 0.25 else rng.randint(1000, 9999))
        if b not in out and not any(
            len(b) == len(o) and sum(x != y for x, y in zip(b, o, strict=True)) < 2 for o in out
        ):
            out.append(b)  # bibs in the video differ from each other in at least two digits
    return out


def _speed_v(rng: random.Random, speed: str) -> float:
    lo, hi = SPEED_CROSS_S[speed]
    return WIDTH / rng.uniform(lo, hi)


def _spec(
    rng: random.Random, bib: str, row: str, speed: str, direction: str, t_enter: float, **kw
) -> PassSpec:
    lo, hi = ROWS[row]
    blo, bhi = BLUR_PX[speed]
    shaded = rng.random() < 0.4
    args = {
        "bib": bib,
        "lap": 0,
        "row": row,
        "digit_target": rng.randint(lo, hi),
        "speed": speed,
        "v": _speed_v(rng, speed),
        "direction": direction,
        "t_enter": t_enter,
        "blur_px": rng.randint(blo, bhi),
        "tilt_deg": round(rng.uniform(-10.0, 10.0), 1),
        "shear": round(rng.uniform(-0.15, 0.15), 3),
        "shade": round(rng.uniform(0.4, 0.65), 2) if shaded else 1.0,
        "focus_sigma": round(rng.uniform(*FOCUS[row]), 2),
        "squeeze": round(rng.uniform(0.66, 0.96), 2),
        "phase": rng.uniform(0, 2 * math.pi),
        "look": 0,
    }
    args.update(kw)
    return PassSpec(**args)


def _enter_for(p: PassSpec, x: float, t: float) -> float:
    """t_enter that puts the figure centre of p at x at time t."""
    d = x if p.direction == "ltr" else WIDTH - x
    return t - (d + p.margin) / p.v


def _replace(p: PassSpec, **kw) -> PassSpec:
    d = {k: getattr(p, k) for k in PassSpec.__dataclass_fields__}
    d.update(kw)
    return PassSpec(**d)


def _draw_schedule(rng: random.Random) -> list[PassSpec]:
    """One candidate schedule: two planned occlusions, a hard bib, laps, then random fill per row."""
    fixed: list[PassSpec] = []
    # Planned occlusions: a nearer runner overtakes a farther one in the same direction; the
    # relative speed is solved later (in plan) so the bib is hidden for 2-3 s.
    for k, (direction, far_row, t_lo, t_hi) in enumerate([("ltr", "far", 13, 20), ("rtl", "mid", 38, 45)]):
        tc = rng.uniform(t_lo, t_hi)
        xc = rng.uniform(0.4, 0.6) * WIDTH
        f = _spec(rng, f"F{k}", far_row, "jog", direction, 0.0, v=WIDTH / rng.uniform(7.5, 9.0))
        f = _replace(f, t_enter=_enter_for(f, xc, tc))
        n = _spec(rng, f"N{k}", "near", "jog", direction, 0.0, v=f.v + 75.0)
        n = _replace(n, t_enter=_enter_for(n, xc, tc))
        fixed += [f, n]
    # The genuinely hard bib: far row, race pace, 22 px digits, 7 px blur.
    h = _spec(rng, "H", "far", "race", rng.choice(["ltr", "rtl"]), rng.uniform(27, 31), hard=True)
    fixed.append(
        _replace(
            h,
            digit_target=22,
            blur_px=7,
            tilt_deg=round(rng.choice([-1, 1]) * rng.uniform(6, 9), 1),
            squeeze=round(rng.uniform(0.62, 0.7), 2),
            shade=round(rng.uniform(0.5, 0.6), 2),
        )
    )

    # A walker (crossing in 12-15 s), early, in the middle row.
    fixed.append(_spec(rng, "W", "mid", "walk", rng.choice(["ltr", "rtl"]), rng.uniform(0.5, 4.0)))

    passes = list(fixed)
    for row in ROWS:
        busy = sorted((p.t_enter, p.t_exit) for p in passes if p.row == row)
        t = rng.uniform(0.0, 2.0)
        while t < DURATION_S - 3.0:
            fitted = None
            for _try in range(4):  # a few draws at this time; a shorter crossing may fit the gap
                speed = rng.choices(["walk", "jog", "race"], weights=[0.25, 0.4, 0.35])[0]
                direction = rng.choices(["ltr", "rtl"], weights=[0.6, 0.4])[0]
                p = _spec(rng, "?", row, speed, direction, t)
                clear = not any(p.t_enter < b[1] + 0.3 and b[0] < p.t_exit + 0.3 for b in busy)
                if clear and p.t_exit <= DURATION_S - 0.2:
                    fitted = p
                    break
            if fitted is None:  # nothing fits here: go on after the next busy pass, or stop
                later = [b[1] for b in busy if b[1] > t]
                if not later:
                    break
                t = min(later) + rng.uniform(0.3, 1.5)
                continue
            passes.append(fitted)
            busy.append((fitted.t_enter, fitted.t_exit))
            t = fitted.t_exit + rng.uniform(0.2, 1.5)
    return passes


def _assign_bibs(rng: random.Random, passes: list[PassSpec]) -> tuple[list[Runner], list[PassSpec]]:
    """Give every pass a runner; a few runners come by a second time (a lap), same direction."""
    passes = sorted(passes, key=lambda p: p.t_enter)
    n_laps = rng.randint(2, 3)
    owner: list[int | None] = [None] * len(passes)
    lap_pairs: list[tuple[int, int]] = []
    order = list(range(len(passes)))
    rng.shuffle(order)
    for j in order:  # candidate second passes
        if len(lap_pairs) >= n_laps:
            break
        pj = passes[j]
        if pj.hard or pj.bib.startswith(("F", "N")) or owner[j] is not None:
            continue
        firsts = [
            i for i in range(len(passes))
            if passes[i].t_exit + 12.0 < pj.t_enter and passes[i].direction == pj.direction
            and passes[i].speed == pj.speed
            and owner[i] is None and i not in {a for a, _ in lap_pairs} and not passes[i].hard
        ]  # fmt: skip
        if firsts:
            i = rng.choice(firsts)
            lap_pairs.append((i, j))
            owner[i] = owner[j] = i
    bibs = _bibs(rng, len(passes) + 12)
    runners: list[Runner] = []
    out: list[PassSpec] = []
    by_first: dict[int, Runner] = {}
    names: set[str] = set()
    for i, p in enumerate(passes):
        first = owner[i] if owner[i] is not None else i
        if first not in by_first:
            while True:
                name, category = _person(rng)
                if name not in names:
                    names.add(name)
                    break
            free = [b for b in bibs if b not in {x.bib for x in runners}]
            bib = next(b for b in free if len(b) == 4) if p.hard else free[0]  # the hard bib: 4 digits
            r = Runner(bib, name, category, len(runners))
            by_first[first] = r
            runners.append(r)
        r = by_first[first]
        out.append(_replace(p, bib=r.bib, lap=0 if first == i else 1, look=r.look))
    return runners, out


def _extra_roster(rng: random.Random, runners: list[Runner]) -> list[Runner]:
    """About ten bibs that are not in the video; some one digit away from a real one (OCR traps)."""
    real = {r.bib for r in runners}
    out: list[str] = []
    for r in rng.sample(runners, 4):
        while True:
            k = rng.randrange(len(r.bib))
            d = str(rng.randint(0, 9))
            b = r.bib[:k] + d + r.bib[k + 1 :]
            if b != r.bib and b[0] != "0" and b not in real and b not in out:
                out.append(b)
                break
    while len(out) < 10:
        b = str(rng.randint(1000, 9999))
        if b not in real and b not in out:
            out.append(b)
    return [Runner(b, *_person(rng), -1) for b in out]


# ----------------------------------------------------------------------------- sprites


@dataclass(frozen=True)
class Card:
    """A pass's bib card, drawn flat, then tilted and sheared once (the pose is fixed per pass)."""

    rgba: np.ndarray  # float32 premultiplied RGBA of the warped card, canvas (kh, kw, 4)
    mask: np.ndarray  # bool, the card's pixels in the canvas
    offset: tuple[int, int]  # canvas top-left relative to the figure origin (feet centre)
    corners: np.ndarray  # (4, 2) card corners relative to the figure origin
    digit_box: tuple[float, float, float, float]  # digits' ink box relative to the figure origin
    digit_px: int


def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


@cache
def _digit_ratio(path: str) -> float:
    """Ink height of digits per font-size unit, to size digits to an exact pixel height."""
    f = _font(path, 200)
    x0, y0, x1, y1 = f.getbbox("0123456789", anchor="ls")
    return (y1 - y0) / 200.0


@cache
def make_card(p: PassSpec) -> Card:
    """Draw the bib: white card, sponsor band ("CITY RUN" and "2026"), black digits; tilt, shear."""
    fonts = require_fonts()
    dp = p.digit_target
    cw, ch = int(round(3.3 * dp + 0.6 * dp * len(p.bib) / 4)), int(round(2.3 * dp))
    cw = max(cw, int(round(0.46 * p.s)))
    sc = 4  # supersampled drawing, then area-downscaled: smooth edges like an optical image
    big = Image.new("RGBA", (cw * sc, ch * sc), (246, 246, 242, 255))
    d = ImageDraw.Draw(big)
    band_h = int(round(0.52 * dp)) * sc
    band_col = [(200, 30, 45), (20, 70, 160), (0, 120, 90), (230, 120, 0)][p.look % 4]
    d.rectangle([0, 0, cw * sc, band_h], fill=(*band_col, 255))
    small = _font(fonts["bold"], max(int(round(0.3 * dp * sc)), 6))
    d.text((int(0.25 * dp * sc), band_h // 2), SPONSOR_TEXT, font=small, fill=(255, 255, 255), anchor="lm")
    d.text(
        (cw * sc - int(0.25 * dp * sc), band_h // 2), YEAR_TEXT, font=small, fill=(255, 255, 255), anchor="rm"
    )
    d.rectangle([0, ch * sc - int(0.12 * dp * sc), cw * sc, ch * sc], fill=(*band_col, 255))
    cy = (band_h + ch * sc - int(0.12 * dp * sc)) / 2

    def digit_ink(size: int) -> tuple[np.ndarray, np.ndarray]:
        digits = Image.new("L", big.size, 0)
        ImageDraw.Draw(digits).text(
            (cw * sc / 2, cy), p.bib, font=_font(fonts["bib"], size), fill=255, anchor="mm"
        )
        ink = np.asarray(digits, np.float32) / 255.0
        return ink, cv2.resize(ink, (cw, ch), interpolation=cv2.INTER_AREA)

    guess = int(round(dp * sc / _digit_ratio(fonts["bib"])))
    best: tuple[int, int, np.ndarray, np.ndarray] | None = None
    for size in sorted(range(guess - 10, guess + 11), key=lambda z: abs(z - guess)):
        # the font size (nearest the estimate) whose ink is exactly digit_target px high
        ink, ink_small = digit_ink(size)
        ys = np.nonzero((ink_small >= 0.5).any(axis=1))[0]
        err = abs(int(ys.max() + 1 - ys.min()) - dp)
        if best is None or err < best[0]:
            best = (err, size, ink, ink_small)
        if err == 0:
            break
    assert best is not None
    _, _, ink, ink_small = best
    ys, xs = np.nonzero(ink_small >= 0.5)
    dx0, dy0, dx1, dy1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
    arr = np.asarray(big, np.float32).copy()
    arr[..., :3] = arr[..., :3] * (1 - ink[..., None]) + np.array([18, 18, 20], np.float32) * ink[..., None]
    flat = cv2.resize(arr, (cw, ch), interpolation=cv2.INTER_AREA)

    a = math.radians(p.tilt_deg)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    A = rot @ np.array([[1.0, p.shear], [0.0, 1.0]]) @ np.array([[p.squeeze, 0.0], [0.0, 1.0]])
    flat_corners = np.array([[0, 0], [cw, 0], [cw, ch], [0, ch]], np.float64)
    c = np.array([cw / 2, ch / 2])
    warped = (flat_corners - c) @ A.T
    kw = int(math.ceil(np.abs(warped[:, 0]).max() * 2)) + 4
    kh = int(math.ceil(np.abs(warped[:, 1]).max() * 2)) + 4
    kc = np.array([kw / 2, kh / 2])
    M = np.hstack([A, (kc - A @ c)[:, None]])
    pre = flat.copy()
    pre[..., :3] *= pre[..., 3:4] / 255.0
    rgba = cv2.warpAffine(pre, M, (kw, kh), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0, 0))
    mask = rgba[..., 3] >= 127.5
    # The card sits on the chest: its centre 66 % of the body height above the feet.
    ox = -kw // 2
    oy = int(round(-66 * p.u)) - kh // 2
    to_origin = np.array([ox, oy]) + kc
    corners = warped + to_origin
    dcorn = (np.array([[dx0, dy0], [dx1, dy0], [dx1, dy1], [dx0, dy1]], np.float64) - c) @ A.T + to_origin
    box = (dcorn[:, 0].min(), dcorn[:, 1].min(), dcorn[:, 0].max(), dcorn[:, 1].max())
    return Card(rgba, mask, (ox, oy), corners, box, int(dy1 - dy0))


LOOKS = [  # shirt, shorts, skin, hair
    ((222, 60, 60), (30, 30, 40), (236, 196, 166), (40, 30, 22)),
    ((40, 110, 200), (25, 25, 30), (198, 142, 102), (25, 20, 18)),
    ((250, 200, 40), (20, 40, 90), (150, 100, 70), (20, 16, 14)),
    ((60, 170, 90), (50, 50, 55), (225, 180, 140), (120, 80, 40)),
    ((240, 240, 236), (20, 20, 24), (176, 120, 84), (30, 24, 20)),
    ((150, 70, 170), (30, 30, 40), (240, 205, 180), (190, 150, 90)),
    ((255, 130, 40), (25, 30, 60), (120, 80, 56), (15, 12, 10)),
    ((30, 30, 36), (60, 60, 66), (230, 190, 160), (70, 50, 30)),
    ((90, 200, 220), (30, 30, 40), (205, 160, 120), (40, 30, 25)),
    ((235, 110, 160), (20, 20, 26), (245, 210, 185), (160, 110, 60)),
    ((120, 130, 40), (40, 40, 44), (140, 92, 64), (20, 18, 16)),
    ((200, 200, 210), (20, 40, 90), (220, 176, 140), (90, 60, 30)),
]


def _shade_cols(col: tuple[int, int, int], k: float) -> tuple[int, int, int, int]:
    return (int(col[0] * k), int(col[1] * k), int(col[2] * k), 255)


@dataclass(frozen=True)
class Sprite:
    """A runner composited at one time: premultiplied RGBA (blurred) and where it goes."""

    rgba: np.ndarray  # float32 (h, w, 4), premultiplied, motion-blurred
    x0: int
    y0: int

    @property
    def box(self) -> tuple[int, int, int, int]:
        h, w = self.rgba.shape[:2]
        return self.x0, self.y0, self.x0 + w, self.y0 + h


@cache
def _lighting(p: PassSpec, w: int, h: int) -> np.ndarray:
    """Per-pixel light factor: a lit side and a darker side, as on a rounded body in daylight."""
    x = (np.arange(w, dtype=np.float32) - w / 2) / (w / 2)
    side = -1.0 if p.direction == "ltr" else 1.0  # light comes from ahead-left of the camera
    f = 0.92 + 0.16 * side * x - 0.12 * x * x
    y = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None]
    return (f[None, :] * (1.04 - 0.1 * y)).astype(np.float32)


@lru_cache(maxsize=64)
def _figure(p: PassSpec, t: float) -> tuple[np.ndarray, int, int]:
    """The runner's figure at time t (RGBA uint8, not yet lit or blurred) and its origin in it."""
    u = p.u
    half_w = int(math.ceil(p.margin))
    top = int(math.ceil(104 * u))
    bottom = int(math.ceil(4 * u))
    w, h = 2 * half_w, top + bottom
    ox, oy = half_w, top  # figure origin (feet centre) inside the sprite
    img = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    shirt, shorts, skin, hair = LOOKS[p.look % len(LOOKS)]
    fwd = 1.0 if p.direction == "ltr" else -1.0
    ph = math.pi * CADENCE[p.speed] * t + p.phase
    swing = math.sin(ph)
    amp = {"walk": 0.6, "jog": 1.0, "race": 1.3}[p.speed]

    def P(x: float, y: float) -> tuple[float, float]:
        return ox + x * u, oy + y * u

    def limb(a: tuple[float, float], b: tuple[float, float], wa: float, wb: float, col: tuple) -> None:
        """A tapered limb segment (a quad with round ends), widths in units of u."""
        (ax, ay), (bx, by) = P(*a), P(*b)
        dx, dy = bx - ax, by - ay
        n = math.hypot(dx, dy) or 1.0
        nx, ny = -dy / n, dx / n
        ra, rb = wa * u / 2, wb * u / 2
        d.polygon([(ax + nx * ra, ay + ny * ra), (bx + nx * rb, by + ny * rb),
                   (bx - nx * rb, by - ny * rb), (ax - nx * ra, ay - ny * ra)], fill=col)  # fmt: skip
        d.ellipse([ax - ra, ay - ra, ax + ra, ay + ra], fill=col)
        d.ellipse([bx - rb, by - rb, bx + rb, by + rb], fill=col)

    def leg(hx: float, sw: float, k: float) -> None:
        """Hip -> knee -> ankle from the stride phase; seen three-quarter, so swings are shortened."""
        a_t = math.radians(28) * sw * amp  # thigh angle from vertical, forward positive
        bend = math.radians(12 + 70 * max(0.0, -sw) * amp)  # the calf folds up on the back swing
        hip = (hx, -47.0)
        knee = (hx + 0.6 * fwd * 24 * math.sin(a_t), -47.0 + 24 * math.cos(a_t))
        a_c = a_t - bend
        ankle = (knee[0] + 0.6 * fwd * 22 * math.sin(a_c), knee[1] + 22 * math.cos(a_c))
        limb(hip, knee, 8.0, 6.0, _shade_cols(skin, k))
        limb(knee, ankle, 5.8, 3.8, _shade_cols(skin, k))
        shoe = _shade_cols((225, 228, 235) if p.look % 3 else (40, 40, 48), k)
        ax_, ay_ = P(*ankle)
        d.ellipse([ax_ - 3.2 * u, ay_ - 1.8 * u, ax_ + 3.2 * u + fwd * 2.2 * u, ay_ + 1.6 * u], fill=shoe)

    def arm(sx: float, sw: float, k: float) -> tuple[float, float]:
        """Shoulder -> elbow -> hand, bent more at race pace; hands stay off the bib."""
        bend = {"walk": 0.35, "jog": 0.9, "race": 1.1}[p.speed]
        elbow = (sx * 1.06 - 0.5 * fwd * 8 * sw, -66 + 2 * abs(sw))
        hand_x = elbow[0] + 0.5 * fwd * 9 * bend * (1 + sw) * 0.8
        hand_x = math.copysign(max(abs(hand_x), 16.5), sx)
        hand = (hand_x, elbow[1] + 11 * (1.0 - 0.55 * bend))
        limb((sx, -78.5), elbow, 5.2, 4.2, _shade_cols(skin, k))
        limb(elbow, hand, 4.0, 3.2, _shade_cols(skin, k))
        return hand

    # Far limbs first and darker, then the torso, then the near limbs: reads as a body in depth.
    leg(-5.5, swing, 0.72)
    arm(-17.0, -swing * amp, 0.72)
    shorts_poly = [P(-15.5, -55), P(15.5, -55), P(14.5, -43), P(1.5, -42), P(0, -44), P(-1.5, -42),
                   P(-14.5, -43)]  # fmt: skip
    d.polygon(shorts_poly, fill=_shade_cols(shorts, 1.0))
    leg(5.5, -swing, 1.0)
    torso = [P(-18, -80), P(-11, -83.5), P(11, -83.5), P(18, -80), P(16.2, -68), P(14, -58),
             P(15, -51), P(-15, -51), P(-14, -58), P(-16.2, -68)]  # fmt: skip
    d.polygon(torso, fill=_shade_cols(shirt, 1.0))
    for sx in (-15.8, 15.8):  # rounded shoulders (singlet seams)
        cx_, cy_ = P(sx, -79)
        d.ellipse([cx_ - 4.2 * u, cy_ - 3.2 * u, cx_ + 4.2 * u, cy_ + 3.6 * u], fill=_shade_cols(shirt, 0.94))
    d.polygon([P(-5, -83.6), P(5, -83.6), P(0, -78.5)], fill=_shade_cols(skin, 0.85))  # neckline
    arm(17.0, swing * amp, 1.0)
    limb((0, -88), (0, -83), 5.0, 5.6, _shade_cols(skin, 0.85))  # neck
    hx_, hy_ = P(fwd * 1.0, -93.0)
    r = 5.9 * u
    d.ellipse([hx_ - r, hy_ - r * 1.15, hx_ + r, hy_ + r * 1.1], fill=_shade_cols(skin, 1.0))
    d.chord(
        [hx_ - r * 1.02, hy_ - r * 1.2, hx_ + r * 1.02, hy_ + r * 0.9], 175, 365, fill=_shade_cols(hair, 1.0)
    )
    ex, ey = P(fwd * 3.8, -92.0)  # a hint of the face turned in the direction of travel
    d.ellipse([ex - 0.7 * u, ey - 0.5 * u, ex + 0.7 * u, ey + 0.5 * u], fill=_shade_cols(skin, 0.6))

    return np.asarray(img), ox, oy


def _blur(a: np.ndarray, p: PassSpec) -> np.ndarray:
    """Motion blur (a box of blur_px pixels along the horizontal motion), then lens defocus."""
    if p.blur_px > 1:
        a = cv2.blur(a, (p.blur_px, 1), borderType=cv2.BORDER_CONSTANT)
    if p.focus_sigma > 0:
        a = cv2.GaussianBlur(a, (0, 0), p.focus_sigma, borderType=cv2.BORDER_CONSTANT)
    return a


@lru_cache(maxsize=64)
def sprite_alpha(p: PassSpec, t: float) -> np.ndarray:
    """The composited sprite's coverage (0-255 float32, after blur): the truth's occlusion mask.

    ``sprite`` takes its alpha from here, so what the truth calls covered is what is drawn.
    """
    fig, ox, oy = _figure(p, t)
    a = fig[..., 3].astype(np.float32)
    card = make_card(p)
    kx, ky = ox + card.offset[0], oy + card.offset[1]
    kh, kw = card.mask.shape
    ca = card.rgba[..., 3] / 255.0
    region = a[ky : ky + kh, kx : kx + kw]
    region[...] = region * (1 - ca) + card.rgba[..., 3]
    return _blur(a, p)


def sprite(p: PassSpec, t: float) -> Sprite:
    """The runner at time t: lit figure, bib on the chest, shade, motion blur; premultiplied."""
    fig, ox, oy = _figure(p, t)
    h, w = fig.shape[:2]
    light = _lighting(p, w, h)
    rgb = fig[..., :3].astype(np.float32) * (light * (fig[..., 3].astype(np.float32) / 255.0))[..., None]
    card = make_card(p)
    kx, ky = ox + card.offset[0], oy + card.offset[1]
    kh, kw = card.mask.shape
    ca = card.rgba[..., 3:4] / 255.0
    region = rgb[ky : ky + kh, kx : kx + kw]
    region[...] = region * (1 - ca) + card.rgba[..., :3] * light[ky : ky + kh, kx : kx + kw, None]
    alpha = sprite_alpha(p, t)
    rgb = _blur(rgb, p)
    if p.shade < 1.0:  # in shadow: darker and flatter (ambient light only)
        contrast = 0.55 + 0.45 * p.shade
        mean = 110.0 * alpha[..., None] / 255.0
        rgb = p.shade * (mean + (rgb - mean) * contrast)
    x, y = origin(p, t)
    return Sprite(np.dstack([rgb, alpha]), x - ox, y - oy)


# ----------------------------------------------------------------------------- truth


def on_screen(p: PassSpec, t: float) -> bool:
    """Whether any part of the sprite can be inside the frame at time t."""
    cx = center_x(p, t)
    return cx + p.margin > 0 and cx - p.margin < WIDTH


def figure_box(p: PassSpec, t: float) -> tuple[int, int, int, int]:
    """The sprite's frame box at time t, without drawing it (the same numbers as sprite())."""
    half_w = int(math.ceil(p.margin))
    top = int(math.ceil(104 * p.u))
    bottom = int(math.ceil(4 * p.u))
    x, y = origin(p, t)
    return x - half_w, y - top, x + half_w, y + bottom


def _intersects(a: Iterable[float], b: Iterable[float]) -> bool:
    ax0, ay0, ax1, ay1 = a
    bx0, by0, bx1, by1 = b
    return ax0 < bx1 and bx0 < ax1 and ay0 < by1 and by0 < ay1


def coverage(p: PassSpec, q: PassSpec, t: float) -> float:
    """Fraction of p's card pixels that q's composited sprite covers (alpha >= 0.5) at time t."""
    card = make_card(p)
    x, y = origin(p, t)
    cx0, cy0 = x + card.offset[0], y + card.offset[1]
    kh, kw = card.mask.shape
    if not _intersects((cx0, cy0, cx0 + kw, cy0 + kh), figure_box(q, t)):
        return 0.0
    covered = _cover_mask(p, q, t)
    return float(covered.sum()) / float(card.mask.sum())


def frame_segments(flags: list[bool]) -> list[dict[str, float | int]]:
    """Maximal runs of True as segments {start_s, end_s, start_frame, end_frame} (inclusive)."""
    segs: list[dict[str, float | int]] = []
    start: int | None = None
    for i, v in enumerate([*flags, False]):
        if v and start is None:
            start = i
        elif not v and start is not None:
            segs.append(
                {
                    "start_s": round(start / FPS, 3),
                    "end_s": round((i - 1) / FPS, 3),
                    "start_frame": start,
                    "end_frame": i - 1,
                }
            )
            start = None
    return segs


def _depth_order(p: PassSpec) -> tuple[float, float]:
    return (p.s, p.t_enter)


@dataclass
class PassTruth:
    """Per-frame facts about one pass, computed from the motion functions and sprites."""

    spec: PassSpec
    frames: list[int]
    inside: dict[int, bool]
    cover: dict[int, dict[str, float]]  # frame -> {occluder bib: fraction}
    cover_total: dict[int, float]
    crosses: set[str]


def _pass_truth(p: PassSpec, passes: list[PassSpec]) -> PassTruth:
    card = make_card(p)
    nearer = [q for q in passes if q is not p and _depth_order(q) > _depth_order(p)]
    frames = [i for i in range(N_FRAMES) if on_screen(p, i / FPS)]
    inside: dict[int, bool] = {}
    cover: dict[int, dict[str, float]] = {}
    cover_total: dict[int, float] = {}
    crosses: set[str] = set()
    for i in frames:
        t = i / FPS
        x, y = origin(p, t)
        cs = card.corners + (x, y)
        inside[i] = bool(
            (cs[:, 0] >= 0).all()
            and (cs[:, 0] <= WIDTH).all()
            and (cs[:, 1] >= 0).all()
            and (cs[:, 1] <= HEIGHT).all()
        )
        fb = figure_box(p, t)
        for q in passes:
            if q is not p and on_screen(q, t) and _intersects(fb, figure_box(q, t)):
                crosses.add(q.bib)
        if not inside[i]:
            continue
        fr: dict[str, float] = {}
        union: np.ndarray | None = None
        for q in nearer:
            if not on_screen(q, t):
                continue
            c = coverage(p, q, t)
            if c > 0:
                fr[q.bib] = c
                union = _cover_mask(p, q, t) if union is None else union | _cover_mask(p, q, t)
        cover[i] = fr
        cover_total[i] = 0.0 if union is None else float((union & card.mask).sum()) / float(card.mask.sum())
    return PassTruth(p, frames, inside, cover, cover_total, crosses)


def _cover_mask(p: PassSpec, q: PassSpec, t: float) -> np.ndarray:
    """Boolean mask over p's card canvas of pixels covered by q at time t."""
    card = make_card(p)
    x, y = origin(p, t)
    cx0, cy0 = x + card.offset[0], y + card.offset[1]
    kh, kw = card.mask.shape
    qa = sprite_alpha(q, t)
    sx0, sy0, sx1, sy1 = figure_box(q, t)
    alpha = np.zeros((kh, kw), np.float32)
    ix0, iy0, ix1, iy1 = max(cx0, sx0), max(cy0, sy0), min(cx0 + kw, sx1), min(cy0 + kh, sy1)
    if ix0 < ix1 and iy0 < iy1:
        alpha[iy0 - cy0 : iy1 - cy0, ix0 - cx0 : ix1 - cx0] = qa[iy0 - sy0 : iy1 - sy0, ix0 - sx0 : ix1 - sx0]
    return card.mask & (alpha >= 127.5)


def _occlusions(pt: PassTruth) -> list[dict[str, object]]:
    """Runs of frames where one nearer runner alone covers >= 30 % of the (in-frame) card."""
    out: list[dict[str, object]] = []
    bibs = sorted({b for fr in pt.cover.values() for b in fr})
    for b in bibs:
        flags = [
            pt.inside.get(i, False) and pt.cover.get(i, {}).get(b, 0.0) >= VISIBLE_MAX_COVER
            for i in range(N_FRAMES)
        ]
        for seg in frame_segments(flags):
            n = int(seg["end_frame"]) - int(seg["start_frame"]) + 1
            out.append({**seg, "duration_s": round(n / FPS, 3), "by": b})
    return sorted(out, key=lambda o: o["start_frame"])


def _occlusion_duration(p: PassSpec, q: PassSpec) -> float:
    """Longest run (s) during which q alone covers >= 30 % of p's in-frame card."""
    best = run = 0
    card = make_card(p)
    for i in range(N_FRAMES):
        t = i / FPS
        ok = False
        if on_screen(p, t) and on_screen(q, t):
            x, y = origin(p, t)
            cs = card.corners + (x, y)
            if (cs[:, 0] >= 0).all() and (cs[:, 0] <= WIDTH).all():
                ok = coverage(p, q, t) >= VISIBLE_MAX_COVER
        run = run + 1 if ok else 0
        best = max(best, run)
    return best / FPS


def _overtakes(passes: list[PassSpec]) -> list[dict[str, object]]:
    """Same-direction pairs whose order along the travel direction swaps while both are in view."""
    out = []
    for a in passes:
        for b in passes:
            if a is b or a.direction != b.direction or a.v <= b.v:
                continue
            lo, hi = max(a.t_enter, b.t_enter), min(a.t_exit, b.t_exit)
            if hi <= lo:
                continue
            t_meet = _meet_time(b, a)  # a is faster: it passes b when their centres coincide
            if lo < t_meet < hi and 0 < center_x(a, t_meet) < WIDTH:
                x = round(center_x(a, t_meet), 1)
                out.append({"by": a.bib, "of": b.bib, "at_s": round(t_meet, 3), "x": x, "by_lap": a.lap,
                            "of_lap": b.lap})  # fmt: skip
    return sorted(out, key=lambda o: o["at_s"])


@cache
def plan(seed: int) -> Schedule:
    """Draw the race from the seed; retry (deterministically) until every required property holds."""
    rng = random.Random(seed * 1_000_003 + 17)
    for _attempt in range(100):
        passes = _draw_schedule(rng)
        # Solve each planned occlusion's relative speed so the far bib is hidden 2-3 s.
        ok = True
        for k in range(2):
            f = next(p for p in passes if p.bib == f"F{k}")
            n = next(p for p in passes if p.bib == f"N{k}")
            target = rng.uniform(2.3, 2.7)
            tc = _meet_time(f, n)
            xc = center_x(f, tc)
            for _ in range(4):
                d = _occlusion_duration(f, n)
                if 2.0 <= d <= 3.0 and abs(d - target) < 0.25:
                    break
                dv = n.v - f.v
                dv = dv * d / target if d > 0 else dv * 0.5
                n = _replace(n, v=f.v + dv)
                n = _replace(n, t_enter=_enter_for(n, xc, tc))
            passes = [n if p.bib == f"N{k}" else p for p in passes]
            d = _occlusion_duration(f, n)
            if (
                not 2.0 <= d <= 3.0
                or n.t_enter < 0
                or n.t_exit > DURATION_S
                or f.t_enter < 0
                or f.t_exit > DURATION_S
            ):
                ok = False
        if not ok or len(passes) < 14 or _same_row_clash(passes) or not _mix_ok(passes):
            continue
        runners, passes = _assign_bibs(rng, passes)
        if not any(p.lap for p in passes):
            continue
        return Schedule(
            seed, runners, passes, rng.randint(2 * 3600, 4 * 3600 + 1800), _extra_roster(rng, runners)
        )
    raise SystemExit(f"seed {seed}: no valid schedule in 100 attempts")


def _meet_time(f: PassSpec, n: PassSpec) -> float:
    """Time at which n's centre passes f's centre (same direction, n faster)."""
    return (n.v * n.t_enter - f.v * f.t_enter + (n.margin - f.margin)) / (n.v - f.v)


def _mix_ok(passes: list[PassSpec]) -> bool:
    """The variety the footage promises: shade, both directions, and several runners at once."""
    in_view = max(sum(on_screen(p, i / FPS) for p in passes) for i in range(0, N_FRAMES, 5))
    return (
        sum(p.shade < 1.0 for p in passes) >= 2
        and sum(p.shade == 1.0 for p in passes) >= 4
        and {p.direction for p in passes} == {"ltr", "rtl"}
        and {p.speed for p in passes} == set(SPEED_CROSS_S)
        and in_view >= 3
        and min(p.blur_px for p in passes) == 3
        and min(p.digit_target for p in passes) <= 21
        and max(p.digit_target for p in passes) >= 32
    )


def _same_row_clash(passes: list[PassSpec]) -> bool:
    """Runners at one depth must never overlap: one would walk through the other."""
    for a in passes:
        for b in passes:
            if a is not b and a.row == b.row and a.t_enter < b.t_exit and b.t_enter < a.t_exit:
                return True
    return False


def build_truth(seed: int) -> dict[str, object]:
    """The ground truth of a seed, computed without the background video or any encoding."""
    return json.loads(truth_json(seed))


def _build_truth(seed: int) -> dict[str, object]:
    sch = plan(seed)
    passes = sorted(sch.passes, key=lambda p: p.t_enter)
    pts = [_pass_truth(p, passes) for p in passes]
    overtakes = _overtakes(passes)
    out_passes = []
    bib_flags: dict[str, list[bool]] = {}
    for pt in pts:
        p = pt.spec
        card = make_card(p)
        visible = [i for i in pt.frames if pt.inside[i] and pt.cover_total[i] < VISIBLE_MAX_COVER]
        flags = bib_flags.setdefault(p.bib, [False] * N_FRAMES)
        for i in visible:
            flags[i] = True
        boxes = {}
        for i in visible:
            x, y = origin(p, i / FPS)
            b = card.digit_box
            boxes[str(i)] = [
                math.floor(b[0] + x),
                math.floor(b[1] + y),
                math.ceil(b[2] + x),
                math.ceil(b[3] + y),
            ]
        f0, f1 = pt.frames[0], pt.frames[-1]
        out_passes.append(
            {
                "bib": p.bib,
                "pass": p.lap,
                "start_s": round(f0 / FPS, 3),
                "end_s": round(f1 / FPS, 3),
                "start_frame": f0,
                "end_frame": f1,
                "visible_frames": visible,
                "occluded": _occlusions(pt),
                "digit_px": card.digit_px,
                "blur_px": p.blur_px,
                "focus_sigma": p.focus_sigma,
                "squeeze": p.squeeze,
                "tilt_deg": p.tilt_deg,
                "shear": p.shear,
                "shade": p.shade,
                "speed": p.speed,
                "direction": p.direction,
                "crosses": sorted(pt.crosses),
                "row": p.row,
                "speed_px_s": round(p.v, 2),
                "crossing_s": round(WIDTH / p.v, 2),
                "hard": p.hard,
                "boxes": boxes,
            }
        )
    clock_box = list(CLOCK_BOX)
    return {
        "video": f"finish-s{seed}.mp4",
        "width": WIDTH,
        "height": HEIGHT,
        "fps": FPS,
        "frame_count": N_FRAMES,
        "duration_s": round(N_FRAMES / FPS, 3),
        "seed": seed,
        "source": {k: v for k, v in SOURCE.items() if k not in ("fps", "size")},
        "definition": DEFINITION,
        "encoding": {"codec": "libx264", "crf": CRF, "pix_fmt": "yuv420p", "gop": 2 * FPS,
                     "faststart": True, "audio": False},
        "runners": [{"bib": r.bib, "name": r.name, "category": r.category} for r in sch.runners],
        "passes": out_passes,
        "overtakes": overtakes,
        "distractors": [
            {"kind": "clock", "box": clock_box, "example": clock_text(sch.clock_start_s, 0),
             "rule": "HH:MM:SS = start + floor(t); changes every second"},
            {"kind": "sign", "text": SIGN_TEXT, "box": list(SIGN_BOX)},
            {"kind": "banner", "text": BANNER_TEXT, "box": list(BANNER_BOX)},
            {"kind": "year", "text": YEAR_TEXT, "where": "every bib's sponsor band"},
            {"kind": "sponsor", "text": SPONSOR_TEXT, "where": "every bib's sponsor band"},
            {"kind": "pedestrians", "where": "the real background video (vtest.avi), everywhere"},
        ],
        "bibs": [{"text": b, "segments": frame_segments(fl)} for b, fl in bib_flags.items() if any(fl)],
    }  # fmt: skip


# ----------------------------------------------------------------------------- rendering


def clock_text(start_s: int, i: int) -> str:
    """The race clock shown in frame i."""
    v = start_s + i // FPS
    return f"{v // 3600:02d}:{v // 60 % 60:02d}:{v % 60:02d}"


def _static_overlay(fonts: dict[str, str]) -> np.ndarray:
    """Banner, KM sign and the clock's housing: fixed distractors, premultiplied RGBA."""
    img = Image.new("RGBA", (WIDTH, HEIGHT), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    x0, y0, x1, y1 = BANNER_BOX
    d.rectangle([x0, y0, x1, y1], fill=(18, 32, 78, 235))
    d.rectangle([x0, y1 - 5, x1, y1], fill=(245, 150, 30, 255))
    d.text(
        (WIDTH / 2, (y0 + y1) / 2 - 2),
        BANNER_TEXT,
        font=_font(fonts["bold"], 34),
        fill=(255, 255, 255, 255),
        anchor="mm",
    )
    x0, y0, x1, y1 = SIGN_BOX
    d.rectangle([(x0 + x1) / 2 - 5, y1, (x0 + x1) / 2 + 5, y1 + 160], fill=(120, 120, 125, 255))
    d.rounded_rectangle(
        [x0, y0, x1, y1], radius=8, fill=(20, 90, 170, 255), outline=(240, 240, 240, 255), width=4
    )
    d.text(
        ((x0 + x1) / 2, (y0 + y1) / 2),
        SIGN_TEXT,
        font=_font(fonts["bold"], 44),
        fill=(255, 255, 255, 255),
        anchor="mm",
    )
    x0, y0, x1, y1 = CLOCK_BOX
    d.rectangle([x0 + 30, y1, x0 + 40, y1 + 120], fill=(90, 90, 95, 255))
    d.rectangle([x1 - 40, y1, x1 - 30, y1 + 120], fill=(90, 90, 95, 255))
    d.rectangle([x0, y0, x1, y1], fill=(12, 12, 14, 255), outline=(70, 70, 75, 255), width=3)
    arr = np.asarray(img, np.float32).copy()
    arr[..., :3] *= arr[..., 3:4] / 255.0
    return arr


def _overlay_parts(overlay: np.ndarray) -> list[tuple[tuple[int, int, int, int], np.ndarray, np.ndarray]]:
    """The overlay cut to the boxes of its drawn parts: (box, 1 - alpha, premultiplied RGB) each.

    Outside them its alpha and colour are 0, where compositing multiplies by 1 and adds 0 (no
    change), so the frames are bit for bit those of the whole-frame composite, at a fraction of
    the work. If two parts' boxes overlap, one box around everything drawn is used instead, so no
    pixel is composited twice.
    """
    drawn = (overlay[..., 3] > 0).astype(np.uint8)
    count, _, stats, _ = cv2.connectedComponentsWithStats(drawn, connectivity=8)
    boxes = [(y, y + h, x, x + w) for x, y, w, h, _ in stats[1:count]]
    if any(a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3] for a, b in combinations(boxes, 2)):
        ys, xs = np.nonzero(drawn)
        boxes = [(ys.min(), ys.max() + 1, xs.min(), xs.max() + 1)]
    keep = 1.0 - overlay[..., 3:4] / 255.0
    return [
        ((ya, yb, xa, xb), keep[ya:yb, xa:xb].copy(), overlay[ya:yb, xa:xb, :3].copy())
        for ya, yb, xa, xb in boxes
    ]


@cache
def _clock_digits(text: str) -> np.ndarray:
    """The clock's digits for one second (amber LED-like on black), RGB float32 over its box."""
    x0, y0, x1, y1 = CLOCK_BOX
    img = Image.new("RGB", (x1 - x0 - 8, y1 - y0 - 8), (12, 12, 14))
    d = ImageDraw.Draw(img)
    d.text(
        (img.width / 2, img.height / 2), text, font=_font(FONTS["mono"], 52), fill=(255, 176, 40), anchor="mm"
    )
    return np.asarray(img, np.float32)


def _composite(frame: np.ndarray, sp: Sprite) -> None:
    """Alpha-composite a premultiplied sprite into a float32 frame, clipped to the frame."""
    x0, y0, x1, y1 = sp.box
    fx0, fy0, fx1, fy1 = max(x0, 0), max(y0, 0), min(x1, WIDTH), min(y1, HEIGHT)
    if fx0 >= fx1 or fy0 >= fy1:
        return
    src = sp.rgba[fy0 - y0 : fy1 - y0, fx0 - x0 : fx1 - x0]
    dst = frame[fy0:fy1, fx0:fx1]
    dst *= 1.0 - src[..., 3:4] / 255.0
    dst += src[..., :3]


def _ground_shadow(frame: np.ndarray, p: PassSpec, t: float) -> None:
    """A soft contact shadow under the runner, darkening the road."""
    x = center_x(p, t)
    gy = p.ground_y
    rx, ry = 16 * p.u, 2.2 * p.u
    xa, xb = int(max(x - rx * 1.3, 0)), int(min(x + rx * 1.3, WIDTH))
    ya, yb = int(max(gy - ry * 1.5, 0)), int(min(gy + ry * 1.5, HEIGHT))
    if xa >= xb or ya >= yb:
        return
    yy, xx = np.mgrid[ya:yb, xa:xb].astype(np.float32)
    d = ((xx - x) / rx) ** 2 + ((yy - gy) / ry) ** 2
    k = 1.0 - 0.35 * np.clip(1.0 - d, 0.0, 1.0)
    frame[ya:yb, xa:xb] *= k[..., None]


def source_frames(path: Path, indices: list[int] | None = None) -> Iterator[np.ndarray]:
    """Decode the background (scaled and cropped) as RGB uint8; all frames, or just `indices`."""
    vf = f"scale={WIDTH}:{SRC_SCALED_H}:flags=bicubic,crop={WIDTH}:{HEIGHT}:0:{SRC_CROP_Y}"
    if indices is not None:
        vf = "select='" + "+".join(f"eq(n\\,{k})" for k in sorted(set(indices))) + "'," + vf
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-i", str(path), "-vf", vf,
           "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]  # fmt: skip
    # stderr is dropped because closing the generator early kills the decoder on purpose; a
    # decoder that fails on its own is caught by its exit code.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    n = WIDTH * HEIGHT * 3
    done = False
    try:
        while True:
            buf = proc.stdout.read(n)
            if len(buf) < n:
                done = True
                break
            yield np.frombuffer(buf, np.uint8).reshape(HEIGHT, WIDTH, 3)
    finally:
        proc.stdout.close()
        if not done:
            proc.kill()
        rc = proc.wait()
    if done and rc != 0:
        raise SystemExit(f"decoding {path} failed (ffmpeg exit {rc})")


@cache
def _noise_bank(seed: int) -> np.ndarray:
    """A few frames of seeded sensor noise (mostly luma), cycled: cheap and deterministic."""
    g = np.random.default_rng(seed * 7919 + 5)
    luma = g.standard_normal((6, HEIGHT, WIDTH, 1), dtype=np.float32) * 3.0
    return luma + g.standard_normal((6, HEIGHT, WIDTH, 3), dtype=np.float32)


class Renderer:
    """Draws frames of one seed over a background frame; the same sprites as the truth."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.sch = plan(seed)
        self.passes = sorted(self.sch.passes, key=_depth_order)
        self.fonts = require_fonts()
        self.overlay = _static_overlay(self.fonts)
        self.overlay_parts = _overlay_parts(self.overlay)
        self.noise = _noise_bank(seed)

    def render(self, i: int, bg: np.ndarray, exclude: frozenset[str] = frozenset()) -> np.ndarray:
        """Frame i (RGB uint8) over the background frame bg; `exclude` leaves runners out (tests)."""
        t = i / FPS
        frame = bg.astype(np.float32)
        for (ya, yb, xa, xb), keep, rgb in self.overlay_parts:
            region = frame[ya:yb, xa:xb]
            region *= keep
            region += rgb
        x0, y0, x1, y1 = CLOCK_BOX
        frame[y0 + 4 : y1 - 4, x0 + 4 : x1 - 4] = _clock_digits(clock_text(self.sch.clock_start_s, i))
        live = [p for p in self.passes if on_screen(p, t) and p.bib not in exclude]
        for p in live:
            _ground_shadow(frame, p, t)
        for p in live:  # far to near
            _composite(frame, sprite(p, t))
        frame += self.noise[i % len(self.noise)]
        frame += 0.5
        return np.clip(frame, 0, 255, out=frame).astype(np.uint8)


def render_frames(
    seed: int, source: Path, indices: list[int], exclude: frozenset[str] = frozenset()
) -> dict[int, np.ndarray]:
    """Render a few frames (for tests and previews) without encoding."""
    r = Renderer(seed)
    wanted = sorted(set(indices))
    src_idx = [i * SRC_FPS // FPS for i in wanted]
    bgs = dict(zip(sorted(set(src_idx)), source_frames(require_source(source), src_idx), strict=True))
    return {i: r.render(i, bgs[s], exclude) for i, s in zip(wanted, src_idx, strict=True)}


def encode(seed: int, source: Path, out_path: Path) -> None:
    """Render every frame over the real background and pipe it into libx264."""
    r = Renderer(seed)
    cmd = [
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{WIDTH}x{HEIGHT}", "-framerate", str(FPS), "-i", "-",
        "-an", "-c:v", "libx264", "-preset", "veryfast", "-crf", str(CRF), "-g", str(2 * FPS),
        "-pix_fmt", "yuv420p", "-threads", "2", "-map_metadata", "-1", "-fflags", "+bitexact",
        "-flags:v", "+bitexact", "-movflags", "+faststart", str(out_path),
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE)
    assert proc.stdin is not None
    src = source_frames(source)
    bg = next(src)
    cur = 0
    try:
        for i in range(N_FRAMES):
            want = i * SRC_FPS // FPS
            while cur < want:
                bg = next(src, None)
                if bg is None:
                    raise SystemExit(
                        f"{source} ended at frame {cur}; it must have {N_FRAMES * SRC_FPS // FPS}"
                    )
                cur += 1
            proc.stdin.write(r.render(i, bg).tobytes())
        proc.stdin.close()
    except BrokenPipeError:
        pass
    if proc.wait() != 0:
        raise SystemExit(f"ffmpeg failed ({proc.returncode})")


def roster_csv(seed: int) -> str:
    """Every bib in the video plus ~10 that are not (some one digit from a real one), shuffled."""
    sch = plan(seed)
    rows = [(r.bib, r.name, r.category) for r in sch.runners + sch.extra_roster]
    rows.sort(key=lambda r: int(r[0]))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["bib", "name", "category"])
    w.writerows(rows)
    return buf.getvalue()


@cache
def truth_json(seed: int) -> str:
    """The truth file's exact text (tests compare the committed file to this)."""
    return json.dumps(_build_truth(seed), ensure_ascii=False, indent=1) + "\n"


def clear_caches() -> None:
    """Forget every cached schedule, card and sprite (to show a rebuild gives the same bytes)."""
    for f in (
        plan,
        make_card,
        _figure,
        sprite_alpha,
        _lighting,
        _clock_digits,
        _digit_ratio,
        truth_json,
        _noise_bank,
    ):
        f.cache_clear()


def main(argv: list[str] | None = None) -> int:
    """CLI: generate the video, truth and roster of one seed."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, required=True, help="1 = tuning seed, 2 = held-out seed")
    ap.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parent)
    ap.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="vtest.avi from opencv-doc")
    ap.add_argument("--truth-only", action="store_true", help="write truth and roster, no video")
    a = ap.parse_args(argv)
    require_fonts()
    source = a.source if a.truth_only else require_source(a.source)  # truth needs no pixels
    a.out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    stem = f"finish-s{a.seed}"
    (a.out_dir / f"{stem}.truth.json").write_text(truth_json(a.seed), encoding="utf-8")
    (a.out_dir / f"{stem}.roster.csv").write_text(roster_csv(a.seed), encoding="utf-8")
    t1 = time.monotonic()
    if not a.truth_only:
        tmp = a.out_dir / f"{stem}.tmp.mp4"
        encode(a.seed, source, tmp)
        tmp.replace(a.out_dir / f"{stem}.mp4")
    print(f"{stem}: truth {t1 - t0:.1f}s, video {time.monotonic() - t1:.1f}s -> {a.out_dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
