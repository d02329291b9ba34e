"""Faults under the real scheduler (LocalExecutor), recovered the way an operator would.

1. A worker killed in the middle of an analysis (a 6-frame clip: the short path, one task for the
   whole run): the fault-injecting analyser SIGKILLs its own process (the Airflow task process)
   the first time it meets a chosen frame; Airflow sees the task die, retries it (video_analysis:
   retries=2, retry_delay=15 s), and the retry analyses only the frames that have no stored result.
2. A frame that is not an image: its batch fails (red), everything else is indexed; once the frame
   is restored, clearing that one mapped task through the REST API re-analyses only that frame.

Each ends with the index equal to a clean run's of the same clip. The two faulted runs (of two
different clips, so the analyser's choice of frame by content cannot cross over) run at the same
time, as do the two clean runs, to keep the module near two minutes.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from reko.media import extract_frames
from tests.conftest import SAMPLE_VIDEO
from tests.support.same_index import assert_same_index, index_state
from tests.support.short_videos import copy_under, cut_of

pytestmark = pytest.mark.slow
DAG_ID = "video_analysis"
SHORT_TASK = "probe"  # a short video is analysed whole in its probe
KILL_CLIP = (2, 6)  # start, seconds (= frames at 1 s): bibs 1042 and 257 are in view
KILL_AT = 3  # frames 0-2 are analysed and stored before the worker dies
BAD_CLIP = (20, 4)  # bibs 781 and 2465
BAD_FRAME, BAD_BATCH = 1, 2  # frame 1 spoils map index 0 (frames 0-1)


def cut(tmp_path_factory, start_s: int, seconds: int) -> Path:
    """A cut of the sample (re-encoded, so it starts on a key frame)."""
    return cut_of(SAMPLE_VIDEO, tmp_path_factory.mktemp(f"clip-{start_s}") / "clip.mp4", start_s, seconds)


def digests(frames: Path) -> list[str]:
    return [hashlib.sha1(p.read_bytes()).hexdigest() for p in sorted(frames.glob("clip.*.jpg"))]


@pytest.fixture(scope="module")
def deployment(shared_airflow, tmp_path_factory):
    """The shared deployment (api-server, scheduler, dag-processor and triggerer on 127.0.0.1, with
    the killing analyser); this module's clips and copies live in its own folder."""
    root = tmp_path_factory.mktemp("reliability-scheduler")
    faults = {
        "kill": shared_airflow.faults.kill,
        "marker": shared_airflow.faults.marker,
        "calls": shared_airflow.faults.calls,
    }
    with shared_airflow.use([DAG_ID]) as client:
        yield client, root, faults, shared_airflow.work_uri


