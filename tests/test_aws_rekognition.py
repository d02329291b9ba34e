"""Rekognition behind the analyser seam: requests checked by botocore's Stubber against the real
service model, limits and error mapping, the Service Quotas read, and throughput at a TPS quota
against a loopback Rekognition-protocol server with frames in moto's S3 server."""

from __future__ import annotations

import hashlib
import io
import json
import os

import boto3
import pytest
from botocore.stub import ANY, Stubber

from reko.analysis.base import FrameAnalysisError, RetryableAnalysisError, check_available, get_analysis
from reko.aws import ratelimit
from reko.aws.rekognition import MAX_BYTES, RekognitionAnalyser, RekognitionHook, request_params
from reko.localdev.moto_s3 import moto_s3
from reko.localdev.rekognition_server import RekognitionServer, expected_text
from reko.pipeline import analyse_batch
from reko.storage import VideoStore, parse_uri, read_json

BUCKET = "reko-rk-frames"


def jpeg(width: int = 160, height: int = 120, seed: int = 0, fmt: str = "JPEG") -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (width, height), ((seed * 37) % 256, (seed * 91) % 256, 90)).save(out, fmt)
    return out.getvalue()


# ------------------------------------------------------------------------------------------------
# Fixtures: moto S3 + the loopback Rekognition server, one `aws_default` connection for both
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


@pytest.fixture(scope="module")
def rekognition_server():
    server = RekognitionServer(tps=10)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def s3(monkeypatch_module, rekognition_server, tmp_path_factory):
    """moto's S3 server on 127.0.0.1; the connection sends Rekognition to the loopback server."""
    with moto_s3(BUCKET) as (endpoint, client):
        extra = {
            "endpoint_url": endpoint,
            "region_name": "us-east-1",
            "service_config": {"rekognition": {"endpoint_url": rekognition_server.endpoint}},
        }
        monkeypatch_module.setenv(
            "AIRFLOW_CONN_AWS_DEFAULT",
            json.dumps({"conn_type": "aws", "login": "testing", "password": "testing", "extra": extra}),
        )
        monkeypatch_module.setenv("REKO_REKOGNITION_LIMITER_DIR", str(tmp_path_factory.mktemp("limiter")))
        yield client


@pytest.fixture
def aws_env(monkeypatch):
    """Fake credentials, so no test can reach a real account."""
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for key in ("REKO_REKOGNITION_TPS", "REKO_REKOGNITION_QUOTA_LOOKUP", "REKO_REKOGNITION_LIMITER"):
        monkeypatch.delenv(key, raising=False)


def stubbed(kind: str, options: dict | None = None) -> tuple[RekognitionAnalyser, Stubber]:
    hook = RekognitionHook(aws_conn_id=None, region_name="us-east-1", rate_limit=False)
    analyser = RekognitionAnalyser(kind, options, hook=hook)
    stubber = Stubber(hook.conn)
    stubber.activate()
    return analyser, stubber


TEXT_RESPONSE = {
    "TextDetections": [
        {
            "DetectedText": "1042",
            "Type": "LINE",
            "Id": 0,
            "Confidence": 99.0,
            "Geometry": {"BoundingBox": {"Width": 0.1, "Height": 0.05, "Left": 0.4, "Top": 0.5}},
        },
        {
            "DetectedText": "1042",
            "Type": "WORD",
            "Id": 1,
            "ParentId": 0,
            "Confidence": 98.0,
            "Geometry": {"BoundingBox": {"Width": 0.1, "Height": 0.05, "Left": 0.4, "Top": 0.5}},
        },
    ],
    "TextModelVersion": "3.0",
}


# ------------------------------------------------------------------------------------------------
# Requests (Stubber validates names and types against the Rekognition model)
# ------------------------------------------------------------------------------------------------


