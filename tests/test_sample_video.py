"""The shipped sample video and its ground truth agree, and the generator is deterministic.

Other tests and demos score reko's detections against include/sample/race.truth.json, so a
truth file that drifted from the video would silently make them wrong.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "include" / "sample"
GENERATOR = SAMPLE_DIR / "make_sample.py"
VIDEO = SAMPLE_DIR / "race.mp4"
TRUTH = SAMPLE_DIR / "race.truth.json"

needs_ffprobe = pytest.mark.skipif(shutil.which("ffprobe") is None, reason="ffprobe not installed")


def load_generator() -> ModuleType:
    """Import make_sample.py by path (include/ is assets, not a package)."""
    spec = importlib.util.spec_from_file_location("reko_make_sample", GENERATOR)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(mod)
    return mod


def probe(path: Path) -> dict[str, Any]:
    """Duration, frame rate, size and frame count as ffprobe reads them."""
    out = subprocess.run(
        [
            "ffprobe", "-v", "error", "-select_streams", "v:0",
            "-show_entries", "format=duration:stream=width,height,r_frame_rate,nb_frames,codec_name,pix_fmt",
            "-of", "json", str(path),
        ],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    data = json.loads(out)
    st = data["streams"][0]
    return {
        "duration": float(data["format"]["duration"]),
        "fps": Fraction(st["r_frame_rate"]),
        "width": int(st["width"]),
        "height": int(st["height"]),
        "frames": int(st["nb_frames"]),
        "codec": st["codec_name"],
        "pix_fmt": st["pix_fmt"],
    }


def assert_truth_matches_video(truth: dict[str, Any], video: Path) -> None:
    info = probe(video)
    assert info["codec"] == "h264" and info["pix_fmt"] == "yuv420p"
    assert (info["width"], info["height"]) == (truth["width"], truth["height"])
    assert info["fps"] == truth["fps"]
    assert info["frames"] == truth["frame_count"]
    assert info["duration"] == pytest.approx(truth["duration_s"], abs=1.0 / truth["fps"])


@pytest.fixture(scope="module")
def truth() -> dict[str, Any]:
    return json.loads(TRUTH.read_text(encoding="utf-8"))


def all_segments(truth: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for item in truth["bibs"] + truth["captions"] for s in item["segments"]]


@needs_ffprobe
def test_shipped_video_matches_truth(truth: dict[str, Any]) -> None:
    assert truth["video"] == VIDEO.name
    assert VIDEO.stat().st_size <= 3_000_000
    assert_truth_matches_video(truth, VIDEO)


def test_segments_lie_within_video(truth: dict[str, Any]) -> None:
    fps, dur = truth["fps"], truth["duration_s"]
    assert truth["definition"]
    for item in truth["bibs"] + truth["captions"]:
        segs = item["segments"]
        assert segs, item["text"]
        for s in segs:
            assert 0 <= s["start_s"] < s["end_s"] <= dur, (item["text"], s)
            assert s["start_s"] == pytest.approx(s["start_frame"] / fps, abs=1e-3)
            assert s["end_s"] == pytest.approx(s["end_frame"] / fps, abs=1e-3)
            assert s["end_frame"] < truth["frame_count"]
        # Segments of one item are ordered and separated by at least one invisible frame.
        for a, b in itertools.pairwise(segs):
            assert a["end_frame"] + 1 < b["start_frame"], item["text"]


def test_bib_texts_are_unambiguous(truth: dict[str, Any]) -> None:
    texts = [b["text"] for b in truth["bibs"]]
    assert 5 <= len(texts) <= 7
    assert len(set(texts)) == len(texts)
    for t in texts:
        assert t.isdigit() and 3 <= len(t) <= 4, t
    for a in texts:
        for b in texts:
            assert a == b or a not in b, f"{a} is a substring of {b}"
        for cap in truth["captions"]:
            assert a not in cap["text"], f"bib {a} also occurs in caption {cap['text']}"


def test_truth_has_the_cases_tests_rely_on(truth: dict[str, Any]) -> None:
    bibs = truth["bibs"]
    assert any(len(b["segments"]) >= 2 for b in bibs), "a runner that appears twice"
    assert any(s["end_s"] - s["start_s"] <= 3.0 for b in bibs for s in b["segments"]), (
        "a runner visible for only a few seconds"
    )
    spans = [(s["start_s"], s["end_s"]) for b in bibs for s in b["segments"]]
    assert any(a0 < b1 and b0 < a1 for i, (a0, a1) in enumerate(spans) for b0, b1 in spans[i + 1 :]), (
        "runners overlapping in time"
    )
    langs = {c["lang"]: c for c in truth["captions"]}
    assert set(langs) == {"en", "ko"}
    assert langs["en"]["segments"][0]["start_s"] == 0.0
    ko = langs["ko"]["segments"]
    assert len(ko) == 1 and ko[0]["end_s"] - ko[0]["start_s"] < truth["duration_s"] / 2


def test_truth_recomputes_from_motion_functions(truth: dict[str, Any]) -> None:
    """The shipped truth equals what the generator computes now (cheap: no pixels, no encode)."""
    gen = load_generator()
    cfg = gen.Config(
        out_dir=SAMPLE_DIR,
        duration=truth["duration_s"],
        width=truth["width"],
        height=truth["height"],
        fps=truth["fps"],
        seed=truth["seed"],
    )
    assert gen.build_truth(cfg) == truth


@needs_ffprobe
def test_cli_small_video(tmp_path: Path) -> None:
    """A short low-resolution run exercises the whole CLI path quickly."""
    subprocess.run(
        [sys.executable, str(GENERATOR), "--out-dir", str(tmp_path), "--duration", "3",
         "--width", "640", "--height", "360", "--fps", "10"],
        check=True, capture_output=True,
    )  # fmt: skip
    small = json.loads((tmp_path / "race.truth.json").read_text(encoding="utf-8"))
    assert (small["width"], small["height"], small["fps"], small["frame_count"]) == (640, 360, 10, 30)
    assert_truth_matches_video(small, tmp_path / "race.mp4")


@pytest.mark.slow
@needs_ffprobe
def test_regeneration_is_deterministic(tmp_path: Path, truth: dict[str, Any]) -> None:
    """Re-running the generator with the shipped seed reproduces the truth (takes ~25 s: full encode)."""
    subprocess.run(
        [sys.executable, str(GENERATOR), "--out-dir", str(tmp_path), "--seed", str(truth["seed"])],
        check=True, capture_output=True,
    )  # fmt: skip
    assert (tmp_path / "race.truth.json").read_bytes() == TRUTH.read_bytes()
    assert_truth_matches_video(truth, tmp_path / "race.mp4")
