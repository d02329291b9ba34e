"""One run per video at a time (the lease), the run summary and its note, and `reanalyse`.

The lease runs against the real OpenSearch node; the summary through dag.test() with the real
plugin listener writing the DAG run's note.
"""

from __future__ import annotations

import shutil
import threading
import uuid

import pytest

from reko.index.client import IndexNames
from reko.index.lease import Holder, claim, holder_of, release
from reko.run_summary import NOTE_HEADING, merge_note
from reko.storage import video_id_for
from tests.conftest import REPO, SAMPLE_VIDEO
from tests.support.short_videos import cut_of

FRAMES = 8  # the summarised runs' cut of the sample: seconds, and frames at 1 a second

A = Holder("video_analysis", "run-a")
B = Holder("video_analysis", "run-b")


@pytest.fixture
def names(opensearch_url) -> IndexNames:
    return IndexNames(f"reko-lease-{uuid.uuid4().hex[:8]}")


@pytest.fixture(scope="module")
def own_analysis_dag(airflow_db, opensearch_url):
    """A DagBag copy of its own: dag.test() writes run conf into the DAG's Params, which must not
    leak the intervals and flags used here into other modules' runs."""
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags" / "video_analysis.py")).dags["video_analysis"]


def live(*holders: Holder):
    return lambda holder: holder in holders


def test_a_lease_is_held_by_one_run_and_only_its_holder_releases_it(os_client, names):
    assert claim(os_client, names, "v1", A, live(A)) is None
    assert claim(os_client, names, "v1", A, live(A)) is None  # a retried task of the same run
    assert claim(os_client, names, "v1", B, live(A)) == A
    assert claim(os_client, names, "v2", B, live(A)) is None  # another video is free
    assert release(os_client, names, "v1", B) is False and holder_of(os_client, names, "v1") == A
    assert release(os_client, names, "v1", A) is True and holder_of(os_client, names, "v1") is None
    assert claim(os_client, names, "v1", B, live(A)) is None and holder_of(os_client, names, "v1") == B


def test_the_lease_of_a_run_that_ended_is_taken_over(os_client, names):
    assert claim(os_client, names, "v1", A, live(A)) is None
    assert claim(os_client, names, "v1", B, live()) is None  # A's run is no longer queued or running
    assert holder_of(os_client, names, "v1") == B
    assert release(os_client, names, "v1", A) is False  # A, late, cannot release B's lease