def test_detect_text_reads_s3_frames_in_place_with_word_filter_and_regions(aws_env):
    regions = [{"BoundingBox": {"Left": 0.0, "Top": 0.5, "Width": 1.0, "Height": 0.5}}]
    analyser, stubber = stubbed("text", {"min_confidence": 80, "regions_of_interest": regions})
    stubber.add_response(
        "detect_text",
        TEXT_RESPONSE,
        {
            "Image": {"S3Object": {"Bucket": "my-frames", "Name": "v/i1000ms/frames/race.0000003.jpg"}},
            "Filters": {"WordFilter": {"MinConfidence": 80.0}, "RegionsOfInterest": regions},
        },
    )
    analysis = get_analysis("aws", "text", {"min_confidence": 80})
    assert analysis.backend == "aws" and analysis.concurrency >= 1
    response = analyser.run(parse_uri("s3://aws_default@my-frames/v/i1000ms/frames/race.0000003.jpg"))
    stubber.assert_no_pending_responses()
    assert response["TextDetections"][1]["DetectedText"] == "1042" and "RekoInput" not in response
    assert analysis.model_of(response) == "rekognition-DetectText:3.0"


def test_file_frames_are_sent_as_bytes_for_faces_and_labels(aws_env, tmp_path):
    frame = tmp_path / "race.0000000.jpg"
    frame.write_bytes(jpeg())
    faces, stub_faces = stubbed("faces")
    stub_faces.add_response(
        "detect_faces",
        {
            "FaceDetails": [
                {"BoundingBox": {"Width": 0.2, "Height": 0.3, "Left": 0.1, "Top": 0.1}, "Confidence": 99.5}
            ],
            "OrientationCorrection": "ROTATE_0",
        },  # fmt: skip
        {"Image": {"Bytes": frame.read_bytes()}, "Attributes": ["DEFAULT"]},
    )
    assert faces.run(parse_uri(frame.as_uri()))["FaceDetails"][0]["Confidence"] == 99.5
    labels, stub_labels = stubbed("labels", {"min_confidence": 55, "max_labels": 20})
    stub_labels.add_response(
        "detect_labels",
        {"Labels": [{"Name": "Person", "Confidence": 97.0}], "LabelModelVersion": "3.0"},
        {"Image": {"Bytes": frame.read_bytes()}, "MinConfidence": 55.0, "MaxLabels": 20},
    )
    assert labels.run(parse_uri(frame.as_uri()))["Labels"][0]["Name"] == "Person"
    stub_faces.assert_no_pending_responses()
    stub_labels.assert_no_pending_responses()


def test_bad_options_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="regions_of_interest"):
        request_params("text", {"regions_of_interest": [{"BoundingBox": {"Left": 0.5}}]})
    box = dict.fromkeys(("Left", "Top", "Width", "Height"), 2)
    with pytest.raises(ValueError, match="ratios of the frame"):
        request_params("text", {"regions_of_interest": [{"BoundingBox": box}]})
    with pytest.raises(ValueError, match="unknown Rekognition options"):
        request_params("text", {"min_conf": 50})
    with pytest.raises(ValueError, match="min_confidence"):
        request_params("labels", {"min_confidence": 120})
    check_available("aws", ["text", "faces", "labels"])  # all three are available on AWS


# ------------------------------------------------------------------------------------------------
# Error mapping and Rekognition's limits
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("ThrottlingException", 400, RetryableAnalysisError),
        ("ProvisionedThroughputExceededException", 400, RetryableAnalysisError),
        ("InternalServerError", 500, RetryableAnalysisError),
        ("ServiceUnavailableException", 503, RetryableAnalysisError),
        ("InvalidImageFormatException", 400, FrameAnalysisError),
        ("ImageTooLargeException", 400, FrameAnalysisError),
        ("InvalidParameterException", 400, FrameAnalysisError),
        ("AccessDeniedException", 403, FrameAnalysisError),
    ],
)
def test_errors_map_to_retryable_or_frame_failures(aws_env, tmp_path, code, status, expected):
    frame = tmp_path / "race.0000000.jpg"
    frame.write_bytes(jpeg())
    analyser, stubber = stubbed("text")
    stubber.add_client_error(
        "detect_text", service_error_code=code, service_message="nope", http_status_code=status
    )
    with pytest.raises(expected, match=f"DetectText {code}: nope"):
        analyser.run(parse_uri(frame.as_uri()))


