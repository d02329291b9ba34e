"""Analyse one video: frames -> mapped analysis -> OpenSearch detections, segments, video document."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Param, dag, get_current_context, task

from reko.assets import VIDEO_ANALYSED, VIDEO_ANALYSED_BY_PROBE
from reko.config import REPO_ROOT, max_active_analyses, mediaconvert_poll_s, rekognition_pool
from reko.operators import ExtractFramesOperator, ProbeVideoOperator
from reko.params import analysis_settings_params, probed_param, runner_params, video_wait_param
from reko.run_summary import PROBE_TASK_ID, SHORT_TASK_ID

DOC_MD = """
### video_analysis
Turns one video into searchable frames.

1. **probe** waits (deferred, up to `video_wait_s`) for an `s3://` video to land (a `file://`
   video is there or not at once), checks the Params, takes the video's lease (one run per video
   at a time: a second run of the same video waits, rescheduled, until the first ends) and reads
   the video (duration, fps, size; a run started by `video_archive_scan` reuses the scan's probe
   while the video is the version it probed); anything that is not a readable video fails here, before
   anything is written. It then chooses the path: a video of at most one batch of frames whose
   frames are cut in the task (backend `local`) takes the **short path**, every other video the
   mapped path (steps 2-5).

**Short path**: **probe** itself does the whole run (cut frames, analyse, index detections,
segments and runner passes, write the video document and the run's summary, release the lease,
announce the asset through the `reko_video_analysed_by_probe` alias); every other task is
skipped (a skipped task costs no process), so a short run is one task process. A frame that fails
is recorded with its reason next to the frames and everything else is indexed; the probe then
hands the run to **analyse_short_video**, which tries the failed frames once more and fails red
if they still fail (announcing no asset event: Airflow announces outlets of successful tasks
only). Clearing it analyses only the frames without a result.

**Mapped path**:

2. **extract_frames** cuts frame images every `frame_interval_s` (local: ffmpeg; aws: MediaConvert
   frame capture; same names and timestamps).
3. **analyse_frames** runs once per batch of frames (named by frame range). Each frame's result is
   stored next to the frames; clearing a failed batch re-analyses only frames without a result.
4. **load_detections** indexes every stored result (also after partial failure), **build_segments**
   merges them into appearance segments, **build_passes** follows bib boxes from frame to frame
   and votes each track into one runner pass (snapped to the `roster_uri` roster when given;
   clocks, signs and the year on every bib never become runners), **write_video_document**
   records the summary and announces the `reko_video_analysed` asset.
5. **fail_run_on_failed_frames** runs only when a batch failed, and fails the run so it shows red
   while everything that succeeded is already indexed.
6. **summarise_run** (teardown: runs whatever happened) releases the lease and writes a short
   report (frames, detections, failed frames with reasons, calls, cost, time per stage) to its
   log; reko's plugin copies it into the run's note. On the short path the probe (or
   `analyse_short_video`) does both itself and this task is skipped.

Reprocess a video with new settings by triggering it with them: its old detections and segments
are replaced at load time, never mixed. `reanalyse` also ignores stored results; a result made by
another model (a new reader) is never reused.
"""

SAMPLE_URI = (REPO_ROOT / "include" / "sample" / "race.mp4").as_uri()


def _batch_reports(ti: Any) -> list[dict[str, Any]]:
    """Every analysis batch's report, pushed under `report` because a failed batch returns nothing."""
    from reko.run_summary import batch_reports

    return batch_reports(ti.xcom_pull)


def _fail_on_failed_frames(report: dict[str, Any]) -> None:
    """Fail the task red when frames failed: retried if any failure may pass, else at once."""
    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    if report["failed"]:
        message = f"{len(report['failed'])} of {report['end'] - report['start']} frames failed"
        if any(f.get("retryable") for f in report["failed"]):
            raise AirflowException(message)
        raise AirflowFailException(message + "; retrying will not help (see reasons above)")


