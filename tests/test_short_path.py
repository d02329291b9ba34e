"""The short path: a video of at most one batch is analysed by one task, the probe.

Same index as the mapped path, same per-frame retry: a failed frame is recorded with its reason,
the probe hands it to `analyse_short_video`, which tries it again and fails red, and running that
again analyses only the frames without a result. The short path also writes the run's summary and
releases the lease, so the teardown is skipped (no process).
"""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest

from reko.index.lease import holder_of
from reko.media import extract_frames
from reko.storage import video_id_for
from tests.support.same_index import assert_same_index, index_state
from tests.support.short_videos import make_video
from tests.test_failures import task_states

pytestmark = pytest.mark.slow
RETRY_TASK = "analyse_short_video"
MAPPED_ONLY = {
    "extract_frames",
    "plan_batches",
    "analyse_frames",
    "load_detections",
    "build_segments",
    "build_passes",
    "write_video_document",
}


def latest_asset_extra() -> dict:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        event = session.scalars(
            select(AssetEvent)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .where(AssetModel.name == "reko_video_analysed")
            .order_by(AssetEvent.id.desc())
        ).first()
        return dict(event.extra)


def short_summary(run, task_id: str) -> dict:
    return run.get_task_instance(task_id).xcom_pull(task_ids=task_id, key="summary")


def run_note(run) -> str:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        return session.get(DagRun, run.id).note or ""


def test_a_short_video_takes_the_short_path_and_indexes_what_the_mapped_path_does(
    analysis_dag, os_client, index_names, tmp_path
):
    from airflow.utils.state import DagRunState

    short = make_video(tmp_path / "short" / "bib.mp4", "4711", seconds=5)
    mapped = tmp_path / "mapped" / "bib.mp4"
    mapped.parent.mkdir()
    shutil.copy2(short, mapped)  # same mtime: the same source fingerprint

    run = analysis_dag.test(run_conf={"video_uri": short.as_uri(), "batch_size": None})
    assert run.state == DagRunState.SUCCESS
    states = task_states(run)
    assert {t: states[t] for t in (RETRY_TASK, "probe", "summarise_run")} == {
        RETRY_TASK: ["skipped"],
        "probe": ["success"],  # one task process for a short run
        "summarise_run": ["skipped"],
    }
    assert all(states[t] == ["skipped"] for t in MAPPED_ONLY), states
    doc = os_client.get(index=index_names.videos, id=video_id_for(short.as_uri()))["_source"]
    assert doc["status"] == "complete" and doc["frame_count"] == 5 and doc["counts"]["detections"] > 0
    assert latest_asset_extra() == {
        "video_id": doc["video_id"],
        "source_uri": short.as_uri(),
        "status": "complete",
        "frame_count": 5,
        **doc["counts"],
    }
    summary = short_summary(run, "probe")
    assert "complete" in summary["note"] and "5 frames" in summary["note"]
    assert summary["note"] in run_note(run)  # the plugin's listener copied it into the run's note
    assert holder_of(os_client, index_names, doc["video_id"]) is None  # the lease was released

    run = analysis_dag.test(run_conf={"video_uri": mapped.as_uri(), "batch_size": 2})  # 3 batches
    assert run.state == DagRunState.SUCCESS
    states = task_states(run)
    assert states[RETRY_TASK] == ["skipped"] and states["analyse_frames"] == ["success"] * 3

    clean, other = (
        index_state(os_client, index_names, mapped.as_uri()),
        index_state(os_client, index_names, short.as_uri()),
    )
    assert any("4711" in d["value"] for d in clean.docs["detections"].values()), clean.docs["detections"]
    assert_same_index(clean, other)


