"""Partial failure and frame-level retry; bad inputs fail the first task and write nothing."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest

from reko.media import extract_frames
from reko.storage import video_id_for
from tests.conftest import SAMPLE_VIDEO, snapshot
from tests.test_video_analysis_dag import CALLS

pytestmark = pytest.mark.slow
FAILING_FRAMES = [3, 4, 21]  # with 5-frame batches: batches "frames 0-4" and "frames 20-24" fail


def task_states(dag_run) -> dict[str, list[str]]:
    states: dict[str, list[str]] = {}
    for ti in sorted(dag_run.get_task_instances(), key=lambda t: (t.task_id, t.map_index)):
        states.setdefault(ti.task_id, []).append(str(ti.state))
    return states


def test_failed_frames_fail_their_batch_and_the_rest_is_indexed_then_a_rerun_converges(
    analysis_dag, clean_sample, os_client, index_names, tmp_path, monkeypatch
):
    from airflow.utils.state import DagRunState

    video = tmp_path / "race-copy.mp4"
    shutil.copy(SAMPLE_VIDEO, video)
    frames = tmp_path / "frames"
    extract_frames(video, frames, "race-copy", 1.0)
    hashes = [
        hashlib.sha1((frames / f"race-copy.{i:07d}.jpg").read_bytes()).hexdigest() for i in FAILING_FRAMES
    ]
    fail_file, calls_log = tmp_path / "fail.json", tmp_path / "calls.log"
    fail_file.write_text(json.dumps(hashes))
    monkeypatch.setenv("REKO_LOCAL_TEXT_ANALYSER", "tests.support.faulty:FaultyTextAnalyser")
    monkeypatch.setenv("REKO_TEST_FAIL_HASHES", str(fail_file))
    monkeypatch.setenv("REKO_TEST_CALLS_LOG", str(calls_log))
    conf = {"video_uri": video.as_uri(), "batch_size": 5}

    dag_run = analysis_dag.test(run_conf=conf)
    assert dag_run.state == DagRunState.FAILED
    states = task_states(dag_run)
    assert states["analyse_frames"].count("failed") == 2 and states["analyse_frames"].count("success") == 6
    assert states["load_detections"] == ["success"] and states["write_video_document"] == ["success"]
    assert states["fail_run_on_failed_frames"] == ["failed"]
    video_id = video_id_for(video.as_uri())
    doc = os_client.get(index=index_names.videos, id=video_id)["_source"]
    assert doc["status"] == "partial"
    assert [f["frame_index"] for f in doc["failed_frames"]] == FAILING_FRAMES
    assert all("InjectedFault: injected failure" in f["reason"] for f in doc["failed_frames"])
    indexed_frames = {
        d["frame_index"] for d in snapshot(os_client, index_names.detections, video_id).values()
    }
    assert indexed_frames.isdisjoint(FAILING_FRAMES) and len(indexed_frames) > 30
    assert len(calls_log.read_text().split()) == 38

    # the fault is gone: a re-run analyses only the three frames without a result
    fail_file.write_text("[]")
    calls_log.write_text("")
    dag_run = analysis_dag.test(run_conf=conf)
    assert dag_run.state == DagRunState.SUCCESS
    assert sorted(calls_log.read_text().split()) == sorted(hashes)
    doc = os_client.get(index=index_names.videos, id=video_id)["_source"]
    assert doc["status"] == "complete" and doc["failed_frames"] == []
    assert doc["api_calls"] == CALLS | {"made": 3, "skipped": 35, "skipped_cached": 35}

    # and the index equals that of the session's clean run of the same video (under its own name)
    def comparable(docs: dict[str, dict], vid: str) -> list[tuple]:
        unlike = ("video_id", "frame_uri", "thumbnail_uri")
        return sorted(
            (
                doc_id.replace(vid, "V"),
                json.dumps({k: v for k, v in d.items() if k not in unlike}, sort_keys=True),
            )
            for doc_id, d in docs.items()
        )

    for kind, index in (("detections", index_names.detections), ("segments", index_names.segments)):
        assert comparable(snapshot(os_client, index, video_id), video_id) == comparable(
            clean_sample[kind], clean_sample["video_id"]
        )


def bad_input(case: str, tmp) -> str:
    """Write the bad input for `case` and return its URI."""
    if case == "not-a-video":
        (tmp / "notes.mp4").write_text("hello\n" * 50)
        return (tmp / "notes.mp4").as_uri()
    if case == "zero-bytes":
        (tmp / "empty.mp4").write_bytes(b"")
        return (tmp / "empty.mp4").as_uri()
    if case == "truncated":
        (tmp / "cut.mp4").write_bytes(SAMPLE_VIDEO.read_bytes()[: SAMPLE_VIDEO.stat().st_size // 3])
        return (tmp / "cut.mp4").as_uri()
    if case == "missing":
        return (tmp / "missing.mp4").as_uri()
    if case == "aws-local-file":  # a copy: other modules index the sample under its own path
        return Path(shutil.copy(SAMPLE_VIDEO, tmp / "race.mp4")).as_uri()
    return "http://example.invalid/video.mp4"


MESSAGES = {
    "not-a-video": "not a readable video",
    "zero-bytes": "empty (0 bytes)",
    "truncated": "truncated or damaged",
    "missing": "video not found",
    "wrong-scheme": "unsupported scheme 'http'",
    "aws-local-file": "backend 'aws' needs the video and the work root in S3",
}
BACKENDS = {"aws-local-file": "aws"}


@pytest.mark.parametrize("case", list(MESSAGES))
def test_bad_input_fails_the_first_task_with_a_clear_message_and_writes_nothing(
    case, analysis_dag, os_client, index_names, tmp_path
):
    from airflow.utils.state import DagRunState

    from reko.config import work_uri
    from reko.pipeline import RunConfig, probe_video

    uri = bad_input(case, tmp_path)
    conf = {"video_uri": uri, "backend": BACKENDS.get(case, "local")}
    params = {p: analysis_dag.params[p] for p in analysis_dag.params} | conf
    with pytest.raises(ValueError, match=re.escape(MESSAGES[case])):
        probe_video(RunConfig.from_params(params), work_uri())

    dag = analysis_dag
    if case in BACKENDS:
        # dag.test() runs tasks in this process, and a run's conf is written into the DAG's own
        # Param objects: a fresh copy keeps backend=aws from leaking into later tests' runs
        from airflow.dag_processing.dagbag import DagBag

        dag = DagBag(dag_folder=analysis_dag.fileloc).dags["video_analysis"]
    dag_run = dag.test(run_conf=conf)
    assert dag_run.state == DagRunState.FAILED
    states = task_states(dag_run)
    assert states["probe"] == ["failed"]
    # nothing after probe ran (dag.test() leaves all_done tasks behind an unexpanded map unset)
    after_probe = {t: s for t, s in states.items() if t != "probe"}
    assert all(s[0] not in ("success", "failed") for s in after_probe.values()), states
    vid = video_id_for(uri)
    for index in (index_names.detections, index_names.segments):
        assert snapshot(os_client, index, vid) == {}
    assert not os_client.exists(index=index_names.videos, id=vid)