@dag(
    dag_id="video_analysis",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=max_active_analyses(),  # a backfill's runs queue behind it
    tags=["reko", "video"],
    doc_md=DOC_MD,
    default_args={"owner": "reko", "retries": 2, "retry_delay": timedelta(seconds=15)},
    params={
        "video_uri": Param(
            SAMPLE_URI,
            type="string",
            title="Video URI",
            description="The video to analyse: file:///path/video.mp4 or s3://bucket/key.mp4.",
            minLength=8,
        ),
        "video_wait_s": video_wait_param(),
        "probed": probed_param(),
        **analysis_settings_params(""),
        **runner_params(),
        "batch_size": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            title="Frames per batch",
            description="Frames per mapped analysis task. Empty: chosen from the frame count.",
        ),
        "reprocess_frames": Param(
            [],
            type="array",
            items={"type": "integer", "minimum": 0},
            title="Frames to re-analyse",
            description="Frame indexes to analyse again even if a stored result exists.",
        ),
        "reanalyse": Param(
            False,
            type="boolean",
            title="Re-analyse every frame",
            description="Ignore every stored result; frames are not cut again. Results of another model"
            " are analysed again without it.",
        ),
    },
)
def video_analysis() -> None:
    @task(outlets=[VIDEO_ANALYSED], pool=rekognition_pool())
    def analyse_short_video(job: dict[str, Any]) -> None:
        """Short path, after frames failed in the probe: tries them again (the whole run, its summary
        and the lease's release; no teardown runs on this path), fails red if they still fail, and a
        clear redoes only those frames."""
        from reko.short_path import run_short_path

        context = get_current_context()
        result = run_short_path(context, job)
        context["outlet_events"][VIDEO_ANALYSED].extra = result["asset_extra"]
        _fail_on_failed_frames(result["report"])

    @task
    def plan_batches(manifest: dict[str, Any], job: dict[str, Any]) -> list[dict[str, int]]:
        from reko.pipeline import plan_batches as plan

        batches = plan(manifest["frame_count"], job["cfg"]["batch_size"])
        print(f"{manifest['frame_count']} frames in {len(batches)} batches")
        return batches

    @task(map_index_template="{{ batch_label }}", pool=rekognition_pool())
    def analyse_frames(batch: dict[str, int], job: dict[str, Any]) -> None:
        """One batch; its report is pushed once, under `report`, because a failed batch returns nothing."""
        from reko.pipeline import Job, analyse_job_batch, describe_batch

        context = get_current_context()
        context["batch_label"] = f"frames {batch['start']}-{batch['end'] - 1}"  # type: ignore[typeddict-unknown-key]
        started = context["dag_run"].start_date
        report = analyse_job_batch(
            Job.from_xcom(job),
            batch["start"],
            batch["end"],
            not_before=started.isoformat() if started else None,
        )
        context["ti"].xcom_push(key="report", value=report)
        print("\n".join(describe_batch(report)))
        _fail_on_failed_frames(report)

    @task(trigger_rule="none_skipped")
    def load_detections() -> dict[str, Any]:
        """Index every stored result, also after failed batches (the frames they finished).

        Runs when upstream tasks failed, so its inputs are pulled (they may be missing), and is
        skipped with the mapped path (none_skipped), costing the short path no process."""
        from reko.index.client import IndexNames, get_client
        from reko.pipeline import Job, load_job_detections

        ti = get_current_context()["ti"]
        job = ti.xcom_pull(task_ids=PROBE_TASK_ID, key="job")
        manifest = ti.xcom_pull(task_ids="extract_frames")
        if not job or not manifest:
            from airflow.sdk.exceptions import AirflowSkipException

            raise AirflowSkipException("no frames were extracted: nothing to index")
        return load_job_detections(
            get_client(), IndexNames.current(), Job.from_xcom(job), manifest["frame_count"]
        )

    @task
    def build_segments(job: dict[str, Any], loaded: dict[str, Any]) -> dict[str, Any]:
        from reko.index.client import IndexNames, get_client
        from reko.pipeline import Job, load_job_segments

        return load_job_segments(get_client(), IndexNames.current(), Job.from_xcom(job))

    @task
    def build_passes(job: dict[str, Any], loaded: dict[str, Any]) -> dict[str, Any]:
        """Track bib reads across frames into runner passes (one voted number per runner)."""
        from reko.index.client import IndexNames, get_client
        from reko.pipeline import Job, find_runner_passes

        return find_runner_passes(get_client(), IndexNames.current(), Job.from_xcom(job))

    @task(outlets=[VIDEO_ANALYSED])
    def write_video_document(
        job: dict[str, Any],
        manifest: dict[str, Any],
        loaded: dict[str, Any],
        segments: dict[str, Any],
        passes: dict[str, Any],
    ) -> dict[str, Any]:
        from reko.index.client import IndexNames, get_client
        from reko.pipeline import VIDEO_RESULT_KEYS, Job, asset_extra, describe_video
        from reko.pipeline import write_video_document as write

        context = get_current_context()
        doc = write(
            get_client(),
            IndexNames.current(),
            Job.from_xcom(job),
            manifest=manifest,
            load=loaded,
            segments=segments,
            passes=passes,
            reports=_batch_reports(context["ti"]),  # pulled: failed batches return nothing
            dag_id=context["dag"].dag_id,
            run_id=context["run_id"],
        )
        context["outlet_events"][VIDEO_ANALYSED].extra = asset_extra(doc)
        print("\n".join(describe_video(doc, passes)))
        return {k: doc[k] for k in VIDEO_RESULT_KEYS}

    @task
    def summarise_run(job: dict[str, Any]) -> dict[str, Any]:
        """Release the lease; report the run to the log and (via the plugin) the run's note.

        A teardown: the other tasks' results are pulled, since a failed or skipped task has none."""
        from reko.run_summary import summarise

        summary = summarise(get_current_context(), job)
        print(summary["note"])
        return summary

    @task(trigger_rule="one_failed", retries=0)
    def fail_run_on_failed_frames() -> None:
        """Leaf that turns the run red when batches failed (the load after them still succeeds)."""
        from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

        failed = [f for r in _batch_reports(get_current_context()["ti"]) for f in r["failed"]]
        if not failed:
            raise AirflowSkipException("no frame failed (an earlier step did; see it)")
        frames = sorted({f["frame_index"] for f in failed})
        raise AirflowFailException(f"{len(frames)} frames have no result: {frames[:50]}")

    probed = ProbeVideoOperator(
        task_id=PROBE_TASK_ID,
        video_uri="{{ params.video_uri }}",
        wait_s="{{ params.video_wait_s }}",
        poke_interval=30,
        short_task_id=SHORT_TASK_ID,
        mapped_task_id="extract_frames",
        outlets=[VIDEO_ANALYSED_BY_PROBE],  # a short video analysed whole in the probe
        pool=rekognition_pool(),  # which then calls Rekognition (aws backend)
    )
    job = probed.output["job"]
    summary = summarise_run(job)
    analyse_short_video(job)
    manifest = ExtractFramesOperator(
        task_id="extract_frames", probed=job, waiter_delay=mediaconvert_poll_s()
    ).output
    analysed = analyse_frames.partial(job=job).expand(batch=plan_batches(manifest, job))
    loaded = load_detections()
    analysed >> loaded
    failed_frames = fail_run_on_failed_frames()
    analysed >> failed_frames
    segments = build_segments(job, loaded)
    written = write_video_document(job, manifest, loaded, segments, build_passes(job, loaded))
    # not downstream of the short path, so the probe's branch skips it there (no process)
    [written, failed_frames] >> summary.as_teardown(setups=probed)


video_analysis()
