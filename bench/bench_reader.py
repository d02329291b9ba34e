#!/usr/bin/env python3
"""Reader quality, calibration and cost on the finish-line footage, in one run.

Why: the local reader is tuned by these numbers (seed 1 only; seed 2 is measured once, held
out), and CPU time only means something next to a floor measured on the same frames in the same
run (this machine's 2 cores are shared). For one frame per second of VIDEO it reports:

* frame recall of the bibs (right number read as a WORD at >= 80 %, in frames where the truth
  says the bib is visible), overall and by digit height and by blur;
* false reads >= 80 %: numeric WORDs on a bib card that are not that card's number;
* calibration: of the numeric WORDs >= 80 % that lie on a bib card, the share that are right
  (by confidence band too, so one can see whether the score means something);
* what skipping near-duplicate frames (``REKO_NEAR_DUPLICATE_BITS``) would cost in recall;
* CPU-s per frame (process time) of ``LocalTextAnalyser.detect_text`` next to the floor:
  decoding the frame and running the PP-OCR detector alone (the reader's own detector), on
  the same frames (and the same ``REKO_TEXT_DET_SIDE`` / ``REKO_TEXT_ROI``).

Frames are extracted once (ffmpeg, frames 0, fps, 2 fps, ...) into ``--frames`` and reused.

It also reports word recall on the real scene-text photos of include/sample/scene_text (tune
and report sets as its truth file splits them) and line accuracy (English, Korean) on
reko.localdev.render_frames frames of held-out seeds (100-129; the reader was tuned on 200-329).

    PYTHONPATH=plugins python bench/bench_reader.py /tmp/finish/finish-s1.mp4 /tmp/finish/finish-s2.mp4 \
        --frames /tmp/finish/frames-s1 /tmp/finish/frames-s2 --out /tmp/reader-run.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_finish_ocr import MIN_CONF, card_boxes, load_generator, overlaps, sample_frames


def _frames(video: Path, fps: int, cache: Path) -> list[tuple[int, bytes]]:
    """JPEG frames, extracted once into ``cache``."""
    files = sorted(cache.glob("f*.jpg"))
    if not files:
        cache.mkdir(parents=True, exist_ok=True)
        return sample_frames(video, fps, cache)
    return [(k * fps, f.read_bytes()) for k, f in enumerate(files)]


def _box(d: dict, w: int, h: int) -> list[float]:
    bb = d["Geometry"]["BoundingBox"]
    return [bb["Left"] * w, bb["Top"] * h, (bb["Left"] + bb["Width"]) * w, (bb["Top"] + bb["Height"]) * h]


def run(video: Path, truth_path: Path, cache: Path, floor: bool = True) -> dict[str, Any]:
    import cv2

    from reko.analysis.local_text import LocalTextAnalyser, _decode, _engine

    truth = json.loads(truth_path.read_text(encoding="utf-8"))
    w, h, fps, seed = truth["width"], truth["height"], truth["fps"], truth["seed"]
    gen = load_generator()
    visible: dict[int, dict[str, dict]] = defaultdict(dict)  # frame -> bib -> pass
    for p in truth["passes"]:
        for f in p["boxes"]:
            visible[int(f)][p["bib"]] = p
    frames = _frames(video, fps, cache)
    ocr = LocalTextAnalyser()
    ocr.detect_text(frames[0][1])  # load the models outside the timings
    engine = _engine(ocr.languages, ocr._tessdata, ocr.det_side)
    roi_l, roi_t, roi_r, roi_b = ocr.roi

    cpu_reader = cpu_floor = 0.0
    seen: dict[tuple, int] = defaultdict(int)  # (key, value) -> visible (bib, frame) pairs
    hit: dict[tuple, int] = defaultdict(int)
    per_bib: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    on_card: list[tuple[float, bool, str, str]] = []  # (confidence, right, read, bib)
    distractors: dict[str, int] = defaultdict(int)
    reads: dict[int, set[str]] = {}  # frame -> numbers read >= 80 %, for the near-duplicate replay
    for i, jpeg in frames:
        if floor:
            t = time.process_time()
            rgb = _decode(jpeg)
            fh, fw = rgb.shape[:2]
            region = rgb[round(roi_t * fh) : round(roi_b * fh), round(roi_l * fw) : round(roi_r * fw)]
            with engine.lock:  # the reader's own detector on the same region
                engine.detect_lines(cv2.cvtColor(region, cv2.COLOR_RGB2BGR), rgb.shape)
            cpu_floor += time.process_time() - t
        t = time.process_time()
        resp = ocr.detect_text(jpeg)
        cpu_reader += time.process_time() - t
        words = [
            d for d in resp["TextDetections"] if d["Type"] == "WORD" and d["DetectedText"].isdigit()
        ]  # fmt: skip
        vis = visible.get(i, {})
        good = {d["DetectedText"] for d in words if d["Confidence"] >= MIN_CONF}
        reads[i] = good
        for bib, p in vis.items():
            ok = bib in good
            per_bib[bib][0] += 1
            per_bib[bib][1] += ok
            for key in (("all", "all"), ("digit_px", p["digit_px"]), ("blur_px", p["blur_px"])):
                seen[key] += 1
                hit[key] += ok
        cards = card_boxes(gen, seed, i)
        for d in words:
            over = [b for b, bx in cards if overlaps(_box(d, w, h), bx)]
            if not over:
                if d["Confidence"] >= MIN_CONF:
                    distractors[d["DetectedText"]] += 1
                continue
            right = d["DetectedText"] in over
            on_card.append((d["Confidence"], right, d["DetectedText"], over[0]))

    n = len(frames)
    hi = [c for c in on_card if c[0] >= MIN_CONF]
    false = defaultdict(int)
    for _, right, text, bib in hi:
        if not right:
            false[f"{text} on {bib}"] += 1
    bands = {}
    for lo, up in ((0, 50), (50, 80), (80, 90), (90, 95), (95, 101)):
        sel = [c for c in on_card if lo <= c[0] < up]
        bands[f"{lo}-{min(up, 100)}"] = {"reads": len(sel), "right": sum(c[1] for c in sel)}
    hard = sorted({p["bib"] for p in truth["passes"] if p.get("hard")})

    def table(key: str) -> dict[str, Any]:
        vals = sorted(v for k, v in seen if k == key)
        return {str(v): {"visible": seen[(key, v)], "read": hit[(key, v)]} for v in vals}

    return {
        "near_duplicates": _replay_near_duplicates(frames, reads, visible),
        "video": video.name,
        "seed": seed,
        "frames": n,
        "model_version": ocr.model_version,
        "frame_recall": round(hit[("all", "all")] / max(seen[("all", "all")], 1), 3),
        "visible_pairs": seen[("all", "all")],
        "read_pairs": hit[("all", "all")],
        "hard_bibs": {b: per_bib[b] for b in hard},
        "by_digit_px": table("digit_px"),
        "by_blur_px": table("blur_px"),
        "false_reads_ge_80": dict(sorted(false.items())),
        "false_reads_ge_80_total": sum(false.values()),
        "calibration_ge_80": round(sum(c[1] for c in hi) / max(len(hi), 1), 3),
        "reads_on_cards_ge_80": len(hi),
        "calibration_bands": bands,
        "distractor_reads_ge_80": dict(sorted(distractors.items())),
        "cpu_s_per_frame": round(cpu_reader / n, 3),
        "floor_cpu_s_per_frame": round(cpu_floor / n, 3) if floor else None,
        "per_bib": dict(sorted(per_bib.items())),
    }


SCENE_TEXT = Path(__file__).resolve().parents[1] / "include" / "sample" / "scene_text"


def _fold(word: str) -> str:
    return word.casefold().replace("\u2019", "'").replace("\u2018", "'")


def scene_text(ocr) -> dict[str, Any]:
    """Word recall on the real photos of include/sample/scene_text (its split: tune / report).
    A truth word counts as read if a WORD of the same (case-folded) text is in the image, each
    read matching once; "at 80 %" counts only WORDs at >= 80 % confidence."""
    from collections import Counter

    truth = json.loads((SCENE_TEXT / "scene_text.json").read_text(encoding="utf-8"))
    out: dict[str, Any] = {}
    for split, names in truth["split"].items():
        words = hit = hit80 = 0
        missed: dict[str, list[str]] = {}
        for name in names:
            resp = ocr.detect_text((SCENE_TEXT / name).read_bytes())
            dets = [d for d in resp["TextDetections"] if d["Type"] == "WORD"]
            read = Counter(_fold(d["DetectedText"]) for d in dets)
            read80 = Counter(_fold(d["DetectedText"]) for d in dets if d["Confidence"] >= MIN_CONF)
            want = Counter(_fold(w) for line in truth["images"][name] for w in line.split())
            words += sum(want.values())
            hit += sum(min(n, read[w]) for w, n in want.items())
            hit80 += sum(min(n, read80[w]) for w, n in want.items())
            if want - read:
                missed[name] = sorted((want - read).elements())
        out[split] = {
            "images": len(names),
            "words": words,
            "read": hit,
            "word_recall": round(hit / max(words, 1), 3),
            "read_ge_80": hit80,
            "word_recall_ge_80": round(hit80 / max(words, 1), 3),
            "missed": missed,
        }
    return out


def rendered_lines(ocr, seeds: range) -> dict[str, Any]:
    """Line accuracy on reko.localdev.render_frames frames: a drawn line is right when the LINE
    overlapping it most reads exactly its text (spaces included), per language."""
    from reko.localdev import render_frames

    def iou(a, b) -> float:
        ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - ix * iy
        return ix * iy / union if union else 0.0

    w, h = render_frames.WIDTH, render_frames.HEIGHT
    out: dict[str, Any] = {}
    for seed in seeds:
        frame = render_frames.render_frame(seed)
        lines = [d for d in ocr.detect_text(frame.jpeg())["TextDetections"] if d["Type"] == "LINE"]
        for gt in frame.lines:
            best = max(lines, key=lambda d: iou(_box(d, w, h), gt.box), default=None)
            text = " ".join(best["DetectedText"].split()) if best else None
            row = out.setdefault(gt.lang, {"lines": 0, "right": 0, "right_ignoring_spaces": 0, "wrong": []})
            row["lines"] += 1
            row["right"] += text == gt.text
            squashed = text is not None and text.replace(" ", "") == gt.text.replace(" ", "")
            row["right_ignoring_spaces"] += squashed
            if text != gt.text:
                row["wrong"].append(f"{seed}: {gt.text} -> {text}")
    for row in out.values():
        row["accuracy"] = round(row["right"] / max(row["lines"], 1), 3)
    return {"seeds": f"{seeds.start}-{seeds.stop - 1}", **out}


def _replay_near_duplicates(
    frames: list[tuple[int, bytes]], reads: dict[int, set[str]], visible: dict[int, dict]
) -> dict[str, dict[str, Any]]:
    """What skipping near-duplicate frames (perceptual hash within N bits of the last analysed
    frame: the frame gets the previous frame's result) would cost in recall, per threshold."""
    from reko.pipeline import dhash_distance, frame_dhash

    hashes = [frame_dhash(jpeg) for _, jpeg in frames]
    dists = [dhash_distance(a, b) for a, b in zip(hashes, hashes[1:], strict=False)]
    out: dict[str, dict[str, Any]] = {"consecutive_distance_min": min(dists, default=0)}  # type: ignore[dict-item]
    for thr in (0, 2, 4, 8, 12, 16, 24):
        ref, skipped, seen, hit, result = None, 0, 0, 0, set()
        for (i, _), hsh in zip(frames, hashes, strict=True):
            if ref is not None and thr > 0 and dhash_distance(hsh, ref) <= thr:
                skipped += 1  # keeps the previous result
            else:
                ref, result = hsh, reads[i]
            for bib in visible.get(i, {}):
                seen += 1
                hit += bib in result
        out[str(thr)] = {"skipped": skipped, "frame_recall": round(hit / max(seen, 1), 3)}
    return out


def markdown(r: dict[str, Any]) -> str:
    nd = r["near_duplicates"]
    lines = [
        f"### {r['video']} (seed {r['seed']}, {r['frames']} frames, `{r['model_version']}`)",
        "",
        f"- frame recall: {r['read_pairs']}/{r['visible_pairs']} = **{r['frame_recall']}**; "
        f"hard bib(s): {', '.join(f'{b} {v[1]}/{v[0]}' for b, v in r['hard_bibs'].items())}",
        f"- false reads >= 80 %: {r['false_reads_ge_80_total']} "
        f"({', '.join(f'{k} x{v}' for k, v in r['false_reads_ge_80'].items()) or '-'})",
        f"- calibration (right share of numeric reads >= 80 % on bib cards): **{r['calibration_ge_80']}** "
        f"of {r['reads_on_cards_ge_80']}; by band: "
        + ", ".join(f"{k}: {v['right']}/{v['reads']}" for k, v in r["calibration_bands"].items()),
        f"- CPU-s per frame: **{r['cpu_s_per_frame']}** (floor, rapidocr detector alone: "
        f"{r['floor_cpu_s_per_frame']})",
        "- recall by digit height (px): "
        + ", ".join(f"{k}: {v['read']}/{v['visible']}" for k, v in r["by_digit_px"].items()),
        "- near-duplicate skip (dHash bits -> frames skipped, frame recall): "
        + ", ".join(f"{k}: {v['skipped']}, {v['frame_recall']}" for k, v in nd.items() if k.isdigit())
        + f" (closest consecutive frames: {nd['consecutive_distance_min']} bits)",
        "- recall by blur (px): "
        + ", ".join(f"{k}: {v['read']}/{v['visible']}" for k, v in r["by_blur_px"].items()),
        "",
    ]
    return "\n".join(lines)


def text_markdown(scene: dict[str, Any], rendered: dict[str, Any]) -> str:
    lines = ["### Real scene-text photos and rendered frames", ""]
    for split, r in scene.items():
        lines.append(
            f"- scene-text word recall, {split} set ({r['images']} photos): {r['read']}/{r['words']} = "
            f"**{r['word_recall']}** (at >= 80 %: {r['word_recall_ge_80']}); missed: "
            + (", ".join(f"{k}: {' '.join(v)}" for k, v in r["missed"].items()) or "-")
        )
    for lang in ("kor", "eng"):
        r = rendered.get(lang)
        if r:
            lines.append(
                f"- rendered frames (seeds {rendered['seeds']}), {lang} lines exactly right: "
                f"{r['right']}/{r['lines']} = **{r['accuracy']}** "
                f"(ignoring spaces: {r['right_ignoring_spaces']})"
            )
    return "\n".join(lines + [""])


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("videos", type=Path, nargs="+", help="finish videos (truth: <video>.truth.json)")
    ap.add_argument("--frames", type=Path, nargs="+", required=True, help="frame cache directory per video")
    ap.add_argument("--rendered-seeds", default="100-129", help="render_frames seeds for line accuracy")
    ap.add_argument("--out", type=Path, help="write JSON here (and .md next to it)")
    ap.add_argument("--no-floor", action="store_true")
    a = ap.parse_args(argv)
    if len(a.frames) != len(a.videos):
        ap.error("give one --frames directory per video")
    runs = {}
    for video, frames in zip(a.videos, a.frames, strict=True):
        truth = video.with_suffix("").with_suffix(".truth.json")
        runs[video.stem] = run(video, truth, frames, floor=not a.no_floor)
    from reko.analysis.local_text import LocalTextAnalyser

    ocr = LocalTextAnalyser()
    lo, hi = (int(v) for v in a.rendered_seeds.split("-"))
    result = {"runs": runs, "scene_text": scene_text(ocr), "rendered": rendered_lines(ocr, range(lo, hi + 1))}
    texts = text_markdown(result["scene_text"], result["rendered"])
    md = "\n".join([markdown(r) for r in runs.values()] + [texts])
    print(md)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        a.out.with_suffix(".md").write_text(md, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
