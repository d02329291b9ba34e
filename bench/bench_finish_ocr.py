#!/usr/bin/env python3
"""How well today's local OCR reads the generated finish-line footage, per bib.

Why: the footage is only useful for tuning if it is about as hard as real race video (the
issue measured frame recall 0.73 on comparable footage, the hardest bib 0/13). This samples
one frame per second (frame indices 0, 25, 50, ... so they match the truth exactly), runs
``LocalTextAnalyser.detect_text`` on each and scores WORD detections against the truth:
a frame counts for a bib when the bib is visible there; it is read when a WORD equal to the
bib has Confidence >= 80. Any other numeric WORD >= 80 is attributed, through the generator's
own geometry, to the bib card it overlaps in that frame (visible or not): equal to that bib,
it is a read in a frame the truth calls not visible (>= 30 % covered, or cut by the frame
edge); otherwise it is a false read of that bib. The rest are distractor reads (clock, sign,
banner, "2026" on every bib's sponsor band...).

    PYTHONPATH=plugins python bench/bench_finish_ocr.py /tmp/out/finish-s1.mp4 [truth.json]
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from types import ModuleType

MIN_CONF = 80.0
GENERATOR = Path(__file__).resolve().parents[1] / "include" / "sample" / "make_finish.py"


def load_generator() -> ModuleType:
    """make_finish.py by path (include/ is assets, not a package)."""
    spec = importlib.util.spec_from_file_location("reko_make_finish", GENERATOR)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def card_boxes(gen: ModuleType, seed: int, i: int) -> list[tuple[str, list[float]]]:
    """Every bib card on screen in frame i, visible or not, as (bib, axis-aligned box)."""
    out = []
    for p in gen.plan(seed).passes:
        t = i / gen.FPS
        if gen.on_screen(p, t):
            x, y = gen.origin(p, t)
            c = gen.make_card(p).corners + (x, y)
            out.append((p.bib, [c[:, 0].min(), c[:, 1].min(), c[:, 0].max(), c[:, 1].max()]))
    return out


def sample_frames(video: Path, fps: int, out: Path) -> list[tuple[int, bytes]]:
    """JPEG bytes of frames 0, fps, 2*fps, ... (one per second)."""
    subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(video), "-vf", f"select='not(mod(n\\,{fps}))'",
         "-fps_mode", "passthrough", "-q:v", "2", str(out / "f%04d.jpg")],
        check=True,
    )  # fmt: skip
    files = sorted(out.glob("f*.jpg"))
    return [(k * fps, f.read_bytes()) for k, f in enumerate(files)]


def overlaps(a: list[float], b: list[float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def main(argv: list[str]) -> int:
    video = Path(argv[0])
    truth_path = Path(argv[1]) if len(argv) > 1 else video.with_suffix("").with_suffix(".truth.json")
    truth = json.loads(truth_path.read_text(encoding="utf-8"))
    w, h, fps = truth["width"], truth["height"], truth["fps"]
    from reko.analysis.local_text import LocalTextAnalyser

    ocr = LocalTextAnalyser()
    visible: dict[int, dict[str, list[int]]] = defaultdict(dict)  # frame -> bib -> box
    for p in truth["passes"]:
        for f, box in p["boxes"].items():
            visible[int(f)][p["bib"]] = box
    gen = load_generator()
    seen = defaultdict(int)
    read = defaultdict(int)
    hidden_read = defaultdict(int)
    false = defaultdict(lambda: defaultdict(int))
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        frames = sample_frames(video, fps, Path(tmp))
        for i, jpeg in frames:
            words = [
                d for d in ocr.detect_text(jpeg)["TextDetections"]
                if d["Type"] == "WORD" and d["Confidence"] >= MIN_CONF and d["DetectedText"].isdigit()
            ]  # fmt: skip
            vis = visible.get(i, {})
            texts = {d["DetectedText"] for d in words}
            for bib in vis:
                seen[bib] += 1
                read[bib] += bib in texts
            for d in words:
                if d["DetectedText"] in vis:
                    continue
                bb = d["Geometry"]["BoundingBox"]
                box = [
                    bb["Left"] * w,
                    bb["Top"] * h,
                    (bb["Left"] + bb["Width"]) * w,
                    (bb["Top"] + bb["Height"]) * h,
                ]
                cards = [b for b, bx in card_boxes(gen, truth["seed"], i) if overlaps(box, bx)]
                if d["DetectedText"] in cards:
                    hidden_read[d["DetectedText"]] += 1
                else:
                    false[cards[0] if cards else "-"][d["DetectedText"]] += 1
    hard = {p["bib"] for p in truth["passes"] if p.get("hard")}
    print(f"{len(frames)} frames in {time.monotonic() - t0:.0f}s")
    cols = ["bib", "digit px", "blur px", "shade", "frames visible", "read >= 80 %", "false reads >= 80 %"]
    print("| " + " | ".join([*cols, "read when not visible"]) + " |")
    print("|---|---|---|---|---|---|---|---|")
    props = defaultdict(set)
    for p in truth["passes"]:
        props[p["bib"]].add((p["digit_px"], p["blur_px"], p["shade"]))
    for bib in sorted(seen, key=lambda b: read[b] / max(seen[b], 1)):
        dp = "/".join(str(x[0]) for x in sorted(props[bib]))
        bl = "/".join(str(x[1]) for x in sorted(props[bib]))
        sh = "/".join(str(x[2]) for x in sorted(props[bib]))
        fr = ", ".join(f'"{t}" x{n}' for t, n in sorted(false[bib].items())) or "-"
        mark = " (hard)" if bib in hard else ""
        print(f"| {bib}{mark} | {dp} | {bl} | {sh} | {seen[bib]} | {read[bib]} | {fr} | {hidden_read[bib]} |")
    other = ", ".join(f'"{t}" x{n}' for t, n in sorted(false["-"].items())) or "-"
    total_seen, total_read = sum(seen.values()), sum(read.values())
    print(f"\nframe recall {total_read}/{total_seen} = {total_read / max(total_seen, 1):.2f}")
    print(f"numeric reads >= 80 % on no bib card (distractors): {other}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