def test_a_failed_frame_on_the_short_path_fails_the_task_and_a_retry_analyses_only_it(
    analysis_dag, os_client, index_names, tmp_path, monkeypatch
):
    from airflow.utils.state import DagRunState

    video = make_video(tmp_path / "retry" / "bib.mp4", "2024", seconds=5)
    frames = tmp_path / "frames"
    extract_frames(video, frames, "bib", 1.0)
    bad = 2
    digest = hashlib.sha1((frames / f"bib.{bad:07d}.jpg").read_bytes()).hexdigest()
    fail_file, calls_log = tmp_path / "fail.json", tmp_path / "calls.log"
    fail_file.write_text(json.dumps([digest]))
    monkeypatch.setenv("REKO_LOCAL_TEXT_ANALYSER", "tests.support.faulty:FaultyTextAnalyser")
    monkeypatch.setenv("REKO_TEST_FAIL_HASHES", str(fail_file))
    monkeypatch.setenv("REKO_TEST_CALLS_LOG", str(calls_log))
    conf = {"video_uri": video.as_uri(), "batch_size": None}  # dag.test() keeps earlier runs' conf

    run = analysis_dag.test(run_conf=conf)
    assert run.state == DagRunState.FAILED
    states = task_states(run)
    assert states["probe"] == ["success"] and states[RETRY_TASK] == ["failed"]
    assert states["summarise_run"] == ["skipped"] and states["fail_run_on_failed_frames"] == ["skipped"]
    assert all(states[t] == ["skipped"] for t in MAPPED_ONLY), states
    calls = calls_log.read_text().split()
    assert len(calls) == 6 and calls.count(digest) == 2  # 5 in the probe, the failed one once more
    assert run.get_task_instance("probe").xcom_pull(task_ids="probe", key="summary") is None
    video_id = video_id_for(video.as_uri())
    doc = os_client.get(index=index_names.videos, id=video_id)["_source"]
    assert doc["status"] == "partial" and [f["frame_index"] for f in doc["failed_frames"]] == [bad]
    assert "InjectedFault: injected failure" in doc["failed_frames"][0]["reason"]
    summary = short_summary(run, RETRY_TASK)
    assert summary["status"] == "partial" and f"frame {bad} (text)" in summary["note"]
    assert "`analyse_short_video` failed: 1 of 5 frames failed" in summary["note"]  # the failed task and why
    assert summary["note"] in run_note(run)
    assert holder_of(os_client, index_names, video_id) is None  # released, although the task failed

    # the fault is gone: the task again (what clearing it does) analyses only the failed frame
    fail_file.write_text("[]")
    calls_log.write_text("")
    run = analysis_dag.test(run_conf=conf)
    assert run.state == DagRunState.SUCCESS
    assert calls_log.read_text().split() == [digest]
    doc = os_client.get(index=index_names.videos, id=video_id)["_source"]
    assert doc["status"] == "complete" and doc["failed_frames"] == []
    assert doc["api_calls"]["made"] == 1 and doc["api_calls"]["skipped_cached"] == 4
    assert latest_asset_extra()["status"] == "complete"


def test_the_listener_links_the_probe_alias_once_before_any_event(analysis_dag):
    """Two short runs announcing the first events through the alias at once race in Airflow (a
    UNIQUE violation fails one after it succeeded); the scheduler's listener links it first."""
    from airflow.models.asset import AssetAliasModel, alias_association_table
    from airflow.utils.session import create_session
    from sqlalchemy import delete, func, select

    from reko.assets import VIDEO_ANALYSED_BY_PROBE
    from reko.listeners import _link_probe_alias

    analysis_dag.test(run_conf={"video_uri": "file:///nonexistent/parsed-only.mp4"})  # the DAG is in the DB
    link = alias_association_table
    with create_session() as session:
        alias_id = session.scalar(
            select(AssetAliasModel.id).where(AssetAliasModel.name == VIDEO_ANALYSED_BY_PROBE.name)
        )
        session.execute(delete(link).where(link.c.alias_id == alias_id))
    for _ in range(2):
        with create_session() as session:
            assert _link_probe_alias(session) is True
    with create_session() as session:
        assert session.scalar(select(func.count()).select_from(link).where(link.c.alias_id == alias_id)) == 1
