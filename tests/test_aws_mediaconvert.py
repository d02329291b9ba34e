"""MediaConvert backend: builders (model checks, timecode math), Stubber-validated requests,
the hook's endpoint handling, the trigger and operator against a loopback MediaConvert that does
the real work on a moto S3 server, idempotent re-runs, and frame listing vs the local backend."""

from __future__ import annotations

import asyncio
import importlib
import json
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

import pytest

from reko.aws.mediaconvert import (
    MediaConvertHook,
    MediaConvertJobError,
    list_frames,
    marker_path,
    settings_digest,
    submit_job_once,
)
from reko.aws.mediaconvert_jobs import (
    check_settings,
    clip_frames,
    clip_settings,
    frame_capture_settings,
    frame_to_timecode,
    ms_to_timecode,
    normalize_fps,
    timecode_to_frame,
)
from reko.aws.operators import MediaConvertCreateJobOperator
from reko.aws.triggers import MediaConvertJobCompleteTrigger
from reko.localdev.moto_s3 import moto_s3
from reko.media import (
    expected_frame_count,
    extract_frames,
    frame_name,
    frame_timestamp_ms,
    parse_frame_name,
)
from tests.conftest import SAMPLE_VIDEO
from tests.support.mediaconvert_server import connection_json, fake_mediaconvert

VIDEOS, WORK = "reko-videos", "reko-work"
VIDEO_URI = f"s3://aws_default@{VIDEOS}/races/race.mp4"
SHORT_URI = f"s3://aws_default@{VIDEOS}/races/short.mp4"  # 4 s of the sample: quick jobs for control flow
NTSC = Fraction(30000, 1001)


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    """moto's S3 server on loopback with the sample video and a 4-second cut of it uploaded."""
    with moto_s3(VIDEOS, WORK) as (endpoint, client):
        client.upload_file(str(SAMPLE_VIDEO), VIDEOS, "races/race.mp4")
        short = tmp_path_factory.mktemp("short") / "short.mp4"
        subprocess.run(
            ["ffmpeg", "-v", "error", "-i", str(SAMPLE_VIDEO), "-t", "4", "-c", "copy", str(short)],
            check=True,
        )
        client.upload_file(str(short), VIDEOS, "races/short.mp4")
        yield endpoint, client


@pytest.fixture(scope="module")
def s3_endpoint(moto):
    return moto[0]


@pytest.fixture(scope="module")
def s3(moto):
    return moto[1]


@pytest.fixture(scope="module")
def mc(s3_endpoint, monkeypatch_module):
    """The fake MediaConvert, reached through `aws_default`'s service_config endpoint override."""
    with fake_mediaconvert(s3_endpoint) as server:
        monkeypatch_module.setenv("AIRFLOW_CONN_AWS_DEFAULT", connection_json(server.endpoint, s3_endpoint))
        yield server


def _keys(s3, bucket: str, prefix: str) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def _jobs_for(mc, settings: dict) -> list[dict]:
    return [j for j in mc.jobs.values() if j["Settings"] == settings]


def _operator(settings: dict, **kwargs) -> MediaConvertCreateJobOperator:
    """Non-deferred by default, polling the fake service often (its jobs take seconds)."""
    kwargs = {"deferrable": False, "waiter_delay": 0.05, "waiter_max_attempts": 3000, **kwargs}
    return MediaConvertCreateJobOperator(task_id=f"mc_{time.monotonic_ns()}", settings=settings, **kwargs)


# ---------------------------------------------------------------- timecodes and frame math


@pytest.mark.parametrize(
    ("fps", "frame", "timecode"),
    [
        (25, 0, "00:00:00:00"),
        (25, 24, "00:00:00:24"),
        (25, 25, "00:00:01:00"),
        (25, 25 * 3600 + 1, "01:00:00:01"),
        (30, 29, "00:00:00:29"),
        (30, 1800, "00:01:00:00"),
        (NTSC, 29, "00:00:00;29"),
        (NTSC, 1799, "00:00:59;29"),
        (NTSC, 1800, "00:01:00;02"),  # ;00 and ;01 are skipped at each minute ...
        (NTSC, 17981, "00:09:59;29"),
        (NTSC, 17982, "00:10:00;00"),  # ... except every tenth minute
        (NTSC, 107892, "01:00:00;00"),  # one hour of 29.97 is 107892 frames
    ],
)
def test_frame_to_timecode(fps, frame, timecode):
    assert frame_to_timecode(frame, fps) == timecode
    assert timecode_to_frame(timecode, fps) == frame


