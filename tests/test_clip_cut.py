"""The local clip cutter: frame-exact ranges, playable files, audio in sync, clear errors.

The test videos are made at test time: grey frames whose luma encodes the frame number N (top
half 20 + 4 x (N mod 50), bottom half 20 + 4 x (N div 50 mod 50), so N is read back exactly up to
2500 frames, with a step that survives lossy coding), a keyframe every GOP and a sine audio track.
Unlike test_media.py's 2-level step, a 4-level step per frame stays unambiguous after x264 at CRF 23.
"""

from __future__ import annotations

import json
import subprocess
from fractions import Fraction
from pathlib import Path

import pytest

from reko.clips import cut_clip, keyframe_times

_LUMA = r"if(lt(Y\,H/2)\,20+4*mod(N\,50)\,20+4*mod(floor(N/50)\,50))"


def make_counter_clip_source(path: Path, seconds: int = 20, rate: str = "25", gop: int = 50) -> Path:
    """640x360 H.264 (x264 defaults, so B-frames) + AAC sine; luma encodes the frame number."""
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"color=c=black:s=640x360:r={rate}:d={seconds}"]
        + ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:d={seconds}"]
        + ["-vf", f"geq=lum='{_LUMA}':cb=128:cr=128", "-c:v", "libx264", "-g", str(gop), "-sc_threshold", "0"]
        + ["-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(path)],
        check=True,
    )
    return path


def decoded_frames(path: Path) -> list[int]:
    """Source frame number of every decoded frame, read from a 2-pixel column (no scaling)."""
    result = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-vf", "crop=2:360:320:0", "-pix_fmt", "yuv420p"]
        + ["-f", "rawvideo", "-"],
        capture_output=True,
        check=True,
    )
    assert result.stderr == b"", result.stderr.decode()  # decodes without a single error
    data, size = result.stdout, 2 * 360 * 3 // 2

    def level(chunk: bytes) -> int:
        return round((sum(chunk) / len(chunk) - 20) / 4)

    return [
        level(data[i + 40 : i + 300]) + 50 * level(data[i + 420 : i + 680]) for i in range(0, len(data), size)
    ]


def streams(path: Path) -> dict[str, float]:
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-of", "json", "-show_entries", "stream=codec_type,duration"]
        + ["-show_entries", "format=duration", str(path)],
        capture_output=True,
        check=True,
    )
    meta = json.loads(result.stdout)
    found = {s["codec_type"]: float(s["duration"]) for s in meta["streams"]}
    found["format"] = float(meta["format"]["duration"])
    return found


@pytest.fixture(scope="module")
def source_25(tmp_path_factory) -> Path:
    return make_counter_clip_source(tmp_path_factory.mktemp("clips") / "counter25.mp4")


@pytest.fixture(scope="module")
def source_2997(tmp_path_factory) -> Path:
    return make_counter_clip_source(
        tmp_path_factory.mktemp("clips") / "counter2997.mp4", 12, "30000/1001", 60
    )


