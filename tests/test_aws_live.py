"""Opt-in: the AWS backend against real AWS (billed: about a minute of SD/HD output, ~40 images).

Run with REKO_LIVE_AWS=1, AWS credentials in the usual boto3 places, and
REKO_LIVE_BUCKET (a bucket in the region, for input and outputs), REKO_LIVE_MEDIACONVERT_ROLE
(a role MediaConvert can assume with read/write on that bucket), optionally AWS_DEFAULT_REGION.
It checks what the loopback fake cannot: that MediaConvert accepts these settings (frame capture
with a video-only proxy, a no-audio clip) and that its frames and clip frames match the local
backend's; and the whole `video_analysis` DAG with backend=aws (MediaConvert, Rekognition, and
Amazon OpenSearch Service when REKO_LIVE_OPENSEARCH_CONN holds an `opensearch` connection JSON with
SigV4 extras; otherwise the local node).
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid

import pytest

from reko.aws.mediaconvert import list_frames
from reko.aws.mediaconvert_jobs import clip_frames, clip_settings, frame_capture_settings
from reko.aws.operators import MediaConvertCreateJobOperator
from reko.media import expected_frame_count
from tests.conftest import SAMPLE_VIDEO

pytestmark = [
    pytest.mark.live_aws,
    pytest.mark.skipif(
        os.environ.get("REKO_LIVE_AWS") != "1", reason="set REKO_LIVE_AWS=1 to run against AWS"
    ),
]


@pytest.fixture(scope="module")
def live(monkeypatch_module_live):
    bucket, role = os.environ["REKO_LIVE_BUCKET"], os.environ["REKO_LIVE_MEDIACONVERT_ROLE"]
    region = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch_module_live.setenv(
        "AIRFLOW_CONN_AWS_LIVE",
        json.dumps({"conn_type": "aws", "extra": {"region_name": region, "mediaconvert_role_arn": role}}),
    )
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    prefix = f"reko-live-test/{uuid.uuid4().hex[:8]}"
    s3 = S3Hook(aws_conn_id="aws_live")
    s3.load_file(str(SAMPLE_VIDEO), f"{prefix}/race.mp4", bucket_name=bucket)
    yield bucket, prefix, s3
    keys = s3.list_keys(bucket_name=bucket, prefix=f"{prefix}/")
    if keys:
        s3.delete_objects(bucket, keys)


@pytest.fixture(scope="module")
def monkeypatch_module_live():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def _run(settings: dict) -> dict:
    op = MediaConvertCreateJobOperator(
        task_id="live", settings=settings, aws_conn_id="aws_live", deferrable=False, waiter_delay=10
    )
    return op.execute({})


def test_frame_capture_on_aws_matches_the_local_backend(live):
    bucket, prefix, _ = live
    frames = f"s3://{bucket}/{prefix}/frames/"
    settings = frame_capture_settings(f"s3://{bucket}/{prefix}/race.mp4", frames, 1.0, 38)
    assert _run(settings)["status"] == "COMPLETE"
    assert list_frames(frames, aws_conn_id="aws_live") == list(range(expected_frame_count(38.0, 1.0)))


def test_clip_on_aws_holds_the_requested_frames(live, tmp_path):
    bucket, prefix, s3 = live
    key = f"{prefix}/clips/race-12000-15000.mp4"
    settings = clip_settings(
        f"s3://{bucket}/{prefix}/race.mp4", f"s3://{bucket}/{key}", 12_000, 15_000, 25, audio=False
    )
    assert _run(settings)["status"] == "COMPLETE"
    local = tmp_path / "clip.mp4"
    s3.get_key(key, bucket).download_file(str(local))
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0"]
        + ["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", str(local)],
        capture_output=True,
        check=True,
    )
    first, last = clip_frames(12_000, 15_000, 25)
    assert int(out.stdout.strip()) == last - first + 1


def test_the_analysis_dag_runs_on_aws(live, monkeypatch, opensearch_url, airflow_db):
    from pathlib import Path

    from airflow.dag_processing.dagbag import DagBag

    bucket, prefix, _ = live
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", os.environ["AIRFLOW_CONN_AWS_LIVE"])
    monkeypatch.setenv("REKO_WORK_URI", f"s3://aws_default@{bucket}/{prefix}/work")
    monkeypatch.setenv("REKO_MEDIACONVERT_POLL_S", "10")
    if os.environ.get("REKO_LIVE_OPENSEARCH_CONN"):
        monkeypatch.setenv("AIRFLOW_CONN_OPENSEARCH_DEFAULT", os.environ["REKO_LIVE_OPENSEARCH_CONN"])
    dag = DagBag(dag_folder=str(Path(__file__).parents[1] / "dags" / "video_analysis.py")).dags[
        "video_analysis"
    ]
    video_uri = f"s3://aws_default@{bucket}/{prefix}/race.mp4"
    dag_run = dag.test(run_conf={"video_uri": video_uri, "backend": "aws"})
    assert dag_run.state == "success"
    from reko.index.client import IndexNames, get_client
    from reko.storage import video_id_for

    doc = get_client().get(index=IndexNames.current().videos, id=video_id_for(video_uri))["_source"]
    assert doc["backend"] == "aws" and doc["frame_count"] == 38 and doc["counts"]["detections"] > 0
    assert doc["api_calls"]["made"] + doc["api_calls"]["skipped_duplicates"] == 38