@pytest.mark.parametrize("fps", [25, 30, NTSC, Fraction(60000, 1001), Fraction(24000, 1001)])
def test_timecodes_round_trip_over_two_hours_and_every_minute_boundary(fps):
    minute = round(60 * fps)
    boundaries = [m * minute + d for m in range(1, 120) for d in range(-4, 5)]
    frames = [*range(0, int(2 * 3600 * fps), 53), *boundaries]
    labels = [frame_to_timecode(n, fps) for n in frames]
    assert [timecode_to_frame(label, fps) for label in labels] == frames
    assert len(set(labels)) == len(set(frames))  # no two frames share a label


@pytest.mark.parametrize(
    ("fps", "start_ms", "end_ms", "first", "last", "start_tc", "end_tc"),
    [
        (25, 12_000, 15_000, 300, 374, "00:00:12:00", "00:00:14:24"),
        (25, 12_010, 15_010, 301, 375, "00:00:12:01", "00:00:15:00"),  # 12.01 s: next frame starts
        (30, 1_000, 2_000, 30, 59, "00:00:01:00", "00:00:01:29"),
        (30, 1_001, 2_000, 31, 59, "00:00:01:01", "00:00:01:29"),
        (NTSC, 1_000, 2_000, 30, 59, "00:00:01;00", "00:00:01;29"),  # frame 30 is at 1.001 s
        (NTSC, 60_000, 61_000, 1799, 1828, "00:00:59;29", "00:01:01;00"),  # labels != wall clock
    ],
)
def test_clip_range_to_frames_and_timecodes(fps, start_ms, end_ms, first, last, start_tc, end_tc):
    assert clip_frames(start_ms, end_ms, fps) == (first, last)
    settings = clip_settings("s3://bk1/v.mp4", "s3://bk1/c/clip.mp4", start_ms, end_ms, fps)
    clipping = settings["Inputs"][0]["InputClippings"]
    assert clipping == [{"StartTimecode": start_tc, "EndTimecode": end_tc}]
    assert ms_to_timecode(start_ms, fps) == start_tc
    # inclusive end: the frame after EndTimecode is at or after end_ms, EndTimecode's is before it
    assert (last + 1) / Fraction(fps) * 1000 >= end_ms - Fraction(1, 2) > last / Fraction(fps) * 1000


def test_fps_is_normalised_to_exact_ntsc_rates():
    assert normalize_fps(29.97) == normalize_fps(29.970030) == NTSC
    assert normalize_fps("23.976") == Fraction(24000, 1001)
    assert normalize_fps(25.0) == 25
    with pytest.raises(ValueError, match="fps"):
        normalize_fps(0)


def test_clip_end_is_clamped_to_the_video_and_empty_ranges_are_refused():
    assert clip_frames(37_000, 60_000, 25, duration_s=38.0) == (925, 949)
    with pytest.raises(ValueError, match="beyond the end"):
        clip_frames(39_000, 40_000, 25, duration_s=38.0)
    with pytest.raises(ValueError, match="holds no frame"):
        clip_frames(1_001, 1_020, 25)
    with pytest.raises(ValueError, match="need 0 <= start < end"):
        clip_frames(2_000, 1_000, 25)
    with pytest.raises(ValueError, match="drop-frame"):
        timecode_to_frame("00:01:00;00", NTSC)  # a label drop-frame skips
    with pytest.raises(ValueError, match="only 29.97"):
        timecode_to_frame("00:00:01;00", 25)


# ---------------------------------------------------------------- builders: what Stubber does not check