def test_tiny_and_invalid_frames_fail_without_a_call(aws_env, tmp_path):
    analyser, stubber = stubbed("text")  # no response queued: any call would raise StubResponseError
    tiny = tmp_path / "tiny.jpg"
    tiny.write_bytes(jpeg(40, 300))
    with pytest.raises(FrameAnalysisError, match="40x300 px; Rekognition needs at least 80 px a side"):
        analyser.run(parse_uri(tiny.as_uri()))
    bogus = tmp_path / "bogus.jpg"
    bogus.write_bytes(b"GIF89a not a frame")
    with pytest.raises(FrameAnalysisError, match="not a JPEG or PNG"):
        analyser.run(parse_uri(bogus.as_uri()))
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(jpeg()[:20])
    with pytest.raises(FrameAnalysisError, match="cannot be decoded"):
        analyser.run(parse_uri(truncated.as_uri()))
    stubber.assert_no_pending_responses()


def test_an_oversized_frame_is_re_encoded_under_5_mb_and_says_so(aws_env, tmp_path):
    from PIL import Image

    big = tmp_path / "race.0000001.png"
    Image.frombytes("RGB", (1500, 1200), os.urandom(1500 * 1200 * 3)).save(big, "PNG")
    assert big.stat().st_size > MAX_BYTES
    analyser, stubber = stubbed("text")
    sent = []
    analyser.hook.conn.meta.events.register(
        "before-parameter-build.rekognition.DetectText", lambda params, **_: sent.append(params["Image"])
    )
    stubber.add_response("detect_text", TEXT_RESPONSE, {"Image": {"Bytes": ANY}})
    response = analyser.run(parse_uri(big.as_uri()))
    note = response["RekoInput"]
    assert note["resized"] and note["original_bytes"] == big.stat().st_size
    assert len(sent[0]["Bytes"]) == note["sent_bytes"] <= MAX_BYTES
    assert sent[0]["Bytes"].startswith(b"\xff\xd8\xff")  # JPEG
    ratio = note["sent_size"][0] / note["sent_size"][1]
    assert abs(ratio - 1500 / 1200) < 0.01  # aspect kept: normalised boxes still fit the original


def test_the_100_word_cap_is_marked(aws_env, tmp_path):
    frame = tmp_path / "race.0000000.jpg"
    frame.write_bytes(jpeg())
    words = [
        {"DetectedText": f"w{i}", "Type": "WORD", "Id": i, "ParentId": 0, "Confidence": 90.0}
        for i in range(100)
    ]
    analyser, stubber = stubbed("text")
    stubber.add_response("detect_text", {"TextDetections": words}, {"Image": {"Bytes": ANY}})
    assert analyser.run(parse_uri(frame.as_uri()))["RekoInput"] == {"word_limit_reached": 100}


def test_s3_frames_over_the_limit_or_unreadable_are_handled(s3, rekognition_server, aws_env, monkeypatch):
    """Through the loopback server: ImageTooLarge from S3 -> re-sent as bytes; a bad object is
    fetched once to say why; a missing object and a 5xx are mapped."""
    monkeypatch.setenv("REKO_REKOGNITION_MAX_ATTEMPTS", "2")
    rekognition_server.tps = 1000
    s3.put_object(Bucket=BUCKET, Key="e/too-large.0000000.jpg", Body=jpeg(200, 150))
    s3.put_object(Bucket=BUCKET, Key="e/invalid-format.0000000.jpg", Body=jpeg(60, 60))
    s3.put_object(Bucket=BUCKET, Key="e/invalid-format.0000001.jpg", Body=jpeg(200, 150))
    analyser = RekognitionAnalyser("text", {"min_confidence": 50})
    uri = f"s3://aws_default@{BUCKET}/e/"

    response = analyser.run(parse_uri(uri + "too-large.0000000.jpg"))
    assert response["RekoInput"]["reason"] == "ImageTooLargeException from S3"
    assert response["TextDetections"][1]["DetectedText"].startswith("BIB")
    with pytest.raises(FrameAnalysisError, match="60x60 px"):
        analyser.run(parse_uri(uri + "invalid-format.0000000.jpg"))
    with pytest.raises(FrameAnalysisError, match="InvalidImageFormatException"):
        analyser.run(parse_uri(uri + "invalid-format.0000001.jpg"))
    with pytest.raises(FrameAnalysisError, match=r"InvalidS3ObjectException: .*missing\.0000000\.jpg"):
        analyser.run(parse_uri(uri + "missing.0000000.jpg"))
    before = rekognition_server.stats()["faults"]
    with pytest.raises(RetryableAnalysisError, match="InternalServerError"):
        analyser.run(parse_uri(uri + "server-error.0000000.jpg"))
    assert rekognition_server.stats()["faults"] - before == 2  # botocore retried the 5xx once


