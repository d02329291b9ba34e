"""`backend=aws` end to end through dag.test(), everything over real HTTP on loopback.

S3 is moto's server; MediaConvert is a fake that really captures frames and cuts clips into that
S3 (tests/support/mediaconvert_server.py); Rekognition is a fake with a TPS limit whose answers
are derived from the S3 key (plugins/reko/localdev/rekognition_server.py). The DAGs, operators, trigger,
sensor, hooks, limiter and indexer are the real ones.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reko.localdev.moto_s3 import moto_s3
from reko.localdev.rekognition_server import RekognitionServer, expected_text
from reko.storage import video_id_for
from tests.conftest import SAMPLE_VIDEO, snapshot
from tests.support.mediaconvert_server import connection_json, fake_mediaconvert

pytestmark = pytest.mark.slow
VIDEOS, WORK = "reko-aws-videos", "reko-aws-work"
VIDEO_URI = f"s3://aws_default@{VIDEOS}/races/race.mp4"


@pytest.fixture(scope="module")
def aws(airflow_db, opensearch_url):
    """moto S3 + fake MediaConvert + fake Rekognition behind one `aws_default` connection."""
    from airflow.dag_processing.dagbag import DagBag

    with (
        moto_s3(VIDEOS, WORK) as (s3_endpoint, s3),
        fake_mediaconvert(s3_endpoint) as mediaconvert,
        pytest.MonkeyPatch.context() as mp,
    ):
        s3.upload_file(str(SAMPLE_VIDEO), VIDEOS, "races/race.mp4")
        rekognition = RekognitionServer(tps=20)
        rekognition.start()
        conn = json.loads(connection_json(mediaconvert.endpoint, s3_endpoint))
        conn["extra"]["service_config"]["rekognition"] = {"endpoint_url": rekognition.endpoint}
        mp.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(conn))
        mp.setenv("REKO_WORK_URI", f"s3://aws_default@{WORK}/work")
        mp.setenv("REKO_MEDIACONVERT_POLL_S", "1")
        mp.setenv("REKO_REKOGNITION_TPS", "20")
        dags = DagBag(dag_folder=str(Path(__file__).parents[1] / "dags")).dags
        try:
            yield {"s3": s3, "mc": mediaconvert, "rek": rekognition, "dags": dags}
        finally:
            rekognition.stop()


def states(dag_run) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for ti in dag_run.get_task_instances():
        out.setdefault(ti.task_id, set()).add(ti.state)
    return out


def keys(s3, bucket: str, suffix: str) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []) if o["Key"].endswith(suffix))


@pytest.fixture(scope="module")
def analysed(aws, os_client):
    from reko.index.client import IndexNames

    index_names = IndexNames.current()
    dag_run = aws["dags"]["video_analysis"].test(run_conf={"video_uri": VIDEO_URI, "backend": "aws"})
    assert dag_run.state == "success", states(dag_run)
    video_id = video_id_for(VIDEO_URI)
    return {
        "video_id": video_id,
        "run": dag_run,
        "video": os_client.get(index=index_names.videos, id=video_id)["_source"],
        "detections": snapshot(os_client, index_names.detections, video_id),
        "rek": aws["rek"].stats(),
        "jobs": len(aws["mc"].jobs),
    }


def test_mediaconvert_frames_rekognition_text_and_the_index_agree(aws, analysed):
    video = analysed["video"]
    assert video["backend"] == "aws" and video["status"] == "complete"
    frames = keys(aws["s3"], WORK, ".jpg")
    assert len(frames) == video["frame_count"] == 38  # same count as the local backend
    assert frames[0].endswith("race.0000000.jpg") and frames[-1].endswith("race.0000037.jpg")
    assert analysed["jobs"] == 1
    # every frame was sent once, as an S3 object, and its answer was indexed at its timestamp
    assert analysed["rek"]["answered_frames"] == 38 and analysed["rek"]["max_calls_per_frame"] == 1
    words = {d["value"]: d for d in analysed["detections"].values() if d["text_type"] == "WORD"}
    for index, key in enumerate(frames):
        word = words[expected_text(key)]
        assert word["frame_index"] == index and word["timestamp_ms"] == index * 1000
        assert word["frame_uri"] == f"s3://aws_default@{WORK}/{key}"
    assert video["api_calls"] == {
        "made": 38,
        "skipped": 0,
        "skipped_cached": 0,
        "skipped_duplicates": 0,
        "price_per_1000": 1.0,
        "estimated_cost_usd": 0.038,  # 38 images at the default $1 per 1,000
    }
    # the job's proxy: 38 s of output at the default $0.0075 per minute, in the run's cost
    assert video["mediaconvert"] == {
        "jobs": 1,
        "proxy_minutes": 0.6333,
        "price_per_minute": 0.0075,
        "estimated_cost_usd": 0.00475,
    }
    assert video["run_cost_usd"] == 0.04275


def test_a_second_run_submits_no_job_and_calls_rekognition_for_nothing(aws, analysed, os_client, index_names):
    before = aws["rek"].stats()["requests"]
    dag_run = aws["dags"]["video_analysis"].test(run_conf={"video_uri": VIDEO_URI, "backend": "aws"})
    assert dag_run.state == "success"
    assert len(aws["mc"].jobs) == analysed["jobs"]
    assert aws["rek"].stats()["requests"] == before
    video = os_client.get(index=index_names.videos, id=analysed["video_id"])["_source"]
    assert video["api_calls"]["made"] == 0 and video["api_calls"]["skipped"] == 38
    assert video["mediaconvert"]["jobs"] == 0 and video["run_cost_usd"] == 0.0  # this run: nothing
    # ... and what the first run cost is kept
    assert video["totals"] == {
        "runs": 2,
        "api_calls_made": 38,
        "api_calls_skipped": 38,
        "mediaconvert_jobs": 1,
        "mediaconvert_proxy_minutes": 0.6333,
        "estimated_cost_usd": 0.04275,
    }
    assert snapshot(os_client, index_names.detections, analysed["video_id"]) == analysed["detections"]


def test_a_clip_is_cut_by_mediaconvert_into_s3(aws, analysed, os_client, index_names):
    subject = expected_text("race.0000005.jpg")
    dag_run = aws["dags"]["video_clips"].test(
        run_conf={"subject": subject, "backend": "aws", "padding_s": 1, "min_confidence": 50}
    )
    assert dag_run.state == "success", states(dag_run)
    (clip,) = list(snapshot(os_client, index_names.clips, analysed["video_id"]).values())
    # seen in frame 5 only: [5 s, 6 s) padded by 1 s
    assert (clip["requested_start_ms"], clip["requested_end_ms"]) == (4000, 7000)
    assert (clip["start_ms"], clip["end_ms"], clip["duration_s"]) == (4000, 7000, 3.0)
    assert clip["method"] == "mediaconvert" and clip["backend"] == "aws"
    key = clip["clip_uri"].split(f"{WORK}/", 1)[1]
    assert aws["s3"].head_object(Bucket=WORK, Key=key)["ContentLength"] == clip["size_bytes"] > 1000
