"""Frame-accurate, fast clip cutting with ffmpeg (the local backend of the `video_clips` DAG).

Stream copy is fast but can only start on a keyframe; a full re-encode is exact but slow. The
"smart" cut re-encodes only what copy cannot do exactly and copies the rest:

* head: from the first requested frame up to the first keyframe at/after it (re-encoded);
* middle: from that keyframe to the last "clean" boundary at/before the requested end (copied);
* end: the few frames between that boundary and the requested end (re-encoded).

The end needs re-encoding too because a copy cut is a decode-order prefix: with B-frames the
reference frame that follows the end in display order is decoded before the last B-frames, so a
plain copy cut ends up to a mini-GOP late (or early). A boundary is clean where every packet
before it in decode order is displayed before every packet after it.

The pieces are joined with the concat demuxer (which turns each H.264 piece into Annex B, so the
re-encoded pieces carry their own SPS/PPS in-band) and audio is re-encoded once for the exact
range of the video frames, so it stays in sync whatever the pieces are.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from bisect import bisect_left
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

METHODS = ("copy", "smart", "reencode")
# Requested milliseconds are rounded; a frame this close before the requested time still counts.
_TOLERANCE_S = Fraction(1, 2000)
# x264 for the full re-encode baseline: ffmpeg's defaults (preset medium), a little higher quality.
_X264 = ["-c:v", "libx264", "-preset", "medium", "-crf", "18"]
# x264 for the smart cut's pieces (at most about a GOP each): faster preset, lower CRF to compensate.
_X264_PIECES = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "16"]
# x264 settings giving a given decoder delay (frames of B-frame reordering), so that the DTS of
# re-encoded pieces line up with the copied middle's when concatenated.
_X264_FOR_DELAY = {
    0: ["-bf", "0"],
    1: ["-bf", "1", "-x264-params", "b-pyramid=none"],
    2: ["-bf", "3", "-x264-params", "b-pyramid=normal"],
}
_AUDIO = ["-c:a", "aac", "-b:a", "160k"]


class ClipError(RuntimeError):
    """ffmpeg failed to cut a clip; the message names the source and ffmpeg's last error line."""


@dataclass(frozen=True)
class CutResult:
    """A written clip: the frames it holds, as zero-based milliseconds of the source."""

    path: Path
    start_ms: int
    end_ms: int
    duration_s: float
    size_bytes: int
    method: str  # "copy", "smart", "reencode"


@dataclass(frozen=True)
class _Packet:
    pts: int
    dts: int
    key: bool


@dataclass(frozen=True)
class _Source:
    """What cutting needs to know about the source's first video stream, in its own ticks."""

    path: Path
    time_base: Fraction
    fps: Fraction
    packets: list[_Packet]  # decode order
    frames: list[int]  # pts, display order
    first_pts: int
    end_pts: int  # pts just after the last frame
    format_start_s: Fraction
    pix_fmt: str
    profile: str | None
    level: int | None
    has_audio: bool

    def seconds(self, pts: int) -> Fraction:
        """Zero-based time of `pts` (the first frame is at 0, as in frame capture)."""
        return (pts - self.first_pts) * self.time_base

    def seek_s(self, pts: int) -> float:
        """`-ss` value for `pts`: ffmpeg's input seek is relative to the container's start time."""
        return float(pts * self.time_base - self.format_start_s)

    @property
    def duration_s(self) -> Fraction:
        return self.seconds(self.end_pts)


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, check=False, stdin=subprocess.DEVNULL)