# ------------------------------------------------------------------------------------------------
# Service Quotas and the limiter
# ------------------------------------------------------------------------------------------------


def quotas_client() -> tuple:
    client = boto3.client("service-quotas", region_name="us-east-1")
    return client, Stubber(client)


QUOTAS = {
    "Quotas": [
        {
            "QuotaCode": "L-AAAA1111",
            "QuotaName": "Transactions per second per account for the DetectFaces operation",
            "Value": 50.0,
        },
        {
            "QuotaCode": "L-BBBB2222",
            "QuotaName": "Transactions per second per account for the DetectText operation",
            "Value": 5.0,
        },
    ]
}


def test_quota_tps_reads_the_applied_quota_when_permitted(aws_env, monkeypatch):
    monkeypatch.setenv("REKO_REKOGNITION_QUOTA_LOOKUP", "true")
    client, stubber = quotas_client()
    stubber.add_response("list_service_quotas", QUOTAS, {"ServiceCode": "rekognition"})
    stubber.add_response(
        "get_service_quota",
        {"Quota": {"QuotaCode": "L-BBBB2222", "Value": 25.0}},
        {"ServiceCode": "rekognition", "QuotaCode": "L-BBBB2222"},
    )
    with stubber:
        assert ratelimit.quota_tps("DetectText", client) == 25.0  # applied value, not the listed default
    # a configured TPS caps the quota (a deployment may use only part of it)
    monkeypatch.setenv("REKO_REKOGNITION_TPS", "10")
    stubber.add_response("list_service_quotas", QUOTAS, {"ServiceCode": "rekognition"})
    stubber.add_response(
        "get_service_quota",
        {"Quota": {"Value": 25.0}},
        {"ServiceCode": "rekognition", "QuotaCode": "L-BBBB2222"},
    )
    with stubber:
        assert ratelimit.quota_tps("DetectText", client) == 10.0
    stubber.assert_no_pending_responses()


def test_quota_tps_falls_back_to_configuration(aws_env, monkeypatch):
    monkeypatch.setenv("REKO_REKOGNITION_TPS", "7")
    client, stubber = quotas_client()
    with stubber:  # lookup not enabled: no call at all
        assert ratelimit.quota_tps("DetectText", client) == 7.0
    monkeypatch.setenv("REKO_REKOGNITION_QUOTA_LOOKUP", "true")
    stubber.add_client_error("list_service_quotas", "AccessDeniedException", http_status_code=403)
    stubber.add_response(
        "list_service_quotas", {"Quotas": QUOTAS["Quotas"][:1]}, {"ServiceCode": "rekognition"}
    )
    with stubber:
        assert ratelimit.quota_tps("DetectText", client) == 7.0  # not permitted
        assert ratelimit.quota_tps("DetectText", client) == 7.0  # no quota for this operation
    stubber.assert_no_pending_responses()


def test_the_host_limiter_shares_one_schedule_between_processes(tmp_path, monkeypatch):
    """Two limiters on one state file (as two processes have) hand out consecutive slots."""
    clock = [1000.0]
    waits: list[float] = []
    monkeypatch.setattr(ratelimit.time, "time", lambda: clock[0])
    monkeypatch.setattr(ratelimit.time, "sleep", waits.append)
    a = ratelimit.HostRateLimiter(2.0, tmp_path / "op.gcra")
    b = ratelimit.HostRateLimiter(2.0, tmp_path / "op.gcra")
    assert [a.acquire(), b.acquire(), a.acquire()] == [0.0, 0.5, 1.0]
    clock[0] += 0.75
    assert b.acquire() == 0.75  # slot at 1001.5, asked at 1000.75
    clock[0] += 10
    assert a.acquire() == 0.0  # idle time is not saved up as a burst
    assert waits == [0.5, 1.0, 0.75]
    clock[0] -= 5000  # a clock jump back (or a stale file) does not block for an hour
    assert b.acquire() == 0.0


