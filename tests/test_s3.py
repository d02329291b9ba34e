"""The S3 code paths for real: moto's S3 server on loopback, s3fs under ObjectStoragePath."""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime

import pytest

from reko.localdev.moto_s3 import moto_s3
from reko.storage import (
    VideoStore,
    local_copy,
    parse_uri,
    read_json,
    source_fingerprint,
    video_id_for,
    write_json,
)
from tests.conftest import SAMPLE_VIDEO
from tests.support.short_videos import cut_of

BUCKET_VIDEOS, BUCKET_WORK = "reko-videos", "reko-work"
LANDS_AFTER_S = 8  # the late video is uploaded this long after its run is started
CUT_S = 10  # the late video: the sample's first 10 s (bib 1042 runs through 2.2-7.6 s)


@pytest.fixture(scope="module")
def s3(monkeypatch_module):
    """A moto S3 server on 127.0.0.1 and an `aws_default` connection pointing at it."""
    with moto_s3(BUCKET_VIDEOS, BUCKET_WORK) as (endpoint, client):
        monkeypatch_module.setenv(
            "AIRFLOW_CONN_AWS_DEFAULT",
            json.dumps(
                {
                    "conn_type": "aws",
                    "login": "testing",
                    "password": "testing",
                    "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"},
                }
            ),
        )
        client.upload_file(str(SAMPLE_VIDEO), BUCKET_VIDEOS, "races/race.mp4")
        yield client


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def test_storage_round_trips_through_s3(s3):
    video = parse_uri(f"s3://aws_default@{BUCKET_VIDEOS}/races/race.mp4")
    with local_copy(video) as path:
        assert path.read_bytes() == SAMPLE_VIDEO.read_bytes()
    etag = s3.head_object(Bucket=BUCKET_VIDEOS, Key="races/race.mp4")["ETag"]
    assert source_fingerprint(video) == f"{SAMPLE_VIDEO.stat().st_size}:{etag}"
    store = VideoStore.for_video(f"s3://aws_default@{BUCKET_WORK}/reko", str(video), 1.0)
    assert store.frame(7).name == "race.0000007.jpg"
    write_json(store.result("local", "text", 7), {"ok": "서울"})
    assert read_json(store.result("local", "text", 7)) == {"ok": "서울"}
    assert read_json(store.result("local", "text", 8)) is None
    key = f"reko/{store.video_id}/i1000ms/results/local/text/race.0000007.json"
    assert json.loads(s3.get_object(Bucket=BUCKET_WORK, Key=key)["Body"].read()) == {"ok": "서울"}
    assert video_id_for(str(video)) == video_id_for(f"s3://other_conn@{BUCKET_VIDEOS}/races/race.mp4")


@pytest.mark.slow
def test_video_analysis_reads_the_video_from_s3_and_keeps_its_work_in_s3(
    s3, analysis_dag, os_client, index_names, monkeypatch, tmp_path
):
    """The video lands after the run started: probe defers until it is there, then reads it. Two
    batches, so the mapped path's extract, analyses and load all go through S3."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils.state import DagRunState

    monkeypatch.setenv("REKO_WORK_URI", f"s3://aws_default@{BUCKET_WORK}/runs")
    uri = f"s3://aws_default@{BUCKET_VIDEOS}/landing/race.mp4"
    dag = DagBag(dag_folder=analysis_dag.fileloc).dags["video_analysis"]  # its own copy: conf leaks
    dag.get_task("probe").poke_interval = 1  # the deployment polls every 30 s
    # the run's probe starts within a few seconds, finds no video and defers; the trigger sees
    # the upload (a probe that did not wait fails: there is no video to read)
    uploaded_at: list[datetime] = []
    late_video = cut_of(SAMPLE_VIDEO, tmp_path / "race.mp4", 0, CUT_S)

    def upload() -> None:
        s3.upload_file(str(late_video), BUCKET_VIDEOS, "landing/race.mp4")
        uploaded_at.append(datetime.now(UTC))

    timer = threading.Timer(LANDS_AFTER_S, upload)
    timer.start()
    try:
        dag_run = dag.test(run_conf={"video_uri": uri, "video_wait_s": 120, "batch_size": CUT_S // 2})
    finally:
        timer.cancel()
    assert dag_run.state == DagRunState.SUCCESS
    (probe,) = [ti for ti in dag_run.get_task_instances() if ti.task_id == "probe"]
    assert probe.start_date < uploaded_at[0] < probe.end_date  # one task that waited, then probed
    batches = [ti.map_index for ti in dag_run.get_task_instances() if ti.task_id == "analyse_frames"]
    assert sorted(batches) == [0, 1]  # the mapped path, not the short one

    video_id = video_id_for(uri)
    keys = [
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=BUCKET_WORK, Prefix=f"runs/{video_id}/"
        )
        for o in page.get("Contents", [])
    ]
    frames = sorted(k for k in keys if k.endswith(".jpg"))
    assert frames == [f"runs/{video_id}/i1000ms/frames/race.{i:07d}.jpg" for i in range(CUT_S)]
    assert sum(1 for k in keys if "/results/local/text/" in k and k.endswith(".json")) == CUT_S
    doc = os_client.get(index=index_names.videos, id=video_id)["_source"]
    assert doc["status"] == "complete" and doc["source_uri"] == uri and doc["frame_count"] == CUT_S
    assert doc["frames_uri"].startswith(f"s3://aws_default@{BUCKET_WORK}/runs/{video_id}/")
    hits = os_client.search(
        index=index_names.segments,
        body={
            "query": {
                "bool": {"filter": [{"term": {"video_id": video_id}}, {"term": {"value_norm": "1042"}}]}
            }
        },
    )["hits"]["hits"]
    assert len(hits) == 1


def test_identical_frames_in_s3_are_recognised_from_one_listing_without_downloads(s3):
    from reko.media import frame_name
    from reko.pipeline import _frame_digests

    store = VideoStore.for_video(f"s3://aws_default@{BUCKET_WORK}/digests", "s3://b/static.mp4", 1.0)
    prefix = str(store.frames_dir).split(f"{BUCKET_WORK}/", 1)[1]
    for index, body in enumerate([b"A" * 100, b"B" * 100, b"B" * 100, b"C" * 100]):
        s3.put_object(Bucket=BUCKET_WORK, Key=f"{prefix}/{frame_name(store.stem, index)}", Body=body)
    digests = _frame_digests(store, 1, 4)
    assert sorted(digests) == [0, 1, 2, 3]
    assert digests[1] == digests[2] and len({digests[0], digests[1], digests[3]}) == 3


class TaskLog:
    """The task's logger, keeping its lines (Airflow's structlog output bypasses caplog)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, msg: str, *args: object) -> None:
        self.lines.append(msg % args if args else msg)

    warning = error = debug = info