def test_frame_capture_settings_shape():
    settings = frame_capture_settings(VIDEO_URI, f"s3://aws_default@{WORK}/v/frames/", 0.5, 76, quality=90)
    (source,) = settings["Inputs"]
    assert source["FileInput"] == f"s3://{VIDEOS}/races/race.mp4"  # no conn id for MediaConvert
    assert source["TimecodeSource"] == "ZEROBASED"
    frames, proxy = settings["OutputGroups"]
    assert frames["OutputGroupSettings"]["FileGroupSettings"]["Destination"] == f"s3://{WORK}/v/frames/race"
    (output,) = frames["Outputs"]
    assert output["ContainerSettings"] == {"Container": "RAW"}
    assert output["VideoDescription"]["CodecSettings"] == {
        "Codec": "FRAME_CAPTURE",
        "FrameCaptureSettings": {
            "FramerateNumerator": 2,
            "FramerateDenominator": 1,
            "MaxCaptures": 76,
            "Quality": 90,
        },
    }
    # MediaConvert refuses frame-capture-only jobs: a small H.264 proxy rides along
    assert proxy["OutputGroupSettings"]["FileGroupSettings"]["Destination"] == f"s3://{WORK}/v/proxy/race"
    assert proxy["Outputs"][0]["VideoDescription"]["CodecSettings"]["Codec"] == "H_264"
    rate = frame_capture_settings(VIDEO_URI, f"s3://{WORK}/f/", 3.0)["OutputGroups"][0]["Outputs"][0]
    fc = rate["VideoDescription"]["CodecSettings"]["FrameCaptureSettings"]
    assert (fc["FramerateNumerator"], fc["FramerateDenominator"]) == (1, 3)


def test_the_frame_capture_proxy_is_as_cheap_as_mediaconvert_allows():
    """SD (lowest resolution multiplier), <= 30 fps, single-pass AVC (Basic tier), no audio, a low
    bitrate, and a keyframe every second so the page can jump to a moment."""
    from reko.aws.mediaconvert_jobs import proxy_billed_minutes

    settings = frame_capture_settings(VIDEO_URI, f"s3://{WORK}/v/frames/", 1.0, 38)
    (output,) = settings["OutputGroups"][1]["Outputs"]
    video = output["VideoDescription"]
    h264 = video["CodecSettings"]["H264Settings"]
    assert video["Height"] <= 480 and "Width" not in video  # SD, the input's aspect ratio
    assert h264["MaxBitrate"] <= 250_000 and h264["RateControlMode"] == "QVBR"
    assert h264["QualityTuningLevel"] == "SINGLE_PASS"
    assert (
        h264["FramerateControl"] == "SPECIFIED"
        and h264["FramerateNumerator"] / h264["FramerateDenominator"] <= 30
    )
    assert (h264["GopSizeUnits"], h264["GopSize"]) == ("SECONDS", 1.0)
    assert "AudioDescriptions" not in output and "AudioSelectors" not in settings["Inputs"][0]
    check_settings(settings)  # enums and ranges from the service model
    # billed per second of output, at least 10 s
    assert proxy_billed_minutes(38.0) == 0.6333 and proxy_billed_minutes(3.0) == 0.1667


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"quality": 0}, "quality must be 1..100"),
        ({"quality": 101}, "quality must be 1..100"),
        ({"max_captures": 0}, "max_captures"),
        ({"max_captures": 10_000_001}, "max_captures"),
        ({"interval_s": 0}, "frame_interval_s must be positive"),
        ({"interval_s": -1}, "frame_interval_s must be positive"),
        ({"input_uri": "file:///tmp/race.mp4"}, "input_uri must be an s3://"),
        ({"frames_uri": "/tmp/frames"}, "frames_uri must be an s3://"),
        ({"proxy_uri": f"s3://{WORK}/proxy/race.mov"}, "proxy_uri must name the .mp4"),
    ],
)
def test_frame_capture_settings_refuse_bad_input(kwargs, message):
    args = {"input_uri": VIDEO_URI, "frames_uri": f"s3://{WORK}/frames/", "interval_s": 1.0, **kwargs}
    with pytest.raises(ValueError, match=message):
        frame_capture_settings(**args)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"clip_uri": f"s3://{WORK}/clips/a.mov"}, "clip_uri must name the .mp4"),
        ({"qvbr_quality": 11}, "qvbr_quality must be 1..10"),
        ({"max_bitrate": 10}, "max_bitrate"),
        ({"fps": 0}, "fps must be"),
    ],
)
def test_clip_settings_refuse_bad_input(kwargs, message):
    args = {"input_uri": VIDEO_URI, "clip_uri": f"s3://{WORK}/clips/a.mp4", "start_ms": 0, "end_ms": 1000}
    with pytest.raises(ValueError, match=message):
        clip_settings(**{"fps": 25, **args, **kwargs})