def test_the_host_limiters_schedule_is_per_deployment_not_per_host(tmp_path, monkeypatch):
    """Two deployments (two AIRFLOW_HOMEs) on one host get a schedule each (not one in /tmp)."""
    monkeypatch.delenv("REKO_REKOGNITION_LIMITER_DIR", raising=False)
    monkeypatch.setenv("REKO_REKOGNITION_LIMITER", "host")
    paths = []
    for home in ("one", "two"):
        monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / home))
        limiter = ratelimit.get_limiter("DetectText", "eu-west-1", 5.0)
        paths.append(limiter.path)
        assert limiter.path.is_relative_to(tmp_path / home), limiter.path
    assert paths[0] != paths[1]
    monkeypatch.setenv("REKO_REKOGNITION_LIMITER_DIR", str(tmp_path / "shared"))  # chosen: shared
    assert ratelimit.get_limiter("DetectText", "eu-west-1", 5.0).path.parent == tmp_path / "shared"


def test_limiter_sizing(monkeypatch):
    monkeypatch.setenv("REKO_REKOGNITION_HEADROOM", "0.9")
    monkeypatch.setenv("REKO_REKOGNITION_POOL_SLOTS", "3")
    assert ratelimit.limiter_rate(10, scope="host") == pytest.approx(9.0)
    assert ratelimit.limiter_rate(10, scope="task") == pytest.approx(3.0)  # 3 tasks x 3 = 9 TPS
    monkeypatch.setenv("REKO_REKOGNITION_LIMITER", "cluster")
    with pytest.raises(ValueError, match="REKO_REKOGNITION_LIMITER"):
        ratelimit.limiter_rate(10)
    assert ratelimit.pool_cli_command("rekognition", 3) == [
        "airflow", "pools", "set", "rekognition", "3", "Tasks calling Amazon Rekognition"
    ]  # fmt: skip


# ------------------------------------------------------------------------------------------------
# The pipeline against the TPS-limited server
# ------------------------------------------------------------------------------------------------


def upload_frames(s3, store: VideoStore, count: int) -> None:
    prefix = f"{store.video_id}/i{store.interval_ms}ms/frames"
    for index in range(count):
        key = f"work/{prefix}/{store.stem}.{index:07d}.jpg"
        s3.put_object(Bucket=BUCKET, Key=key, Body=jpeg(seed=index))


def check_all_frames_once(s3, server: RekognitionServer, store: VideoStore, count: int) -> None:
    stats = server.stats()
    assert stats["answered_frames"] == count and stats["max_calls_per_frame"] == 1
    assert stats["max_in_window"] <= server.tps
    for index in range(count):
        result = read_json(store.result("aws", "text", index))
        words = [d["DetectedText"] for d in result["response"]["TextDetections"] if d["Type"] == "WORD"]
        assert words[0] == f"BIB{index}" and result["model"] == "rekognition-DetectText:3.0"
        assert result["frame_uri"].endswith(f".{index:07d}.jpg")


def test_a_batch_keeps_several_frames_in_flight_and_survives_throttling(
    s3, rekognition_server, aws_env, monkeypatch, tmp_path
):
    """The client is told 4x the server's limit, so it is throttled; every frame still gets its
    one successful call (botocore's adaptive retries, paced by the limiter) and nothing fails."""
    rekognition_server.tps = 5
    rekognition_server.reset()
    monkeypatch.setenv("REKO_REKOGNITION_TPS", "20")
    monkeypatch.setenv("REKO_REKOGNITION_LIMITER_DIR", str(tmp_path))
    monkeypatch.setenv("REKO_REKOGNITION_THREADS", "4")
    store = VideoStore.for_video(f"s3://aws_default@{BUCKET}/work", "s3://src/throttled.mp4", 1.0)
    upload_frames(s3, store, 24)
    report = analyse_batch(
        store,
        0,
        24,
        backend="aws",
        analyses=["text"],
        interval_s=1.0,
        analysis_options={"min_confidence": 50},
    )
    assert report["failed"] == [] and report["made"] == 24 and report["skipped"] == 0
    assert rekognition_server.stats()["throttled"] > 0
    check_all_frames_once(s3, rekognition_server, store, 24)
    rekognition_server.reset()  # a re-run is served from the results next to the frames
    again = analyse_batch(store, 0, 24, backend="aws", analyses=["text"], interval_s=1.0)
    assert (again["made"], again["skipped"], rekognition_server.stats()["requests"]) == (0, 24, 0)