def _last_line(stderr: bytes) -> str:
    lines = [line for line in stderr.decode(errors="replace").splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no error output"


def _ffmpeg(cmd: list[str], source: Path, step: str) -> None:
    result = _run(["ffmpeg", "-v", "error", "-nostdin", "-y", *cmd])
    if result.returncode != 0:
        raise ClipError(f"clip {step} failed for {source.name}: {_last_line(result.stderr)}")


def _probe(source: Path) -> _Source:
    from reko.media import ffprobe

    if shutil.which("ffprobe") is None or shutil.which("ffmpeg") is None:
        raise RuntimeError("ffmpeg is not installed (apt-get install ffmpeg)")
    if not source.exists():
        raise FileNotFoundError(f"source video not found: {source}")
    # reko's one ffprobe wrapper; -select_streams v:0 (for the packets) also hides the audio
    # stream, so audio is probed alongside, in a thread
    with ThreadPoolExecutor(1) as pool:
        audio = pool.submit(ffprobe, source, str(source), ["-select_streams", "a:0", "-show_streams"])
        meta = ffprobe(
            source,
            str(source),
            ["-show_format", "-show_streams", "-select_streams", "v:0"]
            + ["-show_entries", "packet=pts,dts,duration,flags"],
        )
        has_audio = bool(audio.result().get("streams"))
    video = next((s for s in meta.get("streams", []) if s.get("codec_type") == "video"), None)
    if video is None:
        raise ValueError(f"no video stream in {source}")
    raw = [p for p in meta.get("packets", []) if p.get("pts") is not None]
    if not raw:
        raise ValueError(f"no video frames in {source}")
    packets = [_Packet(int(p["pts"]), int(p.get("dts", p["pts"])), "K" in p.get("flags", "")) for p in raw]
    frames = sorted(p.pts for p in packets)
    time_base = Fraction(video["time_base"])
    fps = _rate(video.get("avg_frame_rate")) or _rate(video.get("r_frame_rate"))
    if not fps:
        raise ValueError(f"cannot determine the frame rate of {source}")
    last = max(raw, key=lambda p: int(p["pts"]))
    last_duration = int(last.get("duration") or 0) or round(1 / (fps * time_base))
    return _Source(
        path=source,
        time_base=time_base,
        fps=fps,
        packets=packets,
        frames=frames,
        first_pts=frames[0],
        end_pts=frames[-1] + last_duration,
        format_start_s=Fraction(meta.get("format", {}).get("start_time") or "0"),
        pix_fmt=str(video.get("pix_fmt") or "yuv420p"),
        profile=video.get("profile"),
        level=int(video["level"]) if video.get("level") not in (None, -99) else None,
        has_audio=has_audio,
    )


def _rate(value: str | None) -> Fraction | None:
    if not value or value in {"0/0", "0/1"}:
        return None
    try:
        return Fraction(value)
    except (ValueError, ZeroDivisionError):
        return None


def keyframe_times(source: Path) -> list[float]:
    """Zero-based times (s) of the video's keyframes, in display order (the first frame is at 0)."""
    src = _probe(source)
    return sorted(float(src.seconds(p.pts)) for p in src.packets if p.key)


def _frame_range(src: _Source, start_ms: int, end_ms: int) -> tuple[int, int]:
    """Indexes [first, stop) into `src.frames` of the frames shown in [start_ms, end_ms)."""
    duration_ms = float(src.duration_s) * 1000
    if start_ms < 0 or end_ms <= start_ms:
        raise ValueError(f"bad clip range for {src.path.name}: start_ms={start_ms}, end_ms={end_ms}")
    if start_ms >= duration_ms:
        raise ValueError(
            f"clip start {start_ms} ms is beyond the end of {src.path.name} ({duration_ms:.0f} ms)"
        )
    times = [src.seconds(p) for p in src.frames]
    first = bisect_left(times, Fraction(start_ms, 1000) - _TOLERANCE_S)
    stop = bisect_left(times, Fraction(end_ms, 1000) - _TOLERANCE_S)
    if stop <= first:
        raise ValueError(
            f"clip range start_ms={start_ms}, end_ms={end_ms} of {src.path.name} holds no frame "
            f"(frames every {float(1000 / src.fps):.2f} ms)"
        )
    return first, stop


def _clean_boundaries(packets: list[_Packet], end_pts: int) -> list[tuple[int, int]]:
    """(i, pts) where packets[:i] in decode order are all displayed before packets[i:].

    `pts` is the first frame shown after the boundary (`end_pts` for the end of the stream).
    """
    n = len(packets)
    suffix_min = [0] * (n + 1)
    suffix_min[n] = end_pts
    for i in range(n - 1, -1, -1):
        suffix_min[i] = min(packets[i].pts, suffix_min[i + 1])
    clean, prefix_max = [], -(2**63)
    for i in range(n + 1):
        if prefix_max < suffix_min[i]:
            clean.append((i, suffix_min[i]))
        if i < n:
            prefix_max = max(prefix_max, packets[i].pts)
    return clean


def cut_clip(source: Path, start_ms: int, end_ms: int, out: Path, method: str = "smart") -> CutResult:
    """Cut the frames shown in [start_ms, end_ms) of `source` into the MP4 `out`.

    `end_ms` is clamped to the video's duration. "smart" (the default) is frame-exact and
    re-encodes at most about one GOP; "reencode" (exact, slow) and "copy" (fast, starts at the
    previous keyframe) are the baselines it is measured against. `out` appears complete or not at
    all. The result's `method` is what was done: "smart" falls back to "reencode" on sources
    whose B-frame delay it cannot match.
    """
    if method not in METHODS:
        raise ValueError(f"unknown cut method {method!r}; expected one of {', '.join(METHODS)}")
    src = _probe(source)
    first, stop = _frame_range(src, start_ms, end_ms)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.stem}.", dir=out.parent))
    try:
        tmp = work / "clip.mp4"
        if method == "copy":
            _cut_copy(src, start_ms, end_ms, tmp)
            used = "copy"
        elif method == "smart" and _delay_frames(src) in _X264_FOR_DELAY:
            _cut_smart(src, first, stop, work, tmp)
            used = "smart"
        else:
            _encode(src, first, stop - first, tmp, with_audio=src.has_audio)
            used = "reencode"
        os.replace(tmp, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    end_pts = src.frames[stop] if stop < len(src.frames) else src.end_pts
    return CutResult(
        path=out,
        start_ms=round(src.seconds(src.frames[first]) * 1000),
        end_ms=round(src.seconds(end_pts) * 1000),
        # exact methods hold exactly the range's frames (the tests check ffprobe agrees); copy does not
        duration_s=_duration(out) if used == "copy" else round(_span_s(src, first, stop), 6),
        size_bytes=out.stat().st_size,
        method=used,
    )


def _delay_frames(src: _Source) -> int:
    """B-frame reordering delay of the source in frames (pts - dts of its first packet)."""
    first = src.packets[0]
    return round((first.pts - first.dts) * src.time_base * src.fps)


def _cut_copy(src: _Source, start_ms: int, end_ms: int, out: Path) -> None:
    end_s = min(Fraction(end_ms, 1000), src.duration_s)
    seek = src.seek_s(src.first_pts) + start_ms / 1000
    cmd = ["-ss", f"{seek:.6f}", "-i", str(src.path), "-t", f"{float(end_s) - start_ms / 1000:.6f}"]
    cmd += ["-map", "0:v:0", "-map", "0:a:0?", "-c", "copy", "-movflags", "+faststart", str(out)]
    _ffmpeg(cmd, src.path, "copy")


def _x264(src: _Source, delay: int | None = None) -> list[str]:
    args = [*(_X264 if delay is None else _X264_PIECES), "-pix_fmt", src.pix_fmt]
    if src.profile and src.profile.lower() in {"baseline", "main", "high", "constrained baseline"}:
        args += ["-profile:v", src.profile.lower().replace("constrained ", "")]
    if src.level:
        args += ["-level:v", f"{src.level / 10:.1f}"]
    if delay is not None:
        args += _X264_FOR_DELAY[delay]
    return args


def _timescale(src: _Source) -> list[str]:
    return ["-video_track_timescale", str(src.time_base.denominator)] if src.time_base.numerator == 1 else []


def _encode_cmd(
    src: _Source, first: int, count: int, out: Path, *, with_audio: bool, delay: int | None = None
) -> list[str]:
    """ffmpeg arguments re-encoding `count` frames from frame index `first`.

    ffmpeg's input seek decodes from the keyframe before and drops what precedes the seek time,
    so the first frame is exact; `-frames:v` makes the last one exact too.
    """
    seek = src.seek_s(src.frames[first])
    cmd = ["-ss", f"{seek:.6f}", "-i", str(src.path), "-map", "0:v:0", "-frames:v", str(count)]
    cmd += ["-vf", "setpts=PTS-STARTPTS", "-fps_mode", "passthrough", *_x264(src, delay), *_timescale(src)]
    if with_audio:
        cmd += ["-map", "0:a:0", "-t", f"{_span_s(src, first, first + count):.6f}", *_AUDIO]
    return [*cmd, "-movflags", "+faststart", str(out)]


def _encode(
    src: _Source, first: int, count: int, out: Path, *, with_audio: bool, delay: int | None = None
) -> None:
    _ffmpeg(_encode_cmd(src, first, count, out, with_audio=with_audio, delay=delay), src.path, "re-encode")


def _span_s(src: _Source, first: int, stop: int) -> float:
    end = src.frames[stop] if stop < len(src.frames) else src.end_pts
    return float((end - src.frames[first]) * src.time_base)


def _cut_smart(src: _Source, first: int, stop: int, work: Path, out: Path) -> None:
    delay = _delay_frames(src)
    start_pts = src.frames[first]
    stop_pts = src.frames[stop] if stop < len(src.frames) else src.end_pts + 1
    clean = _clean_boundaries(src.packets, src.end_pts)
    # a keyframe at a clean boundary: copying from there needs nothing decoded before it
    head_end, key_pts = next(
        ((i, b) for i, b in clean if i < len(src.packets) and src.packets[i].key and b >= start_pts),
        (None, None),
    )
    tail_start, mid_end_pts = max(
        ((i, b) for i, b in clean if head_end is not None and i > head_end and b <= stop_pts),
        default=(None, None),
    )
    if head_end is None or tail_start is None or key_pts is None or mid_end_pts is None:
        _encode(src, first, stop - first, out, with_audio=src.has_audio, delay=delay)  # within one GOP
        return
    key_index = src.frames.index(key_pts)
    mid_stop = src.frames.index(mid_end_pts) if mid_end_pts < src.end_pts else len(src.frames)
    # The pieces are independent processes: run them side by side (x264 alone leaves cores idle
    # while it starts up and while ffmpeg decodes up to the cut). Audio is encoded once for the
    # exact span of the video frames.
    jobs: dict[str, list[str]] = {}
    pieces = []
    if key_index > first:
        pieces.append(work / "head.mp4")
        jobs["head re-encode"] = _encode_cmd(
            src, first, key_index - first, pieces[-1], with_audio=False, delay=delay
        )
    pieces.append(work / "middle.mp4")
    cmd = ["-ss", f"{src.seek_s(key_pts):.6f}", "-i", str(src.path), "-map", "0:v:0"]
    jobs["copy of the middle"] = [
        *cmd,
        "-frames:v",
        str(tail_start - head_end),
        "-c",
        "copy",
        *_timescale(src),
        str(pieces[-1]),
    ]
    if mid_stop < stop:
        pieces.append(work / "end.mp4")
        jobs["end re-encode"] = _encode_cmd(
            src, mid_stop, stop - mid_stop, pieces[-1], with_audio=False, delay=delay
        )
    audio = work / "audio.m4a"
    if src.has_audio:
        seek, span = src.seek_s(start_pts), _span_s(src, first, stop)
        cmd = ["-ss", f"{seek:.6f}", "-t", f"{span:.6f}", "-i", str(src.path), "-map", "0:a:0", "-vn"]
        jobs["audio"] = [*cmd, *_AUDIO, str(audio)]
    _ffmpeg_all(jobs, src.path)
    listing = work / "pieces.txt"
    listing.write_text("".join(f"file '{p.name}'\n" for p in pieces))
    cmd = ["-f", "concat", "-safe", "0", "-i", str(listing)]
    if src.has_audio:
        cmd += ["-i", str(audio), "-map", "0:v:0", "-map", "1:a:0"]
    cmd += ["-c", "copy", *_timescale(src), "-movflags", "+faststart", str(out)]
    _ffmpeg(cmd, src.path, "join")


def _ffmpeg_all(jobs: dict[str, list[str]], source: Path) -> None:
    """Run ffmpeg commands concurrently; wait for all, then raise for the first that failed."""
    running = {
        step: subprocess.Popen(
            ["ffmpeg", "-v", "error", "-nostdin", "-y", *cmd],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for step, cmd in jobs.items()
    }
    errors = {step: job.communicate()[1] for step, job in running.items()}
    for step, job in running.items():
        if job.returncode != 0:
            raise ClipError(f"clip {step} failed for {source.name}: {_last_line(errors[step])}")


def _duration(path: Path) -> float:
    from reko.media import InvalidVideoError, ffprobe

    try:
        return round(
            float(ffprobe(path, str(path), ["-show_entries", "format=duration"])["format"]["duration"]), 6
        )
    except (InvalidVideoError, KeyError, TypeError, ValueError) as exc:
        raise ClipError(f"the written clip is unreadable: {path}: {exc}") from exc
