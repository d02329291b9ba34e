"""Video probing and frame extraction with ffmpeg, following MediaConvert frame-capture rules.

MediaConvert's FRAME_CAPTURE output writes `<name>.NNNNNNN.jpg` (0-based, 7 digits) and capture i
is taken at i x Denominator/Numerator seconds. The local backend reproduces both, so everything
downstream sees the same frame indexes and timestamps whichever backend cut the frames.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

FRAME_INDEX_DIGITS = 7
FRAME_NAME_RE = re.compile(r"^(?P<stem>.+)\.(?P<index>\d{7})\.jpg$")
# Frames captured this long before their nominal time still count, absorbing timebase rounding.
_CAPTURE_TOLERANCE_S = 0.0005


class InvalidVideoError(ValueError):
    """The input is not a readable video; the message names the input and the problem."""


@dataclass(frozen=True)
class VideoInfo:
    """What the pipeline needs to know about a source video."""

    duration_s: float
    fps: float
    width: int
    height: int
    codec: str
    size_bytes: int
    has_audio: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


def capture_rate(interval_s: float) -> Fraction:
    """Frame-capture rate as MediaConvert's FramerateNumerator/FramerateDenominator."""
    if not interval_s or interval_s <= 0:
        raise ValueError(f"frame_interval_s must be positive, got {interval_s!r}")
    rate = Fraction(1) / Fraction(str(interval_s))
    return rate.limit_denominator(1001)


def frame_timestamp_ms(index: int, interval_s: float) -> int:
    """Capture time of frame `index` in milliseconds: index x Denominator/Numerator seconds."""
    return round(Fraction(index) / capture_rate(interval_s) * 1000)


def expected_frame_count(duration_s: float, interval_s: float) -> int:
    """Captures at 0, I, 2I, ... strictly before the end of the video."""
    usable = Fraction(str(duration_s)) - Fraction(str(_CAPTURE_TOLERANCE_S))
    return max(math.ceil(usable * capture_rate(interval_s)), 1)


def frame_name(stem: str, index: int) -> str:
    return f"{stem}.{index:0{FRAME_INDEX_DIGITS}d}.jpg"


def frame_stem(video_name: str) -> str:
    """MediaConvert names captures after the input file's base name, without its extension."""
    stem = Path(video_name).stem or "frame"
    return re.sub(r"[^A-Za-z0-9._-]", "_", stem)


def parse_frame_name(name: str) -> tuple[str, int] | None:
    match = FRAME_NAME_RE.match(name)
    return (match["stem"], int(match["index"])) if match else None


# ffmpeg reads HTTP with open-ended ranges and hangs up when it has enough; a small socket buffer
# bounds what is already in flight by then (autotuned, it grows to megabytes per connection)
URL_RECV_BUFFER = 256 * 1024
DEFAULT_URL_TIMEOUT_S = 60.0