@pytest.mark.slow
def test_mapped_tasks_share_a_10_tps_quota_and_every_frame_is_analysed_once(s3, rekognition_server, tmp_path):
    """100 frames, 5 processes (mapped tasks) each running the real `analyse_batch`: all frames
    analysed exactly once, none failed, never over the quota in any second (10 s of pacing at least;
    the achieved rate on ~500 frames is measured in bench/bench_rekognition.py)."""
    from reko.localdev.rekognition_batches import reko_batch, run_parallel

    frames, tasks = 100, 5
    rekognition_server.tps = 10
    store = VideoStore.for_video(f"s3://aws_default@{BUCKET}/work", "s3://src/marathon.mp4", 1.0)
    upload_frames(s3, store, frames)
    rekognition_server.reset()
    env = {
        "REKO_REKOGNITION_TPS": "10",
        "REKO_REKOGNITION_LIMITER": "host",
        "REKO_REKOGNITION_LIMITER_DIR": str(tmp_path),
        "AIRFLOW_CONN_AWS_DEFAULT": os.environ["AIRFLOW_CONN_AWS_DEFAULT"],
    }
    size = frames // tasks
    specs = [
        {"store": store.__dict__, "start": s, "end": s + size, "env": env} for s in range(0, frames, size)
    ]
    reports = run_parallel(reko_batch, specs)
    assert [r["failed"] for r in reports] == [[]] * tasks
    assert sum(r["made"] for r in reports) == frames
    check_all_frames_once(s3, rekognition_server, store, frames)
    assert rekognition_server.stats()["accepted"] == frames  # no duplicate successful call


def test_bytes_frames_are_identified_by_content(rekognition_server, aws_env, monkeypatch, tmp_path, s3):
    """file:// frames go as bytes; the server's answer is tied to exactly those bytes."""
    rekognition_server.tps = 1000
    rekognition_server.reset()
    monkeypatch.setenv("REKO_REKOGNITION_LIMITER_DIR", str(tmp_path / "lim"))
    store = VideoStore.for_video((tmp_path / "work").as_uri(), "file:///src/local.mp4", 1.0)
    frames = tmp_path / "work" / store.video_id / "i1000ms" / "frames"
    frames.mkdir(parents=True)
    for index in range(6):
        (frames / f"{store.stem}.{index:07d}.jpg").write_bytes(jpeg(seed=index + 100))
    report = analyse_batch(store, 0, 6, backend="aws", analyses=["text", "labels"], interval_s=1.0)
    assert report["failed"] == [] and report["made"] == 12
    for index in range(6):
        data = (frames / f"{store.stem}.{index:07d}.jpg").read_bytes()
        digest = "sha1:" + hashlib.sha1(data).hexdigest()
        text = read_json(store.result("aws", "text", index))["response"]["TextDetections"][1]["DetectedText"]
        assert text == expected_text(digest)
        assert read_json(store.result("aws", "labels", index))["model"] == "rekognition-DetectLabels:3.0"


def test_ensure_pool_creates_then_resizes_the_rekognition_pool(airflow_db, monkeypatch):
    from airflow.models.pool import Pool

    monkeypatch.setenv("REKO_REKOGNITION_POOL_SLOTS", "3")
    assert ratelimit.ensure_pool()["slots"] == 3
    assert Pool.get_pool("rekognition").slots == 3
    resized = ratelimit.ensure_pool(slots=6)
    assert (resized["name"], resized["slots"]) == ("rekognition", 6) and "TPS" in resized["description"]
    assert Pool.get_pool("rekognition").slots == 6