def test_check_settings_catches_enums_ranges_and_patterns_from_the_model():
    settings = clip_settings(VIDEO_URI, f"s3://{WORK}/clips/a.mp4", 0, 1000, 25)
    check_settings(settings)  # the builder's own output passes
    output = settings["OutputGroups"][0]["Outputs"][0]
    output["ContainerSettings"]["Container"] = "MP5"
    output["VideoDescription"]["CodecSettings"]["Codec"] = "H_266"
    output["VideoDescription"]["CodecSettings"]["H264Settings"]["MaxBitrate"] = 5
    settings["Inputs"][0]["InputClippings"][0]["EndTimecode"] = "0:0:1"
    settings["Inputs"][0]["Bogus"] = 1
    with pytest.raises(ValueError, match="invalid MediaConvert job settings") as err:
        check_settings(settings)
    text = str(err.value)
    for fragment in (
        "Container='MP5' is not one of",
        "Codec='H_266'",
        "MaxBitrate=5 is below the minimum 1000",
    ):
        assert fragment in text
    assert (
        "EndTimecode='0:0:1' does not match" in text
        and "Inputs[0].Bogus is not a MediaConvert setting" in text
    )


def test_check_settings_catches_frame_capture_ranges():
    settings = frame_capture_settings(VIDEO_URI, f"s3://{WORK}/f/", 1.0)
    fc = settings["OutputGroups"][0]["Outputs"][0]["VideoDescription"]["CodecSettings"][
        "FrameCaptureSettings"
    ]
    fc.update(FramerateNumerator=0, FramerateDenominator=2**31, Quality=101, MaxCaptures=0)
    settings["OutputGroups"][0]["Outputs"][0]["ContainerSettings"]["Container"] = "JPEG"
    with pytest.raises(ValueError, match="invalid MediaConvert job settings") as err:
        check_settings(settings)
    for fragment in (
        "FramerateNumerator=0 is below the minimum 1",
        "FramerateDenominator=2147483648 is above the maximum 2147483647",
        "Quality=101 is above the maximum 100",
        "MaxCaptures=0 is below the minimum 1",
        "Container='JPEG' is not one of",
    ):
        assert fragment in str(err.value)


# ---------------------------------------------------------------- hook: endpoint, Stubber-validated requests


def test_regional_endpoint_without_describe_endpoints(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_MC_PLAIN",
        json.dumps(
            {"conn_type": "aws", "login": "k", "password": "s", "extra": {"region_name": "eu-west-1"}}
        ),
    )
    hook = MediaConvertHook(aws_conn_id="mc_plain")
    assert hook.conn.meta.endpoint_url == "https://mediaconvert.eu-west-1.amazonaws.com"
    assert hook.conn.meta.service_model.endpoint_discovery_operation is None
    # what goes on the wire: one GetJob to the regional endpoint, no DescribeEndpoints first
    from botocore.awsrequest import AWSResponse

    class _Raw:
        def stream(self, **_):
            yield json.dumps(
                {"job": {"id": "j1", "status": "COMPLETE", "role": "r", "settings": {}}}
            ).encode()

    sent: list[str] = []

    def answer(request, **_):
        sent.append(f"{request.method} {request.url}")
        return AWSResponse(request.url, 200, {}, _Raw())

    hook.conn.meta.events.register("before-send.mediaconvert", answer)
    assert hook.get_job("j1")["Status"] == "COMPLETE"
    assert sent == ["GET https://mediaconvert.eu-west-1.amazonaws.com/2017-08-29/jobs/j1"]


def test_endpoint_override_from_connection_wins_over_global_endpoint(monkeypatch):
    override, other = "https://abcd1234.mediaconvert.eu-west-1.amazonaws.com", "http://127.0.0.1:1"
    monkeypatch.setenv("AIRFLOW_CONN_MC_OVERRIDE", connection_json(override, other, mediaconvert_queue="q1"))
    hook = MediaConvertHook(aws_conn_id="mc_override")
    assert hook.conn.meta.endpoint_url == override
    assert hook.job_role_arn == "arn:aws:iam::111122223333:role/MediaConvertRole"
    assert hook.queue == "q1"
    assert Path(hook.waiter_path).parent == Path(__file__).parents[1] / "plugins" / "reko" / "aws" / "waiters"
    assert "job_complete" in hook.list_waiters()


