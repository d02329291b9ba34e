"""Frame capture follows MediaConvert's naming and timing rules; bad inputs fail with clear errors."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from PIL import Image, ImageStat

from reko.media import (
    InvalidVideoError,
    capture_rate,
    expected_frame_count,
    extract_frames,
    frame_name,
    frame_timestamp_ms,
    parse_frame_name,
    probe,
)


def make_counter_video(path: Path, seconds: float = 6, fps: int = 25) -> Path:
    """A flat grey video whose brightness encodes the frame number: Y = 20 + (2 x N) mod 200."""
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"color=c=black:s=160x120:r={fps}:d={seconds}"]
        + ["-vf", "geq=lum='20+mod(2*N,200)':cb=128:cr=128", "-c:v", "libx264", "-qp", "0"]
        + ["-pix_fmt", "yuv420p", "-g", "50", str(path)],
        check=True,
    )
    return path


def source_frame_of(jpeg: Path) -> int:
    """The source frame number modulo 100 (JPEGs are full range: map back to video range first)."""
    full = ImageStat.Stat(Image.open(jpeg).convert("L")).mean[0]
    return round((full * 219 / 255 + 16 - 20) / 2) % 100


def test_names_and_timestamps_match_mediaconvert():
    assert frame_name("race", 0) == "race.0000000.jpg"
    assert frame_name("race", 1234567) == "race.1234567.jpg"
    assert parse_frame_name("race.0000042.jpg") == ("race", 42)
    assert parse_frame_name("race.42.jpg") is None
    assert capture_rate(1.0) == 1 and capture_rate(0.5) == 2
    rate = capture_rate(1.5)
    assert (rate.numerator, rate.denominator) == (2, 3)
    assert [frame_timestamp_ms(i, 1.5) for i in range(4)] == [0, 1500, 3000, 4500]
    assert frame_timestamp_ms(7, 0.2) == 1400
    assert expected_frame_count(30.0, 1.0) == 30
    assert expected_frame_count(30.04, 1.0) == 31
    with pytest.raises(ValueError, match="frame_interval_s"):
        capture_rate(0)


@pytest.mark.parametrize(("interval", "fps"), [(1.0, 25), (0.5, 25), (2.0, 30)])
def test_capture_i_is_the_first_frame_at_or_after_i_times_interval(tmp_path, interval, fps):
    video = make_counter_video(tmp_path / "counter.mp4", seconds=6, fps=fps)
    count = extract_frames(video, tmp_path / "frames", "counter", interval)
    assert count == expected_frame_count(6, interval)
    names = sorted(p.name for p in (tmp_path / "frames").iterdir())
    assert names == [frame_name("counter", i) for i in range(count)]
    for i in range(count):
        # first source frame N with N / fps >= i x interval
        expected_source = -(-round(i * interval * 1000) * fps // 1000)
        assert source_frame_of(tmp_path / "frames" / names[i]) == expected_source % 100, names[i]


def test_probe_reads_a_video(tmp_path):
    info = probe(make_counter_video(tmp_path / "v.mp4", seconds=3), "file:///v.mp4")
    assert (info.width, info.height, info.fps) == (160, 120, 25)
    assert info.duration_s == pytest.approx(3.0, abs=0.05)
    assert info.codec == "h264" and info.size_bytes > 0


def test_probe_rejects_bad_inputs_by_name(tmp_path):
    with pytest.raises(InvalidVideoError, match="video not found: uri-missing"):
        probe(tmp_path / "nope.mp4", "uri-missing")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(InvalidVideoError, match=r"empty \(0 bytes\): uri-empty"):
        probe(empty, "uri-empty")
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 100)
    with pytest.raises(InvalidVideoError, match="not a readable video: uri-text"):
        probe(text, "uri-text")
    image = tmp_path / "still.jpg"
    Image.new("RGB", (200, 100), "red").save(image)
    with pytest.raises(InvalidVideoError, match="no video stream in uri-still"):
        probe(image, "uri-still")


def test_probe_rejects_truncated_videos(tmp_path):
    video = make_counter_video(tmp_path / "full.mp4", seconds=6)
    data = video.read_bytes()
    # index at the end (no faststart): cut before the index
    head = tmp_path / "head.mp4"
    head.write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidVideoError, match="uri-head"):
        probe(head, "uri-head")
    # index up front (faststart): ffprobe still reads the header, the tail no longer decodes
    fast = tmp_path / "fast.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-i", str(video), "-c", "copy", "-movflags", "+faststart", str(fast)],
        check=True,
    )
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(fast.read_bytes()[: int(fast.stat().st_size * 0.5)])
    with pytest.raises(InvalidVideoError, match="truncated or damaged: uri-cut"):
        probe(cut, "uri-cut")
