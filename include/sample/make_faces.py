#!/usr/bin/env python3
"""Seeded generator of short videos of real faces moving and changing scale, with exact truth.

Why: search by photo needs footage in which the right answer is known per frame, made from real
photos of people (not drawings), where the query photo is a *different* photo of the person than
any shown in the video. The photos are head crops in ``include/sample/faces/`` taken from photos
that ship inside packages (``photos.json`` names each source package, file and licence).

Per seed: the target person is ``obama`` (three different photos). One of the three is the query
photo (seed 1: ``obama-2``, seed 2: ``obama-3``, seed 3: ``obama-1``, ...) and the other two appear
in the video; the 8 photos of 8 other people are the distractors. Five lanes (cells of a 2x3 grid
of 640x240 px, one cell left empty by the seed) each show a sequence of appearances of 2-5 s: a
photo that glides across its cell, grows or shrinks (face height 75-150 px: the smallest are
under what the HOG detector finds at its default scale), tilts a little (+-6 degrees), is lit
darker or brighter (x0.65-1.2) and, for half of them, softened (Gaussian blur 1-2 px); lanes
never overlap, so no face covers another. The background moves slowly, with sensor noise.
So 0-5 faces are on screen at a time.

Truth is computed by the same functions that draw: for capture ``i`` at ``i * interval_s`` (the
frame ffmpeg's and MediaConvert's frame capture take), every face on screen with its person, photo
and box (ratios of the frame: the rotated face box of ``photos.json``, axis-aligned).

    python include/sample/make_faces.py --seed 1 --out-dir /tmp/faces   # ~5 s of CPU
"""

from __future__ import annotations

import argparse
import json
import math
import random
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

PHOTO_DIR = Path(__file__).resolve().parent / "faces"
WIDTH, HEIGHT, FPS = 1280, 720, 25
CELL_W, CELL_H = 640, 240
TARGET = "obama"
TARGET_PHOTOS = ("obama-2", "obama-3", "obama-1")  # the query photo rotates with the seed
FACE_PX = (75, 150)  # face heights: HOG at its default scale finds faces from ~80 px
CRF = 23
DEFINITION = (
    "A face is in the truth of capture i (at i * interval_s) when its sprite is on screen at that"
    " time; its box is the photo's face box (photos.json, found by dlib's HOG detector in the crop)"
    " after the sprite's scale, rotation and position, axis-aligned, as ratios of the 1280x720 frame."
    " Lanes never overlap, so no face is covered."
)


@cache
def photos() -> dict[str, dict]:
    return json.loads((PHOTO_DIR / "photos.json").read_text())


@dataclass(frozen=True)
class Appearance:
    """One photo crossing one lane: every position is a closed-form function of time."""

    photo: str
    cell: tuple[int, int]  # (column, row)
    start_s: float
    end_s: float
    face0: float  # face height (px) at start and end
    face1: float
    x0: float  # sprite centre at start and end, relative to the cell (0-1)
    y0: float
    x1: float
    y1: float
    angle0: float
    angle1: float
    brightness: float = 1.0  # lighting of the photo (x its pixel values)
    blur: float = 0.0  # Gaussian blur radius (px) before scaling: focus and motion softness

    def at(self, t: float) -> tuple[float, float, float, float]:
        """(centre x, centre y, scale, angle) at time t, in frame px."""
        u = (t - self.start_s) / (self.end_s - self.start_s)
        face_h = self.face0 + (self.face1 - self.face0) * u
        box = photos()[self.photo]["face_box"]
        scale = face_h / (box[3] - box[1])
        size = photos()[self.photo]["size"]
        w, h = size[0] * scale, size[1] * scale
        col, row = self.cell
        fx = self.x0 + (self.x1 - self.x0) * u
        fy = self.y0 + (self.y1 - self.y0) * u
        cx = col * CELL_W + w / 2 + fx * (CELL_W - w)
        cy = row * CELL_H + h / 2 + fy * (CELL_H - h)
        return cx, cy, scale, self.angle0 + (self.angle1 - self.angle0) * u