@pytest.fixture(scope="module")
def runs(deployment, tmp_path_factory, os_client):
    """Clean runs of both clips, then both faulted runs at once, then the clear of the bad batch."""
    from reko.index.client import IndexNames
    from reko.pipeline import RunConfig, extract, probe_video
    from reko.storage import local_path

    client, root, faults, work = deployment
    names = IndexNames.current()
    kill_clip, bad_clip = cut(tmp_path_factory, *KILL_CLIP), cut(tmp_path_factory, *BAD_CLIP)
    kill_digest, bad_digest = [], []
    for clip, out in ((kill_clip, kill_digest), (bad_clip, bad_digest)):
        extract_frames(clip, root / f"frames-{clip.parent.name}", "clip", 1.0)
        out.extend(digests(root / f"frames-{clip.parent.name}"))
        assert len(set(out)) == len(out)  # no frame is skipped as identical to the one before it

    clips = {"kill": kill_clip, "bad": bad_clip}
    clean = {k: copy_under(clip, root, f"clean-{k}").as_uri() for k, clip in clips.items()}
    clean_runs = {k: client.trigger(DAG_ID, {"video_uri": uri}) for k, uri in clean.items()}
    assert {k: client.wait_for_run(DAG_ID, r) for k, r in clean_runs.items()} == {
        "kill": "success",
        "bad": "success",
    }

    # the bad clip's frames are cut before its run (the run reuses them); one is then spoilt
    bad_uri = copy_under(bad_clip, root, "bad-frame").as_uri()
    cfg = RunConfig.from_params(
        {"video_uri": bad_uri, "backend": "local", "frame_interval_s": 1.0, "analyses": ["text"]}
        | {"min_confidence": 50.0}
    )
    job = probe_video(cfg, work)
    extract(job.cfg, job.store, job.info)
    bad_frame = local_path(job.store.frame(BAD_FRAME))
    original = bad_frame.read_bytes()
    bad_frame.write_bytes(b"\x00\x13garbage, not a JPEG\n" * 100)
    faults["kill"].write_text(json.dumps([kill_digest[KILL_AT]]))
    faults["calls"].write_text("")
    kill_uri = copy_under(kill_clip, root, "killed").as_uri()
    kill_run = client.trigger(DAG_ID, {"video_uri": kill_uri})  # one batch: the short path, one task
    bad_run = client.trigger(DAG_ID, {"video_uri": bad_uri, "batch_size": BAD_BATCH})
    assert client.wait_for_run(DAG_ID, bad_run) == "failed"
    bad_states = {(t["task_id"], t["map_index"]): t["state"] for t in client.task_instances(DAG_ID, bad_run)}
    partial = index_state(os_client, names, bad_uri)
    assert client.wait_for_run(DAG_ID, kill_run) == "success"
    calls_before_clear = faults["calls"].read_text().split()

    bad_frame.write_bytes(original)  # fixed; clear only the failed batch and what depends on it
    client.call(
        "POST",
        f"/dags/{DAG_ID}/clearTaskInstances",
        {
            "dry_run": False,
            "dag_run_id": bad_run,
            "task_ids": [["analyse_frames", BAD_FRAME // BAD_BATCH]],
            "only_failed": False,
            "include_downstream": True,
        },
    )
    assert client.wait_for_run(DAG_ID, bad_run) == "success"
    calls = faults["calls"].read_text().split()
    return {
        "client": client,
        "names": names,
        "faults": faults,
        "clean": {k: index_state(os_client, names, uri) for k, uri in clean.items()},
        "kill": {"uri": kill_uri, "run": kill_run, "digest": kill_digest},
        "bad": {"uri": bad_uri, "run": bad_run, "digest": bad_digest, "states": bad_states},
        "partial": partial,
        "calls_before_clear": calls_before_clear,
        "calls_of_clear": calls[len(calls_before_clear) :],
    }


def test_a_worker_killed_mid_batch_is_retried_by_airflow_and_redoes_only_unfinished_frames(runs, os_client):
    client, faults, kill = runs["client"], runs["faults"], runs["kill"]
    killed_pid = int(faults["marker"].read_text())  # the kill happened, in a task process
    assert killed_pid != os.getpid()
    states = {t["task_id"]: t for t in client.task_instances(DAG_ID, kill["run"])}
    ti = states[SHORT_TASK]  # a 6-frame clip takes the short path: the whole run is the probe
    assert (ti["map_index"], ti["state"], ti["try_number"]) == (-1, "success", 2)
    assert states["analyse_frames"]["state"] == "skipped"
    history = client.call("GET", f"/dags/{DAG_ID}/dagRuns/{kill['run']}/taskInstances/{SHORT_TASK}/tries")
    assert [(t["try_number"], t["state"]) for t in history["task_instances"]] == [
        (1, "failed"),
        (2, "success"),
    ]
    # frames 0-2 were stored before the kill and not analysed again; frame 3 died mid-analysis
    digest = kill["digest"]
    mine = [c for c in runs["calls_before_clear"] if c in set(digest)]
    assert mine == digest[: KILL_AT + 1] + digest[KILL_AT:]
    faulted = index_state(os_client, runs["names"], kill["uri"])
    assert_same_index(runs["clean"]["kill"], faulted)
    (doc,) = faulted.docs["videos"].values()
    assert doc["status"] == "complete" and doc["run_id"] == kill["run"]
    # the video document counts the retry's calls: frames 3-5 made, 0-2 found in the cache
    made, cached = doc["api_calls"]["made"], doc["api_calls"]["skipped_cached"]
    assert (made, cached) == (KILL_CLIP[1] - KILL_AT, KILL_AT)


def test_a_frame_that_is_not_an_image_fails_its_batch_and_clearing_it_after_the_fix_converges(
    runs, os_client
):
    bad, partial, clean = runs["bad"], runs["partial"], runs["clean"]["bad"]
    # before the fix: the batch holding the frame failed, the other batch and the load succeeded
    states = bad["states"]
    assert states[("analyse_frames", 0)] == "failed" and states[("analyse_frames", 1)] == "success"
    assert states[("load_detections", -1)] == "success" and states[("write_video_document", -1)] == "success"
    (doc,) = partial.docs["videos"].values()
    assert doc["status"] == "partial"
    (failed,) = doc["failed_frames"]
    assert failed["frame_index"] == BAD_FRAME and failed["reason"].startswith(
        "ValueError: image is not a JPEG"
    )
    assert BAD_FRAME in clean.frames() and BAD_FRAME not in partial.frames()
    assert_same_index(clean, partial, kinds=("detections",), skip_frames=frozenset({BAD_FRAME}))
    bad_calls = [c for c in runs["calls_before_clear"] if c in set(bad["digest"])]
    assert sorted(bad_calls) == sorted(d for i, d in enumerate(bad["digest"]) if i != BAD_FRAME)

    # after the fix and the clear of map index 0: only the restored frame was analysed again
    assert runs["calls_of_clear"] == [bad["digest"][BAD_FRAME]]
    client = runs["client"]
    states = {(t["task_id"], t["map_index"]): t for t in client.task_instances(DAG_ID, bad["run"])}
    assert (states[("analyse_frames", 0)]["state"], states[("analyse_frames", 0)]["try_number"]) == (
        "success",
        2,
    )
    assert states[("analyse_frames", 1)]["try_number"] == 1  # not cleared, not run again
    assert_same_index(clean, index_state(os_client, runs["names"], bad["uri"]))
