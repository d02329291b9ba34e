"""A worker killed in the middle of an analysis batch, under the real scheduler (LocalExecutor).

The fault-injecting analyser SIGKILLs its own process (the Airflow task process) the first time it
meets a chosen frame; Airflow sees the task die, retries it (video_analysis: retries=2,
retry_delay=15 s), and the retry analyses only the frames that have no stored result. The index
afterwards equals a clean run's of the same clip.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from reko.media import extract_frames
from tests.conftest import SAMPLE_VIDEO
from tests.support.same_index import assert_same_index, index_state

pytestmark = pytest.mark.slow
DAG_ID = "video_analysis"
CLIP_START_S, CLIP_FRAMES = 2, 6  # bibs 1042 and 257 are in view
KILL_AT = 3  # frames 0-2 are analysed and stored before the worker dies


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-ss", str(CLIP_START_S), "-i", str(SAMPLE_VIDEO), "-t", str(CLIP_FRAMES)]
        + ["-an", "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", str(path)],
        check=True,
    )
    return path


@pytest.fixture(scope="module")
def deployment(opensearch_url, tmp_path_factory):
    """api-server, scheduler, dag-processor and triggerer on 127.0.0.1, with the killing analyser."""
    from reko.localdev.airflow_services import AirflowServices, opensearch_connection
    from reko.localdev.opensearch import free_port

    root = tmp_path_factory.mktemp("reliability-scheduler")
    faults = {"kill": root / "kill.json", "marker": root / "killed.pid", "calls": root / "calls.log"}
    faults["kill"].write_text("[]")
    services = AirflowServices(
        root / "airflow",
        free_port(),
        extra_env={
            "AIRFLOW_CONN_OPENSEARCH_DEFAULT": opensearch_connection(opensearch_url),
            "REKO_WORK_URI": (root / "work").as_uri(),
            "REKO_INDEX_PREFIX": os.environ["REKO_INDEX_PREFIX"],
            "REKO_LOCAL_TEXT_ANALYSER": "tests.support.faulty:FaultyTextAnalyser",
            "REKO_TEST_KILL_HASHES": str(faults["kill"]),
            "REKO_TEST_KILL_MARKER": str(faults["marker"]),
            "REKO_TEST_CALLS_LOG": str(faults["calls"]),
        },
    )
    services.start()
    try:
        client = services.client()
        client.wait_for_dag(DAG_ID)
        yield client, root, faults
    finally:
        services.stop()


def place(clip: Path, root: Path, name: str) -> str:
    target = root / name / "clip.mp4"
    target.parent.mkdir(parents=True)
    shutil.copy2(clip, target)
    return target.as_uri()


def test_a_worker_killed_mid_batch_is_retried_by_airflow_and_redoes_only_unfinished_frames(
    deployment, clip, os_client, index_names
):
    client, root, faults = deployment
    frames = root / "frames"
    extract_frames(clip, frames, "clip", 1.0)
    digest = [
        hashlib.sha1((frames / f"clip.{i:07d}.jpg").read_bytes()).hexdigest() for i in range(CLIP_FRAMES)
    ]
    assert len(set(digest)) == CLIP_FRAMES  # no frame is skipped as identical to the one before

    clean_uri = place(clip, root, "clean")
    assert client.wait_for_run(DAG_ID, client.trigger(DAG_ID, {"video_uri": clean_uri})) == "success"
    clean = index_state(os_client, index_names, clean_uri)

    faults["kill"].write_text(json.dumps([digest[KILL_AT]]))
    faults["calls"].write_text("")
    uri = place(clip, root, "killed")
    run_id = client.trigger(DAG_ID, {"video_uri": uri, "batch_size": CLIP_FRAMES})  # one batch
    assert client.wait_for_run(DAG_ID, run_id) == "success"

    killed_pid = int(faults["marker"].read_text())  # the kill happened, in a task process
    assert killed_pid != os.getpid()
    (ti,) = [t for t in client.task_instances(DAG_ID, run_id) if t["task_id"] == "analyse_frames"]
    assert (ti["map_index"], ti["state"], ti["try_number"]) == (0, "success", 2)
    history = client.call("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/analyse_frames/0/tries")
    assert [(t["try_number"], t["state"]) for t in history["task_instances"]] == [
        (1, "failed"),
        (2, "success"),
    ]
    # frames 0-2 were stored before the kill and not analysed again; frame 3 died mid-analysis
    assert faults["calls"].read_text().split() == digest[: KILL_AT + 1] + digest[KILL_AT:]
    assert_same_index(clean, index_state(os_client, index_names, uri))
    (doc,) = index_state(os_client, index_names, uri).docs["videos"].values()
    assert doc["status"] == "complete" and doc["run_id"] == run_id
    # the video document counts the retry's calls: frames 3-5 made, 0-2 found in the cache
    assert (doc["api_calls"]["made"], doc["api_calls"]["skipped_cached"]) == (CLIP_FRAMES - KILL_AT, KILL_AT)