def plan(seed: int, duration_s: float) -> tuple[str, list[str], list[Appearance]]:
    """(query photo, the target's photos in the video, appearances) for a seed."""
    rng = random.Random(seed)
    query = TARGET_PHOTOS[(seed - 1) % len(TARGET_PHOTOS)]
    shown = [p for p in TARGET_PHOTOS if p != query]
    others = sorted(p for p, meta in photos().items() if meta["person"] != TARGET)
    cells = [(c, r) for r in range(3) for c in range(2)]
    cells.remove(rng.choice(cells))
    appearances = []
    for cell in cells:
        t = rng.uniform(0.0, 1.0)
        while t < duration_s - 1.0:
            length = rng.uniform(2.0, 5.0)
            photo = rng.choice(shown) if rng.random() < 0.4 else rng.choice(others)
            appearances.append(
                Appearance(
                    photo=photo,
                    cell=cell,
                    start_s=round(t, 3),
                    end_s=round(min(duration_s, t + length), 3),
                    face0=rng.uniform(*FACE_PX),
                    face1=rng.uniform(*FACE_PX),
                    x0=rng.random(),
                    y0=rng.random(),
                    x1=rng.random(),
                    y1=rng.random(),
                    angle0=rng.uniform(-6, 6),
                    angle1=rng.uniform(-6, 6),
                    brightness=rng.uniform(0.65, 1.2),
                    blur=rng.choice((0.0, 0.0, 1.0, 2.0)),
                )
            )
            t += length + rng.uniform(0.2, 1.2)
    return query, shown, appearances


def _rotated_box(a: Appearance, t: float) -> tuple[float, float, float, float]:
    """The face box (frame px) of appearance `a` at time `t`."""
    cx, cy, scale, angle = a.at(t)
    meta = photos()[a.photo]
    w, h = meta["size"][0] * scale, meta["size"][1] * scale
    x0, y0, x1, y1 = (v * scale for v in meta["face_box"])
    rad = math.radians(-angle)  # PIL rotates counter-clockwise for positive angles (y down)
    pts = []
    for px, py in ((x0, y0), (x1, y0), (x1, y1), (x0, y1)):
        dx, dy = px - w / 2, py - h / 2
        pts.append(
            (cx + dx * math.cos(rad) - dy * math.sin(rad), cy + dx * math.sin(rad) + dy * math.cos(rad))
        )
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    return min(xs), min(ys), max(xs), max(ys)


def on_screen(appearances: list[Appearance], t: float) -> list[Appearance]:
    return [a for a in appearances if a.start_s <= t < a.end_s]


def build_truth(seed: int, duration_s: float = 10.0, interval_s: float = 0.4) -> dict:
    """The truth of a seed, from the same functions that draw (no pixels needed)."""
    query, shown, appearances = plan(seed, duration_s)
    frames = []
    for i in range(int(duration_s / interval_s + 1e-9)):
        t = i * interval_s
        faces = []
        for a in on_screen(appearances, t):
            left, top, right, bottom = _rotated_box(a, t)
            faces.append(
                {
                    "person": photos()[a.photo]["person"],
                    "photo": a.photo,
                    "box": [
                        round(left / WIDTH, 5),
                        round(top / HEIGHT, 5),
                        round(right / WIDTH, 5),
                        round(bottom / HEIGHT, 5),
                    ],
                    "face_px": round(bottom - top, 1),
                }
            )
        frames.append({"index": i, "t_ms": round(t * 1000), "faces": faces})
    return {
        "seed": seed,
        "size": [WIDTH, HEIGHT],
        "fps": FPS,
        "duration_s": duration_s,
        "interval_s": interval_s,
        "target_person": TARGET,
        "query_photo": query,
        "target_photos_in_video": shown,
        "appearances": [a.__dict__ | {"cell": list(a.cell)} for a in appearances],
        "frames": frames,
        "definition": DEFINITION,
        "sources": {name: meta["source"] for name, meta in sorted(photos().items())},
    }


@cache
def _sprite(photo: str, brightness: float = 1.0, blur: float = 0.0) -> Image.Image:
    """The head crop, lit and softened, with a feathered elliptical alpha (no hard rectangle edges)."""
    img = Image.open(PHOTO_DIR / f"{photo}.jpg").convert("RGB")
    if brightness != 1.0:
        img = Image.eval(img, lambda v: min(255, round(v * brightness)))
    if blur:
        img = img.filter(ImageFilter.GaussianBlur(blur))
    mask = Image.new("L", img.size, 0)
    inset = 0.04 * min(img.size)
    ImageDraw.Draw(mask).ellipse((inset, inset, img.width - inset, img.height - inset), fill=255)
    img.putalpha(mask.filter(ImageFilter.GaussianBlur(0.05 * min(img.size))))
    return img


