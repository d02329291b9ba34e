"""MediaConvert job settings for frame capture and clips: pure, validated builders.

botocore's Stubber checks parameter names and types against the service model but not enums,
ranges or patterns, so every builder finishes with `check_settings`, which walks the result
against the same model and checks those too. A bad argument fails here, with a message naming
it, rather than minutes later as a MediaConvert job in ERROR.

Timecodes (clips): inputs use `TimecodeSource: ZEROBASED`, so the first frame is 00:00:00:00 and
a timecode names a frame by its number. MediaConvert counts 29.97 and 59.94 fps video with
drop-frame timecode and marks it with a semicolon before the frame field (HH:MM:SS;FF); other
rates use plain non-drop-frame counting at the nominal rate (HH:MM:SS:FF). The semicolon makes
the counting explicit, so the label always denotes the intended frame whichever default the
service would otherwise assume. Both clip ends are inclusive in MediaConvert: EndTimecode is the
last frame kept.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from functools import lru_cache
from typing import Any

from reko.media import capture_rate, frame_stem
from reko.storage import split_s3_uri

MAX_CAPTURES = 10_000_000  # FrameCaptureSettings.MaxCaptures maximum in the service model
# The proxy every frame-capture job must carry (MediaConvert refuses frame-capture-only jobs), as
# cheap as it allows: SD (the lowest resolution multiplier), at most 30 fps (the lowest frame-rate
# multiplier), single-pass AVC (Basic tier), video only, ~200 kbit/s (about 1.5 MB a minute), a
# keyframe every second so a player can jump to a moment. Billed per output minute like any output.
PROXY_HEIGHT = 240
PROXY_MAX_BITRATE = 200_000
PROXY_QVBR_QUALITY = 3
PROXY_MAX_FPS = 15
BILLING_MINIMUM_S = 10  # MediaConvert bills each output for at least 10 seconds
_INT32_MAX = 2**31 - 1
# A frame this close before a requested time still counts (the local clip cutter's rule).
_TOLERANCE = Fraction(1, 2000)
_DROP_FRAME_RATES = {Fraction(30000, 1001): 2, Fraction(60000, 1001): 4}  # frames dropped a minute
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")


# ---------------------------------------------------------------- URIs


def s3_uri(uri: str, what: str = "uri") -> str:
    """`s3://bucket/key` for MediaConvert from a plain or `s3://conn_id@bucket/key` URI."""
    try:
        _, bucket, key = split_s3_uri(uri, what)
    except ValueError:
        bucket = key = ""
    if not _BUCKET.match(bucket):
        raise ValueError(f"{what} must be an s3://bucket/key URI for MediaConvert, got {uri!r}")
    return f"s3://{bucket}/{key}"


# ---------------------------------------------------------------- timecodes


def normalize_fps(fps: Fraction | float | str) -> Fraction:
    """The exact rate: 29.97/29.970030 become 30000/1001 (likewise 23.976 and 59.94)."""
    rate = Fraction(str(fps)) if not isinstance(fps, Fraction) else fps
    if rate <= 0 or rate > 240:
        raise ValueError(f"fps must be in (0, 240], got {fps!r}")
    for nominal in (24, 30, 48, 60, 120):
        ntsc = Fraction(nominal * 1000, 1001)
        if rate != nominal and abs(rate - ntsc) < Fraction(1, 100):
            return ntsc
    return rate.limit_denominator(1001)


def is_drop_frame(fps: Fraction) -> bool:
    return normalize_fps(fps) in _DROP_FRAME_RATES


def frame_to_timecode(frame: int, fps: Fraction | float) -> str:
    """HH:MM:SS:FF (HH:MM:SS;FF drop-frame at 29.97/59.94) of zero-based frame `frame`."""
    rate = normalize_fps(fps)
    if frame < 0:
        raise ValueError(f"frame index must be >= 0, got {frame}")
    nominal = round(rate)
    label = frame
    drop = _DROP_FRAME_RATES.get(rate, 0)
    if drop:
        # SMPTE drop-frame: labels ;00 and ;01 (;00-;03 at 59.94) are skipped each minute
        # except every tenth minute; frame numbers themselves are never skipped.
        per_10min = nominal * 600 - drop * 9
        per_min = nominal * 60 - drop
        tens, rest = divmod(frame, per_10min)
        label += drop * 9 * tens + (drop * ((rest - drop) // per_min) if rest > drop else 0)
    ff = label % nominal
    seconds = label // nominal
    hh, mm, ss = seconds // 3600, seconds // 60 % 60, seconds % 60
    if hh > 23:
        raise ValueError(f"frame {frame} at {float(rate):.3f} fps is beyond a 24-hour timecode")
    return f"{hh:02d}:{mm:02d}:{ss:02d}{';' if drop else ':'}{ff:02d}"


def timecode_to_frame(timecode: str, fps: Fraction | float) -> int:
    """Inverse of `frame_to_timecode` (the separator says whether the label is drop-frame)."""
    match = re.fullmatch(r"(\d{2}):(\d{2}):(\d{2})([:;])(\d{2})", timecode or "")
    if not match:
        raise ValueError(f"timecode must look like HH:MM:SS:FF or HH:MM:SS;FF, got {timecode!r}")
    rate = normalize_fps(fps)
    nominal = round(rate)
    hh, mm, ss, sep, ff = int(match[1]), int(match[2]), int(match[3]), match[4], int(match[5])
    if mm > 59 or ss > 59 or ff >= nominal:
        raise ValueError(f"timecode {timecode!r} is out of range at {float(rate):.3f} fps")
    label = (hh * 3600 + mm * 60 + ss) * nominal + ff
    if sep == ";":
        drop = _DROP_FRAME_RATES.get(rate)
        if not drop:
            raise ValueError(f"drop-frame timecode {timecode!r} at {float(rate):.3f} fps (only 29.97/59.94)")
        if mm % 10 and ss == 0 and ff < drop:
            raise ValueError(f"drop-frame timecode {timecode!r} names a label that does not exist")
        total_minutes = hh * 60 + mm
        label -= drop * (total_minutes - total_minutes // 10)
    return label


def first_frame_at(ms: int, fps: Fraction | float) -> int:
    """Index of the first frame shown at or after `ms` (frame n is at n / fps seconds)."""
    rate = normalize_fps(fps)
    return max(0, math.ceil((Fraction(ms, 1000) - _TOLERANCE) * rate))


def ms_to_timecode(ms: int, fps: Fraction | float) -> str:
    """Timecode of the first frame at or after `ms` milliseconds (zero-based source time)."""
    if ms < 0:
        raise ValueError(f"time must be >= 0 ms, got {ms}")
    return frame_to_timecode(first_frame_at(ms, fps), fps)


def clip_frames(
    start_ms: int, end_ms: int, fps: Fraction | float, duration_s: float | None = None
) -> tuple[int, int]:
    """(first, last) frame indexes, both included, of the frames shown in [start_ms, end_ms).

    The same range `reko.clips.cut_clip` cuts locally; `end_ms` is clamped to the video's end when
    `duration_s` is given.
    """
    if start_ms < 0 or end_ms <= start_ms:
        raise ValueError(f"bad clip range: start_ms={start_ms}, end_ms={end_ms} (need 0 <= start < end)")
    rate = normalize_fps(fps)
    first = first_frame_at(start_ms, rate)
    stop = first_frame_at(end_ms, rate)
    if duration_s is not None:
        total = max(1, math.ceil(Fraction(str(duration_s)) * rate - _TOLERANCE))
        if first >= total:
            raise ValueError(f"clip start {start_ms} ms is beyond the end of the video ({duration_s} s)")
        stop = min(stop, total)
    if stop <= first:
        raise ValueError(
            f"clip range start_ms={start_ms}, end_ms={end_ms} holds no frame "
            f"(frames every {float(1000 / rate):.2f} ms)"
        )
    return first, stop - 1


# ---------------------------------------------------------------- builders


def _input(input_uri: str, *, audio: bool, clippings: list[dict] | None = None) -> dict:
    spec: dict[str, Any] = {
        "FileInput": s3_uri(input_uri, "input_uri"),
        "TimecodeSource": "ZEROBASED",
        "VideoSelector": {},
    }
    if audio:
        spec["AudioSelectors"] = {"Audio Selector 1": {"DefaultSelection": "DEFAULT"}}
    if clippings:
        spec["InputClippings"] = clippings
    return spec


def _file_group(name: str, destination: str, outputs: list[dict]) -> dict:
    return {
        "Name": name,
        "OutputGroupSettings": {
            "Type": "FILE_GROUP_SETTINGS",
            "FileGroupSettings": {"Destination": destination},
        },
        "Outputs": outputs,
    }


def _h264_output(
    *, qvbr_quality: int, max_bitrate: int, audio: bool, name_modifier: str | None = None
) -> dict:
    if not 1 <= qvbr_quality <= 10:
        raise ValueError(f"qvbr_quality must be 1..10, got {qvbr_quality}")
    if not 1000 <= max_bitrate <= 1_152_000_000:
        raise ValueError(f"max_bitrate must be 1000..1152000000 bit/s, got {max_bitrate}")
    output: dict[str, Any] = {
        "ContainerSettings": {"Container": "MP4", "Mp4Settings": {"MoovPlacement": "PROGRESSIVE_DOWNLOAD"}},
        "Extension": "mp4",
        "VideoDescription": {
            "CodecSettings": {
                "Codec": "H_264",
                "H264Settings": {
                    "RateControlMode": "QVBR",
                    "QvbrSettings": {"QvbrQualityLevel": qvbr_quality},
                    "MaxBitrate": max_bitrate,
                    "SceneChangeDetect": "TRANSITION_DETECTION",
                },
            }
        },
    }
    if audio:
        output["AudioDescriptions"] = [
            {
                "AudioSourceName": "Audio Selector 1",
                "CodecSettings": {
                    "Codec": "AAC",
                    "AacSettings": {"Bitrate": 160000, "CodingMode": "CODING_MODE_2_0", "SampleRate": 48000},
                },
            }
        ]
    if name_modifier:
        output["NameModifier"] = name_modifier
    return output


def _without_extension(uri: str, extension: str, what: str) -> str:
    if not uri.endswith(f".{extension}"):
        raise ValueError(f"{what} must name the .{extension} file to write, got {uri!r}")
    return uri[: -len(extension) - 1]


def proxy_output(max_bitrate: int = PROXY_MAX_BITRATE) -> dict:
    """The cheapest H.264 output MediaConvert offers: see PROXY_* above."""
    output = _h264_output(qvbr_quality=PROXY_QVBR_QUALITY, max_bitrate=max_bitrate, audio=False)
    video = output["VideoDescription"]
    video["Height"] = PROXY_HEIGHT  # width follows the input's aspect ratio
    video["ScalingBehavior"] = "DEFAULT"
    h264 = video["CodecSettings"]["H264Settings"]
    h264.update(
        {
            "QualityTuningLevel": "SINGLE_PASS",
            "FramerateControl": "SPECIFIED",
            "FramerateNumerator": PROXY_MAX_FPS,
            "FramerateDenominator": 1,
            "FramerateConversionAlgorithm": "DUPLICATE_DROP",
            "GopSizeUnits": "SECONDS",
            "GopSize": 1.0,
        }
    )
    return output


def proxy_billed_minutes(duration_s: float) -> float:
    """Output minutes MediaConvert bills for the proxy of a video (per second, 10 s minimum)."""
    return round(max(math.ceil(duration_s), BILLING_MINIMUM_S) / 60, 4)


def frame_capture_settings(
    input_uri: str,
    frames_uri: str,
    interval_s: float,
    max_captures: int = MAX_CAPTURES,
    quality: int = 80,
    *,
    stem: str | None = None,
    proxy_uri: str | None = None,
    proxy_max_bitrate: int = PROXY_MAX_BITRATE,
) -> dict:
    """Settings capturing a JPEG every `interval_s` into `frames_uri` as `<stem>.NNNNNNN.jpg`.

    Capture i is at i x FramerateDenominator/FramerateNumerator s, the rate `reko.media`
    uses locally. MediaConvert refuses jobs made only of a frame capture output, so the job also
    writes a small video-only H.264 proxy (`proxy_uri`, default `<frames_uri>/../proxy/<stem>.mp4`,
    see `proxy_output`) in its own output group (in the same group both outputs would need a
    NameModifier, which would change the frame names).
    """
    rate = capture_rate(interval_s)
    if not (1 <= rate.numerator <= _INT32_MAX and 1 <= rate.denominator <= _INT32_MAX):
        raise ValueError(f"frame_interval_s {interval_s!r} gives an unusable capture rate {rate}")
    if not 1 <= max_captures <= MAX_CAPTURES:
        raise ValueError(f"max_captures must be 1..{MAX_CAPTURES}, got {max_captures}")
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be 1..100, got {quality}")
    source = s3_uri(input_uri, "input_uri")
    stem = stem or frame_stem(source.rsplit("/", 1)[-1])
    frames_dir = s3_uri(frames_uri, "frames_uri").rstrip("/")
    if proxy_uri is None:
        proxy_uri = f"{frames_dir.rsplit('/', 1)[0]}/proxy/{stem}.mp4"
    proxy = _without_extension(s3_uri(proxy_uri, "proxy_uri"), "mp4", "proxy_uri")
    frames_output = {
        "ContainerSettings": {"Container": "RAW"},
        "Extension": "jpg",
        "VideoDescription": {
            "CodecSettings": {
                "Codec": "FRAME_CAPTURE",
                "FrameCaptureSettings": {
                    "FramerateNumerator": rate.numerator,
                    "FramerateDenominator": rate.denominator,
                    "MaxCaptures": max_captures,
                    "Quality": quality,
                },
            }
        },
    }
    settings = {
        "TimecodeConfig": {"Source": "ZEROBASED"},
        "Inputs": [_input(source, audio=False)],
        "OutputGroups": [
            _file_group("Frames", f"{frames_dir}/{stem}", [frames_output]),
            _file_group("Proxy", proxy, [proxy_output(proxy_max_bitrate)]),
        ],
    }
    check_settings(settings)
    return settings


def clip_settings(
    input_uri: str,
    clip_uri: str,
    start_ms: int,
    end_ms: int,
    fps: Fraction | float,
    *,
    duration_s: float | None = None,
    audio: bool = True,
    qvbr_quality: int = 8,
    max_bitrate: int = 8_000_000,
) -> dict:
    """Settings cutting the frames shown in [start_ms, end_ms) of the input into `clip_uri` (.mp4).

    One job per clip: every input clipping of a job goes into every output, concatenated, so
    separate clips cannot share a job. `fps` is the video's frame rate (timecodes count frames).
    Pass `audio=False` for a video without an audio track.
    """
    first, last = clip_frames(start_ms, end_ms, fps, duration_s)
    clipping = {"StartTimecode": frame_to_timecode(first, fps), "EndTimecode": frame_to_timecode(last, fps)}
    destination = _without_extension(s3_uri(clip_uri, "clip_uri"), "mp4", "clip_uri")
    settings = {
        "TimecodeConfig": {"Source": "ZEROBASED"},
        "Inputs": [_input(input_uri, audio=audio, clippings=[clipping])],
        "OutputGroups": [
            _file_group(
                "Clip",
                destination,
                [_h264_output(qvbr_quality=qvbr_quality, max_bitrate=max_bitrate, audio=audio)],
            )
        ],
    }
    check_settings(settings)
    return settings


# ---------------------------------------------------------------- validation against the model


@lru_cache(maxsize=1)
def _service_model():
    import botocore.session

    return botocore.session.get_session().get_service_model("mediaconvert")


def check_settings(settings: dict) -> None:
    """Raise ValueError listing every enum, range, length or pattern the job settings break.

    Walks the `JobSettings` shape of botocore's MediaConvert model: the checks Stubber skips.
    """
    problems: list[str] = []
    _check(_service_model().shape_for("JobSettings"), settings, "Settings", problems)
    if problems:
        raise ValueError("invalid MediaConvert job settings: " + "; ".join(problems))


def _check(shape, value: Any, where: str, problems: list[str]) -> None:
    meta = shape.metadata
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            problems.append(f"{where} must be an object")
            return
        for key, item in value.items():
            if key not in shape.members:
                problems.append(f"{where}.{key} is not a MediaConvert setting")
            else:
                _check(shape.members[key], item, f"{where}.{key}", problems)
        for key in shape.required_members:
            if key not in value:
                problems.append(f"{where}.{key} is required")
    elif kind == "list":
        if not isinstance(value, list):
            problems.append(f"{where} must be a list")
            return
        _check_range(len(value), meta, f"length of {where}", problems)
        for i, item in enumerate(value):
            _check(shape.member, item, f"{where}[{i}]", problems)
    elif kind == "map":
        if not isinstance(value, dict):
            problems.append(f"{where} must be an object")
            return
        for key, item in value.items():
            _check(shape.value, item, f"{where}[{key!r}]", problems)
    elif kind == "string":
        if not isinstance(value, str):
            problems.append(f"{where} must be a string, got {value!r}")
            return
        if shape.enum and value not in shape.enum:
            problems.append(f"{where}={value!r} is not one of {', '.join(shape.enum)}")
        _check_range(len(value), meta, f"length of {where}", problems)
        pattern = meta.get("pattern")
        if pattern:
            try:
                if not re.search(pattern, value):
                    problems.append(f"{where}={value!r} does not match {pattern}")
            except re.error:
                pass  # an ECMAScript pattern Python cannot compile: leave it to the service
    elif kind in ("integer", "long", "double", "float"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            problems.append(f"{where} must be a number, got {value!r}")
            return
        _check_range(value, meta, where, problems)


def _check_range(value: float, meta: dict, where: str, problems: list[str]) -> None:
    if "min" in meta and value < meta["min"]:
        problems.append(f"{where}={value} is below the minimum {meta['min']}")
    if "max" in meta and value > meta["max"]:
        problems.append(f"{where}={value} is above the maximum {meta['max']}")