def expected_frames(fps: Fraction, start_ms: int, end_ms: int, total: int) -> range:
    """Source frames shown in [start, end): the first at/after start to the last before end."""
    first = -(-start_ms * fps // 1000)
    stop = min(-(-end_ms * fps // 1000), total)
    return range(int(first), int(stop))


def test_keyframes_are_every_gop(source_25):
    assert keyframe_times(source_25) == pytest.approx([2.0 * i for i in range(10)])


@pytest.mark.parametrize(
    ("start_ms", "end_ms"),
    [
        (4000, 8000),  # both on keyframes: nothing re-encoded
        (3000, 7500),  # starts and ends mid-GOP
        (2960, 9040),  # a frame before / after keyframes
        (5010, 5600),  # inside one GOP, start between frames
        (15500, 20000),  # to the very end
        (17000, 99000),  # end clamped to the duration
        (0, 1000),  # the first second
    ],
)
@pytest.mark.parametrize("method", ["smart", "reencode"])
def test_clip_holds_exactly_the_requested_frames(tmp_path, source_25, start_ms, end_ms, method):
    out = tmp_path / "clips" / "clip.mp4"
    result = cut_clip(source_25, start_ms, end_ms, out, method=method)
    assert result.method == method and result.path == out and out.exists()
    assert [p.name for p in out.parent.iterdir()] == ["clip.mp4"]  # no temp files left behind
    want = expected_frames(Fraction(25), start_ms, end_ms, 500)
    got = decoded_frames(out)
    assert got == list(want)
    frame = 0.04
    assert result.start_ms == pytest.approx(start_ms, abs=frame * 1000)
    assert result.end_ms == pytest.approx(min(end_ms, 20000), abs=frame * 1000)
    found = streams(out)
    assert set(found) == {"video", "audio", "format"}
    assert found["video"] == pytest.approx(len(want) * frame, abs=0.001)
    assert found["video"] == pytest.approx((min(end_ms, 20000) - start_ms) / 1000, abs=frame)
    assert found["audio"] == pytest.approx(found["video"], abs=0.05)
    assert result.duration_s == pytest.approx(found["format"]) and result.size_bytes == out.stat().st_size


def test_copy_baseline_is_fast_but_starts_at_a_keyframe(tmp_path, source_25):
    result = cut_clip(source_25, 3000, 7500, tmp_path / "copy.mp4", method="copy")
    assert result.method == "copy"
    assert streams(result.path)["video"] > 4.5  # carries the frames from the keyframe at 2 s


def test_29_97_fps(tmp_path, source_2997):
    fps = Fraction(30000, 1001)
    total = len(decoded_frames(source_2997))  # lavfi rounds 12 s up to whole frames
    assert keyframe_times(source_2997)[:3] == pytest.approx([0, 2.002, 4.004], abs=1e-6)
    for start_ms, end_ms in [(1001, 5005), (2500, 7777), (9000, 12000)]:
        result = cut_clip(source_2997, start_ms, end_ms, tmp_path / f"c{start_ms}.mp4")
        assert result.method == "smart"
        want = expected_frames(fps, start_ms, end_ms, total)
        assert decoded_frames(result.path) == list(want), (start_ms, end_ms)
        found = streams(result.path)
        assert found["video"] == pytest.approx(float(len(want) / fps), abs=0.002)
        assert found["audio"] == pytest.approx(found["video"], abs=0.05)


@pytest.mark.parametrize(
    ("start_ms", "end_ms", "match"),
    [
        (5000, 5000, "start_ms=5000, end_ms=5000"),
        (6000, 5000, "start_ms=6000, end_ms=5000"),
        (-1, 5000, "start_ms=-1"),
        (20000, 21000, "clip start 20000 ms is beyond the end"),
        (25000, 30000, "clip start 25000 ms is beyond the end"),
        (5010, 5030, "holds no frame"),
    ],
)
def test_bad_ranges_are_refused_by_value(tmp_path, source_25, start_ms, end_ms, match):
    out = tmp_path / "bad.mp4"
    with pytest.raises(ValueError, match=match):
        cut_clip(source_25, start_ms, end_ms, out)
    assert not out.exists()


def test_unknown_method_and_missing_source(tmp_path, source_25):
    with pytest.raises(ValueError, match="unknown cut method 'fast'"):
        cut_clip(source_25, 0, 1000, tmp_path / "x.mp4", method="fast")
    with pytest.raises(FileNotFoundError, match="nope.mp4"):
        cut_clip(tmp_path / "nope.mp4", 0, 1000, tmp_path / "x.mp4")


def test_failed_cut_leaves_the_old_clip_intact(tmp_path, source_25):
    out = tmp_path / "clip.mp4"
    out.write_bytes(b"previous clip")
    with pytest.raises(ValueError, match="start_ms=9000, end_ms=8000"):
        cut_clip(source_25, 9000, 8000, out)
    assert out.read_bytes() == b"previous clip"
    cut_clip(source_25, 8000, 9000, out)
    assert len(decoded_frames(out)) == 25