def _background(seed: int) -> np.ndarray:
    """A colour gradient under grey blobs, 80 px larger than the frame each way: each frame shows a
    drifting crop of it (so frames differ), and costs a slice, not a redraw."""
    rng = np.random.default_rng(seed)
    h, w = HEIGHT + 80, WIDTH + 80
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([90 + 40 * xx / w, 100 + 30 * yy / h, 120 - 20 * xx / w], axis=2)
    blobs = rng.normal(0, 1, (h // 40 + 2, w // 40 + 2)).astype(np.float32)
    grey = Image.fromarray(((blobs - blobs.min()) / np.ptp(blobs) * 255).astype(np.uint8))
    layer = np.asarray(grey.resize((w, h), Image.Resampling.BICUBIC), dtype=np.float32)
    return np.clip(base * 0.8 + layer[..., None] * 0.2, 0, 255).astype(np.uint8)


def render(seed: int, out: Path, duration_s: float = 10.0) -> Path:
    """Encode the seed's video (libx264 CRF 23, yuv420p, 25 fps, no audio) to `out`."""
    _, _, appearances = plan(seed, duration_s)
    rng = np.random.default_rng(seed)
    background = _background(seed)
    noise = [rng.normal(0, 3, (HEIGHT, WIDTH, 1)).astype(np.int16) for _ in range(5)]  # sensor noise
    cmd = [
        "ffmpeg", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
        "-s", f"{WIDTH}x{HEIGHT}", "-r", str(FPS), "-i", "-",
        "-c:v", "libx264", "-preset", "veryfast", "-crf", str(CRF), "-pix_fmt", "yuv420p",
        "-g", str(2 * FPS), "-movflags", "+faststart", "-an", str(out),
    ]  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE)
    assert proc.stdin is not None
    for n in range(round(duration_s * FPS)):
        t = n / FPS
        dx, dy = int(40 + 30 * math.sin(t / 3)), int(40 + 30 * math.cos(t / 4))
        frame = Image.fromarray(background[dy : dy + HEIGHT, dx : dx + WIDTH])
        for a in on_screen(appearances, t):
            cx, cy, scale, angle = a.at(t)
            sprite = _sprite(a.photo, a.brightness, a.blur)
            size = (round(sprite.width * scale), round(sprite.height * scale))
            sprite = sprite.resize(size, Image.Resampling.BICUBIC).rotate(angle, Image.Resampling.BICUBIC)
            frame.paste(sprite, (round(cx - sprite.width / 2), round(cy - sprite.height / 2)), sprite)
        noisy = np.asarray(frame, dtype=np.int16) + noise[n % len(noise)]
        proc.stdin.write(np.clip(noisy, 0, 255).astype(np.uint8).tobytes())
    proc.stdin.close()
    if proc.wait() != 0:
        raise RuntimeError(f"ffmpeg failed encoding {out}")
    return out


def make(seed: int, out_dir: Path, duration_s: float = 10.0, interval_s: float = 0.4) -> tuple[Path, Path]:
    """Write `faces-s{seed}.mp4` and `faces-s{seed}.truth.json`; the query photo is not in the video."""
    out_dir.mkdir(parents=True, exist_ok=True)
    video = render(seed, out_dir / f"faces-s{seed}.mp4", duration_s)
    truth_path = out_dir / f"faces-s{seed}.truth.json"
    truth_path.write_text(json.dumps(build_truth(seed, duration_s, interval_s), indent=1) + "\n")
    return video, truth_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out-dir", type=Path, default=Path("."))
    parser.add_argument("--duration-s", type=float, default=10.0)
    parser.add_argument("--interval-s", type=float, default=0.4)
    parser.add_argument("--truth-only", action="store_true")
    args = parser.parse_args(argv)
    if args.truth_only:
        args.out_dir.mkdir(parents=True, exist_ok=True)
        path = args.out_dir / f"faces-s{args.seed}.truth.json"
        path.write_text(json.dumps(build_truth(args.seed, args.duration_s, args.interval_s), indent=1) + "\n")
        print(path)
        return 0
    for path in make(args.seed, args.out_dir, args.duration_s, args.interval_s):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