def race_for_the_lease(os_client, names, racers: list[Holder]) -> list[Holder]:
    """All racers claim v1 at the same instant (none of them has ended); the ones that got it."""
    winners: list[Holder] = []
    barrier = threading.Barrier(len(racers))

    def race(me: Holder) -> None:
        barrier.wait()
        if claim(os_client, names, "v1", me, live(*racers)) is None:
            winners.append(me)

    threads = [threading.Thread(target=race, args=(h,)) for h in racers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return winners


def test_racing_claims_have_exactly_one_winner(os_client, names):
    winners = race_for_the_lease(os_client, names, [Holder("video_analysis", f"run-{i}") for i in range(12)])
    assert len(winners) == 1 and holder_of(os_client, names, "v1") == winners[0]

    # the same race for a lease whose holder ended (it is not among the live): one takes it over
    takers = [Holder("video_analysis", f"taker-{i}") for i in range(12)]
    took_over = race_for_the_lease(os_client, names, takers)
    assert len(took_over) == 1 and holder_of(os_client, names, "v1") == took_over[0]


def test_merge_note_keeps_a_persons_text_and_replaces_an_old_summary():
    first = f"{NOTE_HEADING}\nold"
    assert merge_note(None, first) == first
    assert merge_note("found by scan X", first) == f"found by scan X\n\n{first}"
    assert (
        merge_note(f"found by scan X\n\n{first}", f"{NOTE_HEADING}\nnew")
        == f"found by scan X\n\n{NOTE_HEADING}\nnew"
    )


@pytest.fixture(scope="module")
def summarised(own_analysis_dag, tmp_path_factory, os_client):
    """One dag.test() run of an 8-second cut of the sample in two batches, and a second one with
    reanalyse (what is checked is the note and the counts, not what was read)."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    video = cut_of(SAMPLE_VIDEO, tmp_path_factory.mktemp("summary") / "race.mp4", 0, FRAMES)
    runs = []
    for conf in ({}, {"reanalyse": True}):
        dag_run = own_analysis_dag.test(
            run_conf={"video_uri": video.as_uri(), "batch_size": FRAMES // 2, **conf}
        )
        with create_session() as session:
            stored = session.get(DagRun, dag_run.id)
            runs.append({"state": dag_run.state, "note": stored.note, "run_id": dag_run.run_id})
    video_id = video_id_for(video.as_uri())
    return {"runs": runs, "video_id": video_id}


@pytest.mark.slow
def test_each_run_ends_with_a_summary_in_its_note(summarised):
    first = summarised["runs"][0]
    assert first["state"] == "success"
    note = first["note"] or ""
    assert note.startswith(NOTE_HEADING), note
    assert f"**{summarised['video_id']}: complete**" in note
    assert f"- {FRAMES} frames," in note and ", 0 failed frames" in note
    assert f"- calls: {FRAMES} made, 0 skipped (cached)" in note
    assert "in 2 batches" in note
    for stage in ("probe", "extract", "analyse", "load", "segments"):
        assert f"{stage} " in note.split("- time: ", 1)[1]
    assert "outside the stages' work" in note


@pytest.mark.slow
def test_a_rerun_on_cut_frames_reports_its_own_extract_time(summarised):
    first, second = (run["note"] or "" for run in summarised["runs"])
    assert "(frames cut by an earlier run)" not in first
    extract_s = float(first.split("extract ", 1)[1].split(" s", 1)[0])
    assert extract_s >= 0.1  # ffmpeg cut the frames
    assert "extract 0.0 s (frames cut by an earlier run)" in second, second


def test_stage_times_take_this_runs_extract_time_not_the_manifests():
    from reko.pipeline import this_run
    from reko.run_summary import stage_times

    manifest = {"frame_count": 38, "extract_s": 2.5}  # as the first run stored it
    cached = stage_times(
        probe_s=0.1, manifest=this_run(manifest, extracted=False), reports=[], load=None, segments=None
    )
    fresh = stage_times(
        probe_s=0.1,
        manifest=this_run(manifest, extracted=True, extract_s=2.5),
        reports=[],
        load=None,
        segments=None,
    )
    assert (cached["extract"], fresh["extract"]) == (0.0, 2.5)


def test_the_note_counts_runner_passes_and_names_the_runners():
    from reko.run_summary import render, stage_times

    manifest = {"frame_count": 38}
    passes = {"passes": 3, "numbers": ["1042", "3318"], "elapsed_s": 0.2}
    load = {"detections": 300, "failed_frames": []}
    note = render(
        video_id="race-1",
        source_uri="file:///race.mp4",
        status="complete",
        manifest=manifest,
        reports=[],
        load=load,
        segments={"segments": 26},
        passes=passes,
        api_calls=None,
        stages=stage_times(
            probe_s=0.1, manifest=manifest, reports=[], load=load, segments=None, passes=passes
        ),
        wall_s=None,
    )
    assert "- 38 frames, 300 detections, 26 segments, 3 runner passes, 0 failed frames" in note
    assert "  - runners: 1042, 3318" in note and "passes 0.2 s" in note


@pytest.mark.slow
def test_the_video_document_keeps_every_runs_calls(summarised, os_client, index_names):
    """The reanalyse run made its calls again: per run one a frame, over both runs two."""
    doc = os_client.get(index=index_names.videos, id=summarised["video_id"])["_source"]
    assert doc["api_calls"]["made"] == FRAMES
    assert doc["totals"]["runs"] == 2 and doc["totals"]["api_calls_made"] == 2 * FRAMES


@pytest.mark.slow
def test_reanalyse_ignores_stored_results_and_releases_the_lease(summarised, os_client, index_names):
    second = summarised["runs"][1]
    assert second["state"] == "success"
    assert f"- calls: {FRAMES} made, 0 skipped (cached)" in (second["note"] or "")  # cached results ignored
    assert holder_of(os_client, index_names, summarised["video_id"]) is None


def test_a_summary_without_batches_or_frames_renders_instead_of_crashing():
    """A run that failed after probe has no batch reports (max() of nothing crashed the teardown)."""
    from reko.run_summary import render, stage_times

    stages = stage_times(probe_s=0.4, manifest=None, reports=[], load=None, segments=None)
    note = render(
        video_id="race-0123456789",
        source_uri="s3://b/race.mp4",
        status="failed",
        manifest=None,
        reports=[],
        load=None,
        segments=None,
        api_calls=None,
        stages=stages,
        wall_s=12.0,
    )
    assert note.startswith(NOTE_HEADING) and "**race-0123456789: failed**" in note
    assert "No frames were extracted" in note and "probe 0.4 s" in note and "analyse -" in note


def test_a_summary_says_which_task_failed_and_why():
    from reko.run_summary import render, split_task_key, stage_times, task_outcomes

    states = {"probe": "success", "extract_frames": "failed", "plan_batches": "upstream_failed"}
    outcomes = task_outcomes(states, {"extract_frames": "MediaConvertJobError: job j ended ERROR: 1010"})
    note = render(
        video_id="v",
        source_uri="s3://b/v.mp4",
        status="failed",
        manifest=None,
        reports=[],
        load=None,
        segments=None,
        api_calls=None,
        stages=stage_times(probe_s=1.0, manifest=None, reports=[], load=None, segments=None),
        wall_s=None,
        outcomes=outcomes,
    )
    assert "- `extract_frames` failed: MediaConvertJobError: job j ended ERROR: 1010" in note
    assert "- not run (an upstream task failed): `plan_batches`" in note
    assert split_task_key("analyse_frames_3", ["analyse_frames", "probe"]) == ("analyse_frames", 3)
    assert split_task_key("extract_frames", ["extract_frames"]) == ("extract_frames", -1)


@pytest.fixture
def fresh_analysis_dag(airflow_db, opensearch_url):
    """A DagBag copy whose tasks are not retried (a failure ends the run at once)."""
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(REPO / "dags" / "video_analysis.py")).dags["video_analysis"]
    for task in dag.tasks:
        task.retries = 0
    return dag


def _note_of(dag_run) -> str:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        return session.get(DagRun, dag_run.id).note or ""


@pytest.mark.slow
def test_a_run_that_fails_at_probe_ends_with_a_note_saying_why(fresh_analysis_dag, tmp_path):
    missing = (tmp_path / "nowhere" / "race.mp4").as_uri()
    dag_run = fresh_analysis_dag.test(run_conf={"video_uri": missing})
    assert dag_run.state == "failed"
    note = _note_of(dag_run)
    assert note.startswith(NOTE_HEADING), note
    assert f"**{video_id_for(missing)}: failed**" in note
    assert f"- `probe` failed: AirflowFailException: video not found: {missing}" in note, note


@pytest.mark.slow
def test_a_run_that_fails_after_probe_ends_with_a_summary_saying_why(
    fresh_analysis_dag, tmp_path, monkeypatch, os_client, index_names
):
    """Extraction fails (the work root is under a file): the teardown still writes the note and
    releases the lease, instead of crashing on the batches that never ran."""
    video = tmp_path / "race.mp4"
    shutil.copy(SAMPLE_VIDEO, video)
    (tmp_path / "not-a-folder").write_text("x")
    monkeypatch.setenv("REKO_WORK_URI", (tmp_path / "not-a-folder" / "work").as_uri())
    dag_run = fresh_analysis_dag.test(run_conf={"video_uri": video.as_uri()})
    assert dag_run.state == "failed"
    states = {ti.task_id: ti.state for ti in dag_run.get_task_instances()}
    assert states["extract_frames"] == "failed" and states["summarise_run"] == "success", states
    note = _note_of(dag_run)
    assert note.startswith(NOTE_HEADING) and f"**{video_id_for(video.as_uri())}: failed**" in note
    assert "- `extract_frames` failed: NotADirectoryError" in note, note
    assert "No frames were extracted" in note
    assert holder_of(os_client, index_names, video_id_for(video.as_uri())) is None
