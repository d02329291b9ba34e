#!/usr/bin/env python3
"""Deterministic generator for a short race-like sample video and its ground truth.

Why: the pipeline (frames -> OCR -> segments -> clips) needs a small video whose
correct answer is known exactly, so tests and demos can score what reko found
against the truth instead of eyeballing it. Everything is drawn from closed-form
motion functions, so the same code computes both the pixels and the truth.

Outputs (in ``--out-dir``, default: this file's folder):

* ``race.mp4``: H.264 (libx264, yuv420p, ``-preset veryfast -crf 23``,
  GOP = 2 s, ``+faststart``), default 1280x720, 25 fps, 38 s.
* ``race.truth.json``: what is visible when.

Scene: a timing banner across the top ("CITY MARATHON 2026", the whole video),
a Korean banner ("서울 국제 마라톤") for a fixed window (10-20 s), and runners
crossing left to right, each wearing an upright white bib with a black 3-4
digit number. One runner (3318) passes twice (a lap course), one (781) is a
fast runner whose bib is fully visible for only about 2.2 s, and several
overlap in time. Runners never overlap each other on screen (checked for every
frame; generation fails otherwise), so a bib inside the frame is never covered.

Ground-truth definition (also written into the JSON under ``"definition"``):
frame ``i`` is shown at ``t = i / fps``. A bib is *visible* in frame ``i`` when
its whole white rectangle lies inside the frame (``0 <= x0``, ``x1 <= width``,
``0 <= y0``, ``y1 <= height``, pixel edges), computed from the same motion
function used to draw it. A segment is a maximal run of consecutive visible
frames; ``start_s`` is the time of its first visible frame and ``end_s`` the
time of its last visible frame (so a one-frame segment has ``start_s ==
end_s``; the frame indices are given too). Captions use the same rule with
"the caption is drawn in frame ``i``". Times are rounded to milliseconds.

The ``--seed`` only changes cosmetics (skyline, trees, shirt colours, stride
phases); the race schedule, and therefore every segment in the truth, does not
depend on it (only the JSON's ``seed`` field does).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# Design space: geometry is authored for 1280x720 and scaled to the requested size.
DESIGN_W = 1280
DESIGN_H = 720

EN_CAPTION = "CITY MARATHON 2026"
KO_CAPTION = "서울 국제 마라톤"
KO_WINDOW_S = (10.0, 20.0)  # [start, end) in seconds during which the Korean banner is drawn

DEFINITION = (
    "Frame i is shown at t = i / fps. A bib is visible in frame i when its whole white "
    "rectangle lies inside the frame (0 <= x0, x1 <= width, 0 <= y0, y1 <= height), computed "
    "from the same motion function that draws it; runners never overlap on screen, so a "
    "visible bib is never covered. A segment is a maximal run of consecutive visible frames: "
    "start_s is the time of its first visible frame, end_s the time of its last visible frame "
    "(start_frame/end_frame are the same as frame indices, inclusive). A caption is visible in "
    "frame i when it is drawn in that frame. Times are rounded to milliseconds."
)

FONT_CANDIDATES: dict[str, tuple[list[str], str]] = {
    # key: (known paths, fc-match pattern); Debian packages fonts-dejavu-core and fonts-nanum.
    "bold": (["/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"], "DejaVu Sans:bold"),
    "bib": (
        ["/usr/share/fonts/truetype/dejavu/DejaVuSansCondensed-Bold.ttf"],
        "DejaVu Sans Condensed:bold",
    ),
    "korean": (
        [
            "/usr/share/fonts/truetype/nanum/NanumGothicBold.ttf",
            "/usr/share/fonts/truetype/nanum/NanumSquareB.ttf",
        ],
        "NanumGothic:bold",
    ),
}


@dataclass(frozen=True)
class Pass:
    """One crossing of the frame by a runner (a runner may pass more than once)."""

    bib: str
    enter_s: float  # time at which the runner's leading edge reaches x = 0
    speed: float  # design pixels per second, left to right


# The schedule is fixed (not seeded) so the truth is stable; see the module docstring.
SCHEDULE: tuple[Pass, ...] = (
    Pass("1042", 0.5, 190.0),
    Pass("257", 3.0, 190.0),
    Pass("3318", 7.5, 170.0),
    Pass("6094", 11.5, 210.0),
    Pass("781", 19.6, 450.0),
    Pass("2465", 22.0, 200.0),
    Pass("3318", 25.5, 170.0),
    Pass("908", 28.5, 150.0),
)


@dataclass
class Config:
    """Output parameters chosen on the command line."""

    out_dir: Path
    duration: float = 38.0
    width: int = 1280
    height: int = 720
    fps: int = 25
    seed: int = 2026

    @property
    def n_frames(self) -> int:
        return int(round(self.duration * self.fps))


@dataclass
class Geometry:
    """Runner and scene sizes in output pixels, derived from the design space."""

    s: float  # vertical/size scale (height / 720)
    sx: float  # horizontal scale (width / 1280), used for speeds and background layout
    ground_y: float = field(init=False)
    half_w: float = field(init=False)  # half of a runner's horizontal extent
    bib_w: int = field(init=False)
    bib_h: int = field(init=False)
    bib_dy: float = field(init=False)  # bib top relative to ground_y (negative = above)

    def __post_init__(self) -> None:
        s = self.s
        self.ground_y = 702 * s
        self.half_w = 205 * s
        self.bib_w = int(round(250 * s))
        self.bib_h = int(round(104 * s))
        self.bib_dy = -396 * s


def find_font(key: str) -> str:
    """Return a font file path; fail loudly because a silent fallback would break OCR truth."""
    paths, pattern = FONT_CANDIDATES[key]
    for p in paths:
        if Path(p).is_file():
            return p
    if shutil.which("fc-match"):
        out = subprocess.run(
            ["fc-match", "-f", "%{file}", pattern], capture_output=True, text=True, check=False
        ).stdout.strip()
        if out and Path(out).is_file() and ("Nanum" in out or key != "korean"):
            return out
    raise SystemExit(f"font for {key!r} not found; install Debian packages fonts-dejavu-core fonts-nanum")


def bob(t: float, phase: float) -> float:
    """Vertical running bounce in output pixels (<= 0, i.e. upwards) at time t."""
    return -abs(math.sin(2.0 * math.pi * 0.7 * t + phase))


def runner_cx(p: Pass, t: float, g: Geometry) -> float:
    """Horizontal centre of a runner at time t: the single motion function for drawing and truth."""
    return -g.half_w + p.speed * g.sx * (t - p.enter_s)


def bib_rect(p: Pass, t: float, g: Geometry, phase: float) -> tuple[int, int, int, int]:
    """Integer bib rectangle (x0, y0, x1, y1), exclusive right/bottom, as drawn at time t."""
    cx = runner_cx(p, t, g)
    dy = 6.0 * g.s * bob(t, phase)
    x0 = int(round(cx - g.bib_w / 2))
    y0 = int(round(g.ground_y + g.bib_dy + dy))
    return x0, y0, x0 + g.bib_w, y0 + g.bib_h


def on_screen(p: Pass, t: float, g: Geometry, width: int) -> bool:
    """Whether any part of the runner can be inside the frame at time t."""
    cx = runner_cx(p, t, g)
    return cx + g.half_w > 0 and cx - g.half_w < width


def frame_segments(flags: list[bool], fps: int) -> list[dict[str, float | int]]:
    """Turn per-frame visibility flags into segments of consecutive visible frames."""
    segs: list[dict[str, float | int]] = []
    start: int | None = None
    for i, v in enumerate([*flags, False]):
        if v and start is None:
            start = i
        elif not v and start is not None:
            segs.append(
                {
                    "start_s": round(start / fps, 3),
                    "end_s": round((i - 1) / fps, 3),
                    "start_frame": start,
                    "end_frame": i - 1,
                }
            )
            start = None
    return segs


def stride_phases(seed: int) -> list[float]:
    """Per-pass stride phase; seeded, and it does not change the truth (bob is vertical only)."""
    rng = random.Random(seed * 7919 + 1)
    return [rng.uniform(0.0, 2.0 * math.pi) for _ in SCHEDULE]


def ko_visible(t: float) -> bool:
    """Whether the Korean banner is drawn at time t."""
    return KO_WINDOW_S[0] <= t < KO_WINDOW_S[1]


def check_no_overlap(cfg: Config, g: Geometry) -> None:
    """Refuse to generate a video where runners overlap, since a covered bib would falsify truth."""
    for i in range(cfg.n_frames):
        t = i / cfg.fps
        xs = sorted(runner_cx(p, t, g) for p in SCHEDULE if on_screen(p, t, g, cfg.width))
        for a, b in itertools.pairwise(xs):
            if b - a < 2 * g.half_w:
                raise SystemExit(f"runners overlap at t={t:.2f}s; schedule needs a wider frame")


def build_truth(cfg: Config) -> dict[str, object]:
    """Compute the ground truth from the motion functions, without rendering any pixels."""
    g = Geometry(cfg.height / DESIGN_H, cfg.width / DESIGN_W)
    check_no_overlap(cfg, g)
    phases = stride_phases(cfg.seed)
    times = [i / cfg.fps for i in range(cfg.n_frames)]
    bibs: dict[str, list[bool]] = {}
    for p, ph in zip(SCHEDULE, phases, strict=True):
        flags = bibs.setdefault(p.bib, [False] * cfg.n_frames)
        for i, t in enumerate(times):
            x0, y0, x1, y1 = bib_rect(p, t, g, ph)
            if x0 >= 0 and y0 >= 0 and x1 <= cfg.width and y1 <= cfg.height:
                flags[i] = True
    return {
        "video": "race.mp4",
        "width": cfg.width,
        "height": cfg.height,
        "fps": cfg.fps,
        "frame_count": cfg.n_frames,
        "duration_s": round(cfg.n_frames / cfg.fps, 3),
        "seed": cfg.seed,
        "definition": DEFINITION,
        "bibs": [
            {"text": text, "segments": frame_segments(flags, cfg.fps)}
            for text, flags in bibs.items()
            if any(flags)
        ],
        "captions": [
            {
                "text": EN_CAPTION,
                "lang": "en",
                "segments": frame_segments([True] * cfg.n_frames, cfg.fps),
            },
            {
                "text": KO_CAPTION,
                "lang": "ko",
                "segments": frame_segments([ko_visible(t) for t in times], cfg.fps),
            },
        ],
    }


# ----------------------------------------------------------------------------- drawing


def vertical_gradient(h: int, w: int, top: tuple[int, int, int], bottom: tuple[int, int, int]) -> np.ndarray:
    """A smooth gradient block; smooth areas keep the H.264 file small."""
    a = np.linspace(0.0, 1.0, max(h, 1), dtype=np.float32)[:, None, None]
    col = (1 - a) * np.array(top, np.float32) + a * np.array(bottom, np.float32)
    return np.broadcast_to(col, (h, w, 3)).astype(np.uint8)


def render_background(cfg: Config, g: Geometry, fonts: dict[str, str]) -> Image.Image:
    """Static scene (sky, skyline, trees, barrier, road, top banner), drawn once."""
    w, h, s, sx = cfg.width, cfg.height, g.s, g.sx
    rng = random.Random(cfg.seed)
    arr = np.zeros((h, w, 3), np.uint8)
    horizon = int(340 * s)
    road_top = int(430 * s)
    arr[:horizon] = vertical_gradient(horizon, w, (165, 205, 240), (225, 236, 248))
    arr[horizon:road_top] = vertical_gradient(road_top - horizon, w, (160, 200, 130), (140, 185, 115))
    arr[road_top:] = vertical_gradient(h - road_top, w, (196, 196, 192), (172, 172, 170))
    img = Image.fromarray(arr, "RGB")
    d = ImageDraw.Draw(img)

    # Skyline: seeded building heights and window grids.
    x = 0.0
    while x < w:
        bw = rng.uniform(70, 150) * sx
        bh = rng.uniform(90, 200) * s
        shade = rng.randint(120, 175)
        col = (shade, shade + rng.randint(-8, 8), shade + rng.randint(0, 18))
        d.rectangle([x, horizon - bh, x + bw - 3 * sx, horizon], fill=col)
        win = (min(shade + 45, 255),) * 3
        for wy in np.arange(horizon - bh + 12 * s, horizon - 20 * s, 26 * s):
            for wx in np.arange(x + 10 * sx, x + bw - 20 * sx, 24 * sx):
                d.rectangle([wx, wy, wx + 10 * sx, wy + 12 * s], fill=win)
        x += bw

    # Trees along the verge.
    for _ in range(7):
        tx = rng.uniform(0.03, 0.97) * w
        ty = rng.uniform(365, 395) * s
        r = rng.uniform(28, 42) * s
        d.rectangle([tx - 5 * s, ty - 10 * s, tx + 5 * s, ty + 28 * s], fill=(92, 64, 40))
        d.ellipse([tx - r, ty - 1.8 * r, tx + r, ty], fill=(52, 118 + rng.randint(-15, 15), 58))

    # Crowd barrier: alternating panels.
    by0, by1 = int(400 * s), int(430 * s)
    panel = 80 * sx
    for k in range(int(w / panel) + 1):
        col = (230, 90, 40) if k % 2 == 0 else (245, 245, 240)
        d.rectangle([k * panel, by0, (k + 1) * panel - 2 * sx, by1], fill=col)

    # Road markings: dashed centre line and a blue race line.
    for k in range(0, int(w / (120 * sx)) + 1):
        x0 = k * 120 * sx + 20 * sx
        d.rectangle([x0, 520 * s, x0 + 60 * sx, 528 * s], fill=(225, 225, 215))
    d.rectangle([0, 640 * s, w, 646 * s], fill=(60, 110, 200))
    d.rectangle([0, 713 * s, w, h], fill=(120, 120, 120))  # kerb

    # Top timing banner with the English caption (visible in every frame).
    bh = int(72 * s)
    d.rectangle([0, 0, w, bh], fill=(18, 32, 78))
    d.rectangle([0, bh, w, bh + int(6 * s)], fill=(245, 150, 30))
    f = ImageFont.truetype(fonts["bold"], int(round(44 * s)))
    tw = d.textlength(EN_CAPTION, font=f)
    d.text(((w - tw) / 2, bh / 2), EN_CAPTION, font=f, fill=(255, 255, 255), anchor="lm")
    for k, col in enumerate([(245, 150, 30), (240, 240, 240), (60, 170, 90)]):
        cx, cy, r = (40 + 34 * k) * s, bh / 2, 12 * s
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=col)
    return img


def render_ko_banner(fonts: dict[str, str], s: float) -> Image.Image:
    """The Korean banner as a separate image, pasted only during its window."""
    f = ImageFont.truetype(fonts["korean"], int(round(46 * s)))
    tmp = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    x0, y0, x1, y1 = tmp.textbbox((0, 0), KO_CAPTION, font=f)
    pad_x, pad_y = int(30 * s), int(12 * s)
    img = Image.new("RGB", (x1 - x0 + 2 * pad_x, y1 - y0 + 2 * pad_y), (200, 30, 45))
    d = ImageDraw.Draw(img)
    d.rectangle([0, 0, img.width - 1, img.height - 1], outline=(255, 215, 0), width=max(2, int(4 * s)))
    d.text((pad_x - x0, pad_y - y0), KO_CAPTION, font=f, fill=(255, 255, 255))
    return img


def render_bib(text: str, g: Geometry, font_path: str) -> Image.Image:
    """A bib: plain white card with big black digits (~52 px tall at 720p) and wide margins.

    No border or pin marks: dark marks next to the digits made Tesseract merge them into the word.
    """
    img = Image.new("RGB", (g.bib_w, g.bib_h), (252, 252, 250))
    d = ImageDraw.Draw(img)
    f = ImageFont.truetype(font_path, int(round(72 * g.s)))
    d.text((g.bib_w / 2, g.bib_h / 2 + 2 * g.s), text, font=f, fill=(0, 0, 0), anchor="mm")
    return img


@dataclass
class Look:
    """Seeded appearance of one pass."""

    shirt: tuple[int, int, int]
    shorts: tuple[int, int, int]
    skin: tuple[int, int, int]
    hair: tuple[int, int, int]
    phase: float


def looks(seed: int) -> list[Look]:
    """Seeded colours; the same runner keeps its look on a second pass (it is the same person)."""
    rng = random.Random(seed * 31 + 7)
    shirts = [
        (250, 175, 175),
        (170, 210, 250),
        (185, 235, 185),
        (255, 230, 140),
        (215, 195, 240),
        (255, 205, 155),
        (170, 235, 230),
        (215, 215, 220),
    ]
    rng.shuffle(shirts)
    phases = stride_phases(seed)
    by_bib: dict[str, Look] = {}
    out: list[Look] = []
    for k, p in enumerate(SCHEDULE):
        if p.bib not in by_bib:
            tone = rng.choice([(240, 200, 170), (205, 150, 110), (150, 100, 70), (225, 180, 140)])
            by_bib[p.bib] = Look(
                shirt=shirts[len(by_bib) % len(shirts)],
                shorts=rng.choice([(30, 30, 40), (20, 40, 90), (60, 60, 60)]),
                skin=tone,
                hair=rng.choice([(30, 25, 20), (90, 60, 30), (180, 150, 90)]),
                phase=0.0,
            )
        base = by_bib[p.bib]
        out.append(Look(base.shirt, base.shorts, base.skin, base.hair, phases[k]))
    return out


def draw_runner(
    d: ImageDraw.ImageDraw, img: Image.Image, p: Pass, look: Look, bib: Image.Image, t: float, g: Geometry
) -> None:
    """A simple frontal figure: arms behind the torso, swinging legs, bib pasted upright on the chest."""
    s = g.s
    cx = runner_cx(p, t, g)
    dy = 6.0 * s * bob(t, look.phase)
    gy = g.ground_y
    hip_y = gy - 210 * s + dy
    sh_y = hip_y - 215 * s
    swing = math.sin(2.0 * math.pi * 0.7 * t + look.phase)
    lw = int(max(2, 30 * s))

    d.ellipse([cx - 125 * s, gy - 8 * s, cx + 125 * s, gy + 10 * s], fill=(140, 140, 138))  # shadow

    # Arms (drawn first, hanging outside the torso): shoulder -> elbow -> hand, in counter-swing.
    for side, sw in ((-1, swing), (1, -swing)):
        shx = cx + side * 140 * s
        ex, ey = shx + side * 22 * s + sw * 12 * s, sh_y + 105 * s
        hx, hy = ex + side * 4 * s + sw * 14 * s, ey + 70 * s - abs(sw) * 40 * s
        d.line(
            [(shx, sh_y + 30 * s), (ex, ey), (hx, hy)], fill=look.skin, width=lw - int(6 * s), joint="curve"
        )

    # Legs: hip -> knee -> foot; the knee lifts with the stride.
    for side, sw in ((-1, swing), (1, -swing)):
        hx = cx + side * 45 * s
        lift = max(0.0, sw)
        kx, ky = hx + side * 8 * s + sw * 18 * s, hip_y + 105 * s - lift * 35 * s
        fx, fy = hx + side * 12 * s + sw * 26 * s, gy - 6 * s - lift * 30 * s
        d.line([(hx, hip_y), (kx, ky), (fx, fy)], fill=look.skin, width=lw + int(4 * s), joint="curve")
        d.ellipse([fx - 24 * s, fy - 10 * s, fx + 24 * s, fy + 8 * s], fill=(240, 240, 240))

    # Shorts, torso (a singlet) and short sleeves over the shoulders.
    d.rounded_rectangle(
        [cx - 115 * s, hip_y - 30 * s, cx + 115 * s, hip_y + 50 * s], 14 * s, fill=look.shorts
    )
    d.rounded_rectangle([cx - 142 * s, sh_y, cx + 142 * s, hip_y + 5 * s], 34 * s, fill=look.shirt)
    for side in (-1, 1):
        sx0 = cx + side * 142 * s
        d.ellipse([sx0 - 26 * s, sh_y + 2 * s, sx0 + 26 * s, sh_y + 60 * s], fill=look.shirt)

    # Neck and head.
    d.rectangle([cx - 16 * s, sh_y - 22 * s, cx + 16 * s, sh_y + 6 * s], fill=look.skin)
    hr = 42 * s
    hcy = sh_y - 22 * s - hr + 4 * s
    d.ellipse([cx - hr, hcy - hr, cx + hr, hcy + hr], fill=look.skin)
    d.chord([cx - hr, hcy - hr, cx + hr, hcy + hr], 180, 360, fill=look.hair)

    x0, y0, _, _ = bib_rect(p, t, g, look.phase)
    img.paste(bib, (x0, y0))


def frames(cfg: Config) -> Iterator[bytes]:
    """Yield raw rgb24 frames one at a time, so memory stays at one frame."""
    g = Geometry(cfg.height / DESIGN_H, cfg.width / DESIGN_W)
    fonts = {k: find_font(k) for k in FONT_CANDIDATES}
    bg = render_background(cfg, g, fonts)
    ko = render_ko_banner(fonts, g.s)
    ko_pos = ((cfg.width - ko.width) // 2, int(86 * g.s))
    bibs = {p.bib: render_bib(p.bib, g, fonts["bib"]) for p in SCHEDULE}
    lk = looks(cfg.seed)
    for i in range(cfg.n_frames):
        t = i / cfg.fps
        img = bg.copy()
        if ko_visible(t):
            img.paste(ko, ko_pos)
        d = ImageDraw.Draw(img)
        for p, look in zip(SCHEDULE, lk, strict=True):
            if on_screen(p, t, g, cfg.width):
                draw_runner(d, img, p, look, bibs[p.bib], t, g)
        yield img.tobytes()


def encode(cfg: Config, out_path: Path) -> None:
    """Pipe frames into ffmpeg/libx264; settings match the brief (small, seekable, 2 s GOP)."""
    cmd = [
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{cfg.width}x{cfg.height}",
        "-framerate", str(cfg.fps), "-i", "-",
        "-an", "-c:v", "libx264", "-preset", "veryfast", "-crf", "23",
        "-g", str(2 * cfg.fps), "-pix_fmt", "yuv420p", "-threads", "2",
        "-map_metadata", "-1", "-fflags", "+bitexact", "-flags:v", "+bitexact",
        "-movflags", "+faststart", str(out_path),
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdin is not None
    try:
        for buf in frames(cfg):
            proc.stdin.write(buf)
        proc.stdin.close()
    except BrokenPipeError:
        pass
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.wait() != 0:
        raise SystemExit(f"ffmpeg failed ({proc.returncode}): {err}")


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parent)
    ap.add_argument("--duration", type=float, default=38.0, help="seconds (default 38)")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--fps", type=int, default=25)
    ap.add_argument("--seed", type=int, default=2026, help="cosmetics only; truth does not depend on it")
    a = ap.parse_args(argv)
    if a.width % 2 or a.height % 2:
        ap.error("width and height must be even (yuv420p)")
    cfg = Config(a.out_dir, a.duration, a.width, a.height, a.fps, a.seed)
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    truth = build_truth(cfg)  # validates the schedule before spending time on encoding
    video = cfg.out_dir / "race.mp4"
    tmp_video = cfg.out_dir / "race.tmp.mp4"
    encode(cfg, tmp_video)
    tmp_video.replace(video)
    tpath = cfg.out_dir / "race.truth.json"
    tpath.write_text(json.dumps(truth, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(
        f"wrote {video} ({video.stat().st_size / 1e6:.2f} MB) and {tpath} in {time.monotonic() - t0:.1f}s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