def _stubbed_hook(monkeypatch, **extra):
    from botocore.stub import Stubber

    monkeypatch.setenv(
        "AIRFLOW_CONN_MC_STUB",
        json.dumps(
            {
                "conn_type": "aws",
                "login": "k",
                "password": "s",
                "extra": {"region_name": "us-east-1", **extra},
            }
        ),
    )
    hook = MediaConvertHook(aws_conn_id="mc_stub")
    stubber = Stubber(hook.conn)
    stubber.activate()
    return hook, stubber


def _job(settings: dict, status: str = "SUBMITTED", **more) -> dict:
    return {
        "Job": {"Id": "1700000000000-abc123", "Role": "arn:r", "Settings": settings, "Status": status, **more}
    }


@pytest.mark.parametrize("kind", ["frames", "clip"])
def test_create_job_requests_pass_the_service_model(monkeypatch, kind):
    settings = (
        frame_capture_settings(VIDEO_URI, f"s3://{WORK}/v/frames/", 1.0, 38)
        if kind == "frames"
        else clip_settings(VIDEO_URI, f"s3://{WORK}/clips/c.mp4", 12_000, 15_000, NTSC, audio=True)
    )
    role = "arn:aws:iam::111122223333:role/Mc"
    hook, stubber = _stubbed_hook(monkeypatch, mediaconvert_role_arn=role, mediaconvert_queue="arn:q")
    stubber.add_response(
        "create_job",
        _job(settings),
        expected_params={
            "Role": role,
            "Settings": settings,
            "Queue": "arn:q",
            "ClientRequestToken": "tok-1",
            "UserMetadata": {"video": "race"},
        },
    )
    stubber.add_response(
        "get_job", _job(settings, "ERROR", ErrorCode=1030, ErrorMessage="bad input"), {"Id": "j1"}
    )
    assert hook.create_job(settings, client_request_token="tok-1", user_metadata={"video": "race"})["Id"]
    job = hook.get_job("j1")
    assert (job["ErrorCode"], job["ErrorMessage"]) == (1030, "bad input")
    stubber.assert_no_pending_responses()


def test_create_job_without_a_role_names_the_connection_extra(monkeypatch):
    hook, _ = _stubbed_hook(monkeypatch)
    with pytest.raises(ValueError, match="mediaconvert_role_arn.*mc_stub"):
        hook.create_job({"Inputs": []})


def test_a_job_without_a_role_fails_at_once_naming_the_extra(mc, s3_endpoint, monkeypatch):
    """A configuration error is not retried: AirflowFailException (the task runner's no-retry)."""
    from airflow.sdk.exceptions import AirflowFailException

    conn = json.loads(connection_json(mc.endpoint, s3_endpoint))
    del conn["extra"]["mediaconvert_role_arn"]
    monkeypatch.setenv("AIRFLOW_CONN_MC_NO_ROLE", json.dumps(conn))
    settings = clip_settings(SHORT_URI, f"s3://{WORK}/norole/c.mp4", 0, 1000, 25, audio=False)
    before = len(mc.jobs)
    with pytest.raises(AirflowFailException, match="mediaconvert_role_arn.*mc_no_role"):
        _operator(settings, aws_conn_id="mc_no_role").execute({})
    assert len(mc.jobs) == before


@pytest.mark.parametrize(
    ("code", "status", "fails_at_once"),
    [
        ("BadRequestException", 400, True),
        ("ForbiddenException", 403, True),
        ("TooManyRequestsException", 429, False),
    ],
)
def test_a_refused_request_fails_at_once_and_throttling_is_retried(monkeypatch, code, status, fails_at_once):
    from airflow.sdk.exceptions import AirflowFailException
    from botocore.exceptions import ClientError

    settings = clip_settings(VIDEO_URI, f"s3://{WORK}/clips/c.mp4", 0, 1000, 25)
    hook, stubber = _stubbed_hook(monkeypatch, mediaconvert_role_arn="arn:aws:iam::1:role/nope")
    stubber.add_client_error("create_job", code, "the role cannot be assumed", http_status_code=status)
    op = _operator(settings, aws_conn_id="mc_stub")
    op.__dict__["hook"] = hook  # the stubbed client (the operator's hook is a cached property)
    expected = AirflowFailException if fails_at_once else ClientError
    with pytest.raises(expected, match="the role cannot be assumed") as raised:
        op.execute({})
    assert isinstance(raised.value, AirflowFailException) is fails_at_once
    if fails_at_once:
        assert code in str(raised.value)