def test_a_missing_video_is_waited_for_with_its_key_and_deadline_logged_for_the_param(s3):
    """The wait is the run's `video_wait_s` Param; the log names the key and the deadline (the
    trigger only logs "Sleeping for 30.0 seconds"); a timeout names the key and is not retried."""
    from datetime import timedelta

    from airflow.sdk.bases.operator import TRIGGER_FAIL_REPR, TriggerFailureReason
    from airflow.sdk.exceptions import AirflowSensorTimeout, TaskDeferred

    from reko.operators import ProbeVideoOperator

    uri = f"s3://aws_default@{BUCKET_VIDEOS}/late/race.mp4"
    sensor = ProbeVideoOperator(  # the analysis DAG's probe waits for the video before reading it
        task_id="probe", video_uri=uri, poke_interval=5, wait_s="90", short_task_id="a", mapped_task_id="b"
    )
    sensor._cached_logger = TaskLog()
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})
    assert deferred.value.timeout == timedelta(seconds=90)
    assert deferred.value.method_name == "execute_complete"  # then it probes and chooses the path
    assert deferred.value.trigger.bucket_key == "late/race.mp4"
    waiting = [line for line in sensor._cached_logger.lines if line.startswith("Waiting for")]
    assert len(waiting) == 1, sensor._cached_logger.lines
    assert f"s3://{BUCKET_VIDEOS}/late/race.mp4" in waiting[0] and "until 20" in waiting[0]
    assert "90 s from now (Param video_wait_s)" in waiting[0]
    with pytest.raises(AirflowSensorTimeout, match=r"late/race\.mp4 did not appear within 90 s"):
        sensor.resume_execution(TRIGGER_FAIL_REPR, {"error": TriggerFailureReason.TRIGGER_TIMEOUT}, {})


def test_the_video_wait_is_a_param_of_the_analysis_dag(analysis_dag):
    param = analysis_dag.params.get_param("video_wait_s")
    assert param.value == 3600 and param.schema["type"] == "integer" and param.schema.get("title")
    assert analysis_dag.get_task("probe").wait_s == "{{ params.video_wait_s }}"


def test_a_bare_s3_uri_uses_the_configured_aws_connection_in_every_stage(s3, monkeypatch, tmp_path):
    """`s3://bucket/key` without a connection id: the wait, probe, frame listing, presigned URLs
    and MediaConvert all use `REKO_AWS_CONN_ID`, never the worker's ambient credentials (pointed
    here at a closed port, so any stage that fell back to them would fail)."""
    from airflow.sdk.io.store import _STORE_CACHE

    from reko.archive import presigned_url
    from reko.aws.mediaconvert import list_frames
    from reko.aws.sensors import VideoObjectSensor
    from reko.operators import CutClipOperator, ExtractFramesOperator
    from reko.pipeline import RunConfig, probe_video

    conn = json.loads(os.environ["AIRFLOW_CONN_AWS_DEFAULT"])
    monkeypatch.setenv("AIRFLOW_CONN_REKO_S3", json.dumps(conn))
    monkeypatch.setenv(
        "AIRFLOW_CONN_AWS_DEFAULT", json.dumps({**conn, "extra": {"endpoint_url": "http://127.0.0.1:9"}})
    )
    monkeypatch.setenv("REKO_AWS_CONN_ID", "reko_s3")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # the ambient default: nothing answers
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    _STORE_CACHE.clear()
    uri = f"s3://{BUCKET_VIDEOS}/races/race.mp4"
    try:
        assert parse_uri(uri).conn_id == "reko_s3"
        cfg = RunConfig.from_params(
            {
                "video_uri": uri,
                "backend": "local",
                "frame_interval_s": 1.0,
                "analyses": ["text"],
                "min_confidence": 50,
            }
        )
        job = probe_video(cfg, tmp_path.as_uri())
        assert round(job.info.duration_s) == 38

        sensor = VideoObjectSensor(task_id="wait_for_video", video_uri=uri, deferrable=True, wait_s=60)
        sensor.execute({})  # the key is there: no deferral
        assert sensor.aws_conn_id == "reko_s3"

        s3.put_object(Bucket=BUCKET_WORK, Key="bare/frames/race.0000000.jpg", Body=b"x")
        assert list_frames(f"s3://{BUCKET_WORK}/bare/frames/") == [0]
        assert presigned_url(uri).startswith(conn["extra"]["endpoint_url"])
        assert ExtractFramesOperator(task_id="extract_frames", probed={}).aws_conn_id == "reko_s3"
        assert CutClipOperator(task_id="cut_clip", item={}).aws_conn_id == "reko_s3"
    finally:
        _STORE_CACHE.clear()
