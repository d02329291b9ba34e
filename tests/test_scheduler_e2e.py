"""`video_analysis` under the real scheduler, driven through the REST API v2 like a user would.

Also the frame-level retry: clearing one failed mapped task re-analyses only its frames that
have no stored result; and `video_clips`, started by the analysis asset and by hand.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest

from reko.media import extract_frames
from reko.storage import video_id_for
from tests.conftest import SAMPLE_VIDEO, snapshot
from tests.support.same_index import assert_same_index, index_state
from tests.support.short_videos import copy_under, cut_of

pytestmark = pytest.mark.slow
DAG_ID = "video_analysis"
CLIPS_DAG_ID = "video_clips"
WATCHLIST = ["1042", "3318"]


@pytest.fixture(scope="module")
def deployment(shared_airflow, tmp_path_factory):
    """The shared deployment (api-server, scheduler, dag-processor and triggerer on 127.0.0.1, with a
    fault-injecting analyser), with video_clips unpaused before any analysis, so asset events start it."""
    root = tmp_path_factory.mktemp("scheduler")
    faults = {"fail": shared_airflow.faults.fail, "calls": shared_airflow.faults.calls}
    watchlist = {"reko_clip_watchlist": json.dumps(WATCHLIST)}
    with shared_airflow.use([DAG_ID, CLIPS_DAG_ID], variables=watchlist) as client:
        yield client, root, faults


def map_states(client, run_id: str) -> dict[str, dict[int, str]]:
    states: dict[str, dict[int, str]] = {}
    for ti in client.task_instances(DAG_ID, run_id):
        states.setdefault(ti["task_id"], {})[ti["map_index"]] = ti["state"]
    return states


@pytest.fixture(scope="module")
def plain_run(deployment) -> tuple[Path, str, str]:
    """The sample copy triggered once through the REST API with default settings: the video, the run
    id and the run's end state. The clips test reuses it (one analysis under the scheduler, not two)."""
    client, root, _ = deployment
    video = copy_under(SAMPLE_VIDEO, root, "plain")
    run_id = client.trigger(DAG_ID, {"video_uri": video.as_uri()})
    return video, run_id, client.wait_for_run(DAG_ID, run_id)


def test_triggered_through_the_rest_api_the_run_succeeds(deployment, plain_run, os_client, index_names):
    client, _, _ = deployment
    video, run_id, state = plain_run
    assert state == "success"
    states = map_states(client, run_id)
    assert set(states["analyse_frames"].values()) == {"success"} and len(states["analyse_frames"]) > 1
    assert states["fail_run_on_failed_frames"] == {-1: "skipped"}
    doc = os_client.get(index=index_names.videos, id=video_id_for(video.as_uri()))["_source"]
    assert doc["status"] == "complete" and doc["run_id"] == run_id and doc["counts"]["detections"] > 100
    names = {ti["rendered_map_index"] for ti in client.task_instances(DAG_ID, run_id) if ti["map_index"] >= 0}
    assert names == {"frames 0-24", "frames 25-37"}


def test_clearing_one_failed_map_index_reanalyses_only_its_missing_frames(deployment, os_client, index_names):
    """On a 10-second cut in two batches of 5 (control flow, not reading): frames 3 and 8 fail."""
    client, root, faults = deployment
    video = cut_of(SAMPLE_VIDEO, root / "retry" / "race.mp4", 0, 10)
    frames = root / "retry-frames"
    extract_frames(video, frames, "race", 1.0)
    digest = {i: hashlib.sha1((frames / f"race.{i:07d}.jpg").read_bytes()).hexdigest() for i in (3, 8)}
    faults["fail"].write_text(json.dumps(list(digest.values())))
    faults["calls"].write_text("")

    run_id = client.trigger(DAG_ID, {"video_uri": video.as_uri(), "batch_size": 5})
    assert client.wait_for_run(DAG_ID, run_id) == "failed"
    states = map_states(client, run_id)
    assert [i for i, s in sorted(states["analyse_frames"].items()) if s == "failed"] == [0, 1]
    assert states["load_detections"] == {-1: "success"} and states["write_video_document"] == {-1: "success"}
    video_id = video_id_for(video.as_uri())
    doc = os_client.get(index=index_names.videos, id=video_id)["_source"]
    assert [f["frame_index"] for f in doc["failed_frames"]] == [3, 8]
    assert len(faults["calls"].read_text().split()) == 10

    # the fault is fixed; clear only map index 0 (frames 0-4) and what depends on it
    faults["fail"].write_text("[]")
    faults["calls"].write_text("")
    client.call(
        "POST",
        f"/dags/{DAG_ID}/clearTaskInstances",
        {
            "dry_run": False,
            "dag_run_id": run_id,
            "task_ids": [["analyse_frames", 0]],
            "only_failed": False,
            "include_downstream": True,
        },
    )
    assert client.wait_for_run(DAG_ID, run_id) == "failed"  # map index 1 is still failed
    assert faults["calls"].read_text().split() == [digest[3]]  # only frame 3 was analysed again
    states = map_states(client, run_id)
    assert states["analyse_frames"][0] == "success" and states["analyse_frames"][1] == "failed"
    doc = os_client.get(index=index_names.videos, id=video_id)["_source"]
    assert [f["frame_index"] for f in doc["failed_frames"]] == [8]

    client.call(
        "POST",
        f"/dags/{DAG_ID}/clearTaskInstances",
        {
            "dry_run": False,
            "dag_run_id": run_id,
            "task_ids": [["analyse_frames", 1]],
            "include_downstream": True,
            "only_failed": False,
        },
    )
    assert client.wait_for_run(DAG_ID, run_id) == "success"
    assert faults["calls"].read_text().split() == [digest[3], digest[8]]
    doc = os_client.get(index=index_names.videos, id=video_id)["_source"]
    assert doc["status"] == "complete" and doc["failed_frames"] == []