def _run(cmd: list[str], timeout_s: float | None = None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(
            cmd, capture_output=True, check=False, stdin=subprocess.DEVNULL, timeout=timeout_s
        )
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(cmd, -1, b"", f"no answer within {timeout_s:g} s".encode())


def _last_line(stderr: bytes, secret: str = "") -> str:
    lines = [line for line in stderr.decode(errors="replace").splitlines() if line.strip()]
    text = lines[-1].strip() if lines else "no error output"
    return text.replace(secret, "<url>") if secret else text


def is_url(source: Path | str) -> bool:
    """An HTTP(S) URL (e.g. a presigned S3 GET), which ffmpeg reads with range requests."""
    return isinstance(source, str) and source.startswith(("http://", "https://"))


def _input_options(source: Path | str, timeout_s: float | None) -> list[str]:
    if not is_url(source):
        return []
    wait = timeout_s or DEFAULT_URL_TIMEOUT_S
    return ["-rw_timeout", str(int(wait * 1_000_000)), "-recv_buffer_size", str(URL_RECV_BUFFER)]


def ffprobe(
    source: Path | str, label: str, args: Sequence[str] = (), *, timeout_s: float | None = None
) -> dict:
    """ffprobe's JSON for a file or a URL: reko's one ffprobe call (probe, the archive scan, clips).

    A URL is read with range requests (never downloaded whole) and never appears in a message;
    `label` (what the user passed) does.
    """
    if shutil.which("ffprobe") is None:
        raise RuntimeError("ffmpeg is not installed (apt-get install ffmpeg)")
    secret = str(source) if is_url(source) else ""
    cmd = ["ffprobe", "-v", "error", *_input_options(source, timeout_s), "-of", "json", *args, str(source)]
    result = _run(cmd, timeout_s)
    if result.returncode != 0:
        detail = _last_line(result.stderr, secret)
        if secret and "404" in detail:
            raise InvalidVideoError(f"video not found: {label}")
        raise InvalidVideoError(f"not a readable video: {label}: {detail}")
    return json.loads(result.stdout or b"{}")


def probe(
    source: Path | str, label: str, *, size_bytes: int | None = None, timeout_s: float | None = None
) -> VideoInfo:
    """Read duration, frame rate and size, and check the end of the video decodes.

    `source` is a local file or a URL (a presigned S3 GET: read with range requests, so an S3
    video is never downloaded to be probed). `label` is what the user passed (the URI), so errors
    name it rather than a temp path or a signed URL. A file with its index up front but cut short
    passes ffprobe, so the last second is decoded too.
    """
    if is_url(source):
        size = size_bytes
    else:
        path = Path(source)
        if not path.exists():
            raise InvalidVideoError(f"video not found: {label}")
        size = path.stat().st_size
    if size == 0:
        raise InvalidVideoError(f"video is empty (0 bytes): {label}")
    meta = ffprobe(source, label, ["-show_format", "-show_streams"], timeout_s=timeout_s)
    if size is None:
        size = int(_float(meta.get("format", {}).get("size")) or 0)
    video = next((s for s in meta.get("streams", []) if s.get("codec_type") == "video"), None)
    if video is None or video.get("codec_name") in {None, "mjpeg", "png"} and _is_still(meta):
        raise InvalidVideoError(f"no video stream in {label}")
    duration = _float(meta.get("format", {}).get("duration")) or _float(video.get("duration"))
    if not duration or duration <= 0:
        raise InvalidVideoError(f"cannot determine the duration of {label}")
    fps = _rate(video.get("avg_frame_rate")) or _rate(video.get("r_frame_rate"))
    if not fps:
        raise InvalidVideoError(f"cannot determine the frame rate of {label}")
    info = VideoInfo(
        duration_s=round(duration, 6),
        fps=round(fps, 6),
        width=int(video.get("width") or 0),
        height=int(video.get("height") or 0),
        codec=str(video.get("codec_name")),
        size_bytes=size,
        has_audio=any(s.get("codec_type") == "audio" for s in meta.get("streams", [])),
    )
    _check_tail_decodes(source, label, info, timeout_s)
    return info


def _is_still(meta: dict) -> bool:
    return meta.get("format", {}).get("format_name", "").startswith(("image2", "png_pipe", "jpeg"))


def _check_tail_decodes(source: Path | str, label: str, info: VideoInfo, timeout_s: float | None) -> None:
    start = max(0.0, info.duration_s - 1.5)
    secret = str(source) if is_url(source) else ""
    result = _run(
        ["ffmpeg", "-v", "error", "-nostdin", *_input_options(source, timeout_s)]
        + ["-ss", f"{start:.3f}", "-i", str(source)]
        + ["-map", "0:v:0", "-frames:v", "1", "-s", "16x16", "-pix_fmt", "gray"]
        + ["-f", "rawvideo", "-"],
        timeout_s,
    )
    if len(result.stdout) < 256:
        detail = _last_line(result.stderr, secret) if result.stderr else "no frame could be decoded"
        raise InvalidVideoError(
            f"video is truncated or damaged: {label}: its last second does not decode ({detail})"
        )


def _float(value: object) -> float | None:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _rate(value: str | None) -> float | None:
    if not value or value in {"0/0", "0/1"}:
        return None
    try:
        return float(Fraction(value))
    except (ValueError, ZeroDivisionError):
        return None


def extract_frames(source: Path, out_dir: Path, stem: str, interval_s: float, jpeg_quality: int = 3) -> int:
    """Write captures i = 0, 1, ... as `<stem>.NNNNNNN.jpg` into `out_dir`; return how many.

    Capture i is the first decoded frame whose zero-based time is at or after i x interval,
    the same instant MediaConvert captures. ffmpeg streams frames straight to disk, so memory
    does not grow with the video's length.
    """
    if shutil.which("ffmpeg") is None:
        raise RuntimeError("ffmpeg is not installed (apt-get install ffmpeg)")
    rate = capture_rate(interval_s)
    out_dir.mkdir(parents=True, exist_ok=True)
    select = (
        f"setpts=PTS-STARTPTS,"
        f"select='gte(t\\,selected_n*{rate.denominator}/{rate.numerator}-{_CAPTURE_TOLERANCE_S})'"
    )
    cmd = ["ffmpeg", "-v", "error", "-nostdin", "-y", "-i", str(source), "-map", "0:v:0"]
    cmd += ["-vf", select, "-fps_mode", "passthrough", "-q:v", str(jpeg_quality)]
    cmd += ["-start_number", "0", str(out_dir / f"{stem}.%0{FRAME_INDEX_DIGITS}d.jpg")]
    result = _run(cmd)
    if result.returncode != 0:
        raise InvalidVideoError(f"frame extraction failed for {source.name}: {_last_line(result.stderr)}")
    return sum(1 for p in out_dir.iterdir() if parse_frame_name(p.name))