def test_a_stale_marker_for_a_job_mediaconvert_forgot_submits_anew(monkeypatch, tmp_path):
    settings = clip_settings(VIDEO_URI, f"s3://{WORK}/clips/c.mp4", 0, 1000, 25)
    hook, stubber = _stubbed_hook(monkeypatch, mediaconvert_role_arn="arn:r")
    from reko.storage import write_json

    write_json(marker_path(tmp_path.as_uri(), settings), {"job_id": "gone", "attempt": 2})
    stubber.add_client_error(
        "get_job", "NotFoundException", http_status_code=404, expected_params={"Id": "gone"}
    )
    digest = settings_digest(settings)
    stubber.add_response(
        "create_job",
        _job(settings),
        expected_params={
            "Role": "arn:r",
            "Settings": settings,
            "ClientRequestToken": f"reko-{digest}-3",
            "UserMetadata": {"reko_settings": digest},
        },
    )
    result = submit_job_once(hook, settings, marker_uri=tmp_path.as_uri())
    assert result == {
        "job_id": "1700000000000-abc123",
        "status": "SUBMITTED",
        "reused": False,
        "settings_digest": digest,
    }
    stubber.assert_no_pending_responses()


# ---------------------------------------------------------------- trigger


def test_trigger_serialization_round_trip():
    trigger = MediaConvertJobCompleteTrigger(
        job_id="j-1", waiter_delay=7, waiter_max_attempts=9, aws_conn_id="c", region_name="eu-west-1"
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "reko.aws.triggers.MediaConvertJobCompleteTrigger"
    assert kwargs == {
        "job_id": "j-1",
        "waiter_delay": 7,
        "waiter_max_attempts": 9,
        "aws_conn_id": "c",
        "region_name": "eu-west-1",
    }
    module, name = classpath.rsplit(".", 1)
    rebuilt = getattr(importlib.import_module(module), name)(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)
    hook = rebuilt.hook()
    assert isinstance(hook, MediaConvertHook) and hook.aws_conn_id == "c" and hook.region_name == "eu-west-1"


async def _first_event(trigger):
    async for event in trigger.run():
        return event
    return None


def test_trigger_run_reports_success_and_error_from_the_service(mc):
    settings = clip_settings(SHORT_URI, f"s3://{WORK}/trigger/ok.mp4", 0, 1000, 25, audio=False)
    hook = MediaConvertHook()
    ok = hook.create_job(settings)["Id"]
    mc.fail_next(1040, "Input video has no video track")
    bad = hook.create_job(clip_settings(SHORT_URI, f"s3://{WORK}/trigger/bad.mp4", 0, 1000, 25))["Id"]

    def run(job_id):
        return asyncio.run(
            _first_event(
                MediaConvertJobCompleteTrigger(job_id=job_id, waiter_delay=0.05, waiter_max_attempts=2000)
            )
        )

    event = run(ok)
    assert event.payload == {"status": "success", "job_id": ok}
    assert mc.jobs[ok]["Status"] == "COMPLETE"
    event = run(bad)
    assert event.payload["status"] == "error" and event.payload["job_id"] == bad
    assert "ERROR" in event.payload["message"]


# ---------------------------------------------------------------- operator


def test_operator_defers_with_the_job_trigger(mc):
    from airflow.sdk.exceptions import TaskDeferred

    settings = clip_settings(SHORT_URI, f"s3://{WORK}/defer/c.mp4", 0, 1000, 25, audio=False)
    op = _operator(
        settings, deferrable=True, waiter_delay=5, aws_conn_id="aws_default", region_name="us-east-1"
    )
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({})
    trigger = deferred.value.trigger
    assert isinstance(trigger, MediaConvertJobCompleteTrigger)
    (job,) = _jobs_for(mc, settings)
    assert trigger.serialize()[1] == {
        "job_id": job["Id"],
        "waiter_delay": 5,
        "waiter_max_attempts": 3000,
        "aws_conn_id": "aws_default",
        "region_name": "us-east-1",
    }
    assert deferred.value.method_name == "execute_complete"
    mc.wait_until_done(job["Id"])
    event = asyncio.run(_first_event(trigger.__class__(**{**trigger.serialize()[1], "waiter_delay": 0.05})))
    assert op.execute_complete({}, event.payload, **deferred.value.kwargs) == {
        "job_id": job["Id"],
        "status": "COMPLETE",
        "reused": False,
        "settings_digest": settings_digest(settings),
    }


def test_failed_job_fails_the_task_with_mediaconverts_code_and_message(mc):
    settings = clip_settings(SHORT_URI, f"s3://{WORK}/fail/c.mp4", 0, 1000, 25, audio=False)
    mc.fail_next(1030, "Failed probe/open: unsupported codec")
    with pytest.raises(
        MediaConvertJobError, match=r"ended ERROR: error 1030: Failed probe/open: unsupported codec"
    ):
        _operator(settings).execute({})
    (job,) = _jobs_for(mc, settings)
    event = {"status": "error", "message": "Waiter job_complete failed", "job_id": job["Id"]}
    with pytest.raises(MediaConvertJobError, match="1030") as err:
        _operator(settings).execute_complete({}, event)
    assert (err.value.error_code, err.value.status) == (1030, "ERROR")


def test_a_missing_input_is_a_job_error_not_a_hang(mc):
    settings = clip_settings(f"s3://{VIDEOS}/nope.mp4", f"s3://{WORK}/missing/c.mp4", 0, 1000, 25)
    with pytest.raises(MediaConvertJobError, match="nope.mp4"):
        _operator(settings).execute({})


def test_rerun_reuses_a_complete_job_and_waits_for_one_in_flight(mc, s3):
    from airflow.sdk.exceptions import TaskDeferred

    settings = clip_settings(SHORT_URI, f"s3://{WORK}/rerun/c.mp4", 2_000, 3_000, 25, audio=False)
    marker = f"s3://aws_default@{WORK}/rerun/"
    with mc.held():
        with pytest.raises(TaskDeferred) as first:
            _operator(settings, marker_uri=marker, deferrable=True).execute({})
        with pytest.raises(TaskDeferred) as second:  # in flight: wait for the same job
            _operator(settings, marker_uri=marker, deferrable=True).execute({})
    job_id = first.value.trigger.serialize()[1]["job_id"]
    assert second.value.trigger.serialize()[1]["job_id"] == job_id
    assert second.value.kwargs == {"reused": True, "settings_digest": settings_digest(settings)}
    mc.wait_until_done(job_id)
    again = _operator(settings, marker_uri=marker, deferrable=True).execute({})  # complete: no defer, no job
    assert again == {
        "job_id": job_id,
        "status": "COMPLETE",
        "reused": True,
        "settings_digest": settings_digest(settings),
    }
    assert len(_jobs_for(mc, settings)) == 1
    assert f"rerun/_mediaconvert-{settings_digest(settings)}.json" in _keys(s3, WORK, "rerun/")[0]


def test_rerun_after_an_error_submits_a_new_job(mc):
    settings = clip_settings(SHORT_URI, f"s3://{WORK}/retry/c.mp4", 0, 1000, 25, audio=False)
    marker = f"s3://aws_default@{WORK}/retry/"
    mc.fail_next(1999, "transient")
    with pytest.raises(MediaConvertJobError):
        _operator(settings, marker_uri=marker).execute({})
    result = _operator(settings, marker_uri=marker).execute({})
    jobs = _jobs_for(mc, settings)
    assert [j["Status"] for j in jobs] == ["ERROR", "COMPLETE"]
    assert result["job_id"] == jobs[1]["Id"] and result["status"] == "COMPLETE" and not result["reused"]


def test_a_crash_between_submit_and_marker_is_covered_by_the_request_token(mc):
    settings = clip_settings(SHORT_URI, f"s3://{WORK}/crash/c.mp4", 0, 1000, 25, audio=False)
    hook = MediaConvertHook()
    lost = hook.create_job(settings, client_request_token=f"reko-{settings_digest(settings)}-1")["Id"]
    result = submit_job_once(hook, settings, marker_uri=f"s3://aws_default@{WORK}/crash/")
    assert result["job_id"] == lost and len(_jobs_for(mc, settings)) == 1


# ---------------------------------------------------------------- frames and clips vs the local backend


@pytest.mark.parametrize("interval_s", [1.0, 0.5])
def test_frame_capture_lists_the_same_frames_as_the_local_backend(mc, s3, tmp_path, interval_s):
    prefix = f"fc/i{round(interval_s * 1000)}ms"
    settings = frame_capture_settings(
        VIDEO_URI,
        f"s3://aws_default@{WORK}/{prefix}/frames/",
        interval_s,
        expected_frame_count(38.0, interval_s),
    )
    with ThreadPoolExecutor(1) as pool:  # the local backend cuts its frames while the job runs
        local = pool.submit(extract_frames, SAMPLE_VIDEO, tmp_path, "race", interval_s)
        result = _operator(settings, marker_uri=f"s3://aws_default@{WORK}/{prefix}/frames/").execute({})
        local_count = local.result()
    assert result["status"] == "COMPLETE"

    indexes = list_frames(f"s3://aws_default@{WORK}/{prefix}/frames/")
    local_names = sorted(p.name for p in tmp_path.iterdir())
    assert local_count == expected_frame_count(38.0, interval_s) == round(38 / interval_s)
    assert indexes == list(range(local_count))
    assert [frame_name("race", i) for i in indexes] == local_names
    remote_ms = [frame_timestamp_ms(i, interval_s) for i in indexes]
    local_ms = [frame_timestamp_ms(parse_frame_name(name)[1], interval_s) for name in local_names]
    assert remote_ms == local_ms == [round(k * interval_s * 1000) for k in range(local_count)]
    frame_keys = [k for k in _keys(s3, WORK, f"{prefix}/frames/") if k.endswith(".jpg")]
    assert frame_keys == [f"{prefix}/frames/{name}" for name in local_names]
    assert f"{prefix}/proxy/race.mp4" in _keys(s3, WORK, f"{prefix}/proxy/")


def test_list_frames_refuses_gaps_and_mixed_videos(mc, s3):
    for name in ("race.0000000.jpg", "race.0000001.jpg", "race.0000003.jpg", "notes.txt"):
        s3.put_object(Bucket=WORK, Key=f"gaps/{name}", Body=b"x")
    with pytest.raises(ValueError, match=r"missing index\(es\) 2"):
        list_frames(f"s3://{WORK}/gaps/")
    s3.put_object(Bucket=WORK, Key="gaps/other.0000000.jpg", Body=b"x")
    with pytest.raises(ValueError, match="several videos.*other, race"):
        list_frames(f"s3://{WORK}/gaps")
    assert list_frames(f"s3://{WORK}/gaps/", stem="other") == [0]
    assert list_frames(f"s3://aws_default@{WORK}/empty/") == []


def _frames_and_duration(path: Path) -> tuple[int, float]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0"]
        + ["-show_entries", "stream=nb_read_frames:format=duration", "-of", "json", str(path)],
        capture_output=True,
        check=True,
    )
    meta = json.loads(out.stdout)
    return int(meta["streams"][0]["nb_read_frames"]), float(meta["format"]["duration"])


def test_clip_job_cuts_the_same_frames_as_the_local_cutter(mc, s3, tmp_path):
    from reko.clips import cut_clip

    start_ms, end_ms = 12_000, 15_000
    uri = f"s3://aws_default@{WORK}/clips/race-12000-15000.mp4"
    settings = clip_settings(VIDEO_URI, uri, start_ms, end_ms, 25, duration_s=38.0, audio=False)
    assert _operator(settings).execute({})["status"] == "COMPLETE"
    remote = tmp_path / "remote.mp4"
    s3.download_file(WORK, "clips/race-12000-15000.mp4", str(remote))  # the URI the caller chose
    local = cut_clip(SAMPLE_VIDEO, start_ms, end_ms, tmp_path / "local.mp4")
    first, last = clip_frames(start_ms, end_ms, 25)
    assert _frames_and_duration(remote)[0] == _frames_and_duration(local.path)[0] == last - first + 1 == 75