def wait_for_clips(os_client, index: str, video_id: str, timeout_s: float = 300) -> dict[str, dict]:
    """This video's clips, once some exist (the asset-triggered run registers them)."""
    deadline = time.monotonic() + timeout_s
    while not (clips := snapshot(os_client, index, video_id)) and time.monotonic() < deadline:
        time.sleep(3)
    return clips


def test_clips_follow_every_analysis_through_the_asset_and_on_request(
    deployment, plain_run, os_client, index_names
):
    client, _, _ = deployment
    video, _, state = plain_run
    video_id = video_id_for(video.as_uri())
    assert state == "success"

    clips = wait_for_clips(os_client, index_names.clips, video_id)
    assert sorted({c["subject_norm"] for c in clips.values()}) == sorted(WATCHLIST)
    assert sum(c["subject_norm"] == "3318" for c in clips.values()) == 2  # seen twice, far apart
    (run_id,) = {c["run_id"] for c in clips.values()}
    assert client.wait_for_run(CLIPS_DAG_ID, run_id) == "success"  # clips are registered before it ends
    run = client.call("GET", f"/dags/{CLIPS_DAG_ID}/dagRuns/{run_id}")
    assert run["run_type"] == "asset_triggered" and run["state"] == "success"

    run_id = client.trigger(CLIPS_DAG_ID, {"subject": "257", "video_ids": [video_id]})
    assert client.wait_for_run(CLIPS_DAG_ID, run_id) == "success"
    clips = snapshot(os_client, index_names.clips, video_id)
    (clip,) = [c for c in clips.values() if c["subject_norm"] == "257"]
    assert clip["run_id"] == run_id and Path(clip["clip_uri"].removeprefix("file://")).stat().st_size > 10_000
    mapped = [ti for ti in client.task_instances(CLIPS_DAG_ID, run_id) if ti["map_index"] >= 0]
    start_s, end_s = clip["requested_start_ms"] / 1000, clip["requested_end_ms"] / 1000
    assert [ti["rendered_map_index"] for ti in mapped] == [f"257 @ {video_id} {start_s:.1f}-{end_s:.1f}s"]


def test_the_same_video_triggered_twice_at_once_is_analysed_once(deployment, os_client, index_names):
    """The second run waits for the first's lease, then finds every frame analysed; both notes summarise.

    On the sample's first 13 s: 4 frames at 4-s intervals (the lease, not reading, is under test)."""
    client, root, faults = deployment
    faults["fail"].write_text("[]")
    faults["calls"].write_text("")
    video = cut_of(SAMPLE_VIDEO, root / "twice" / "race.mp4", 0, 13)
    reference = copy_under(video, root, "twice-reference")
    conf = {"video_uri": video.as_uri(), "frame_interval_s": 4.0}
    first, second = client.trigger(DAG_ID, conf), client.trigger(DAG_ID, conf)
    assert client.wait_for_run(DAG_ID, first) == "success"
    assert client.wait_for_run(DAG_ID, second) == "success"
    calls = faults["calls"].read_text().split()
    assert len(calls) == 4 and len(set(calls)) == 4  # 4 frames, each analysed by one run only

    notes = [client.call("GET", f"/dags/{DAG_ID}/dagRuns/{run}")["note"] or "" for run in (first, second)]
    video_id = video_id_for(video.as_uri())
    assert all(f"**{video_id}: complete**" in note for note in notes), notes
    assert sorted("- calls: 4 made" in note for note in notes) == [False, True], notes  # one run made them

    ref_conf = {"video_uri": reference.as_uri(), "frame_interval_s": 4.0}
    assert client.wait_for_run(DAG_ID, client.trigger(DAG_ID, ref_conf)) == "success"
    assert_same_index(
        index_state(os_client, index_names, reference.as_uri()),
        index_state(os_client, index_names, video.as_uri()),
        kinds=("detections", "segments"),
    )
    assert os_client.get(index=index_names.videos, id=video_id)["_source"]["run_id"] in (first, second)


def test_task_processes_are_forked_with_the_task_modules_loaded(shared_airflow):
    """The LocalExecutor's workers, which fork every task process, were forked from a scheduler
    that had imported reko's task modules (`reko.preload`): the models' native libraries are
    mapped in each of them, though a worker itself never imports anything for a task."""
    import psutil

    scheduler = psutil.Process(shared_airflow.services.procs["scheduler"].pid)
    workers = [p for p in scheduler.children() if "LocalExecutor" in " ".join(p.cmdline())]
    assert len(workers) == 8  # the deployment's parallelism
    for worker in workers:
        maps = Path(f"/proc/{worker.pid}/maps").read_text()
        assert "onnxruntime" in maps and "cv2" in maps and "tesserocr" in maps, worker.pid
