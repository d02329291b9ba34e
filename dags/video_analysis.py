"""Analyse one video: frames -> mapped analysis -> OpenSearch detections, segments, video document."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

import pendulum
from airflow.sdk import Param, dag, get_current_context, task

from reko.assets import VIDEO_ANALYSED
from reko.aws.sensors import VideoObjectSensor
from reko.config import (
    REPO_ROOT,
    lease_wait_s,
    mediaconvert_poll_s,
    rekognition_pool,
)
from reko.operators import ExtractFramesOperator
from reko.params import analysis_settings_params, runner_params, video_wait_param

DOC_MD = """
### video_analysis
Turns one video into searchable frames.

0. **wait_for_video** waits (deferred, up to `video_wait_s`) for an `s3://` video to land; a
   `file://` video passes at once.
1. **probe** checks the Params, takes the video's lease (one run per video at a time: a second
   run of the same video waits, rescheduled, until the first ends) and reads the video (duration,
   fps, size); anything that is not a readable video fails here, before anything is written.
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
   log; reko's plugin copies it into the run's note.

Reprocess a video with new settings by triggering it with them: its old detections and segments
are replaced at load time, never mixed. `reanalyse` also ignores stored results (a new model).
"""

SAMPLE_URI = (REPO_ROOT / "include" / "sample" / "race.mp4").as_uri()


def _batch_reports(ti: Any) -> list[dict[str, Any]]:
    """Every analysis batch's report (one mapped instance pulls as a dict, several as a list)."""
    reports = ti.xcom_pull(task_ids="analyse_frames", key="report")
    return [r for r in (reports if isinstance(reports, list) else [reports]) if r]


def _me(context: Any) -> Any:
    """This run, as the holder of a video's lease."""
    from reko.index.lease import Holder

    return Holder(context["dag"].dag_id, context["run_id"])


def _fail_without_retry(exc: Exception) -> NoReturn:
    """Bad input will not get better on retry: fail the task at once, with the message."""
    from airflow.sdk.exceptions import AirflowFailException

    raise AirflowFailException(str(exc)) from exc


@dag(
    dag_id="video_analysis",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=8,
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
            description="Ignore stored results (e.g. after a model upgrade); frames are not cut again.",
        ),
    },
)
def video_analysis() -> None:
    wait_for_video = VideoObjectSensor(
        task_id="wait_for_video",
        video_uri="{{ params.video_uri }}",
        deferrable=True,
        poke_interval=30,
        wait_s="{{ params.video_wait_s }}",
    )

    @task
    def probe(params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Validate, take the video's lease, read the video's facts."""
        from airflow.sdk.exceptions import AirflowRescheduleException

        from reko.config import work_uri
        from reko.index.client import IndexNames, get_client
        from reko.index.lease import airflow_run_is_live, claim, release
        from reko.pipeline import RunConfig, probe_video
        from reko.storage import video_id_for

        started = time.monotonic()
        context = get_current_context()
        try:
            cfg = RunConfig.from_params(params or {})
        except (ValueError, NotImplementedError) as exc:
            _fail_without_retry(exc)
        client, names, video_id = get_client(), IndexNames.current(), video_id_for(cfg.video_uri)
        holder = claim(client, names, video_id, _me(context), airflow_run_is_live)
        if holder is not None:
            print(f"{cfg.video_uri} is being worked on by {holder}: waiting for it to end")
            raise AirflowRescheduleException(datetime.now(UTC) + timedelta(seconds=lease_wait_s()))
        try:
            job = probe_video(cfg, work_uri()).to_xcom()
        except Exception as exc:
            release(client, names, video_id, _me(context))  # the teardown will not run: nothing to hold
            if isinstance(exc, (ValueError, NotImplementedError)):
                _fail_without_retry(exc)
            raise
        return {**job, "probe_s": round(time.monotonic() - started, 3)}

    @task
    def plan_batches(manifest: dict[str, Any], probed: dict[str, Any]) -> list[dict[str, int]]:
        from reko.pipeline import plan_batches as plan

        batches = plan(manifest["frame_count"], probed["cfg"]["batch_size"])
        print(f"{manifest['frame_count']} frames in {len(batches)} batches")
        return batches

    @task(map_index_template="{{ batch_label }}", pool=rekognition_pool())
    def analyse_frames(batch: dict[str, int], probed: dict[str, Any]) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowException, AirflowFailException

        from reko.pipeline import Job, analyse_batch

        context = get_current_context()
        context["batch_label"] = f"frames {batch['start']}-{batch['end'] - 1}"  # type: ignore[typeddict-unknown-key]
        job = Job.from_xcom(probed)
        cfg = job.cfg
        started = context["dag_run"].start_date
        report = analyse_batch(
            job.store,
            batch["start"],
            batch["end"],
            backend=cfg.backend,
            analyses=cfg.analyses,
            interval_s=cfg.frame_interval_s,
            reprocess=range(batch["start"], batch["end"]) if cfg.reanalyse else cfg.reprocess_frames,
            not_before=started.isoformat() if started else None,
            analysis_options={"min_confidence": cfg.min_confidence},
        )
        context["ti"].xcom_push(key="report", value=report)
        print(
            f"analysed {report['made']}, skipped {report['skipped']} (cached) and {report['duplicates']}"
            f" (identical to the previous frame), failed {len(report['failed'])}"
        )
        if report["failed"]:
            for failure in report["failed"]:
                print(f"frame {failure['frame_index']} ({failure['kind']}): {failure['reason']}")
            message = f"{len(report['failed'])} of {batch['end'] - batch['start']} frames failed"
            if any(f.get("retryable") for f in report["failed"]):
                raise AirflowException(message)
            raise AirflowFailException(message + "; retrying will not help (see reasons above)")
        return report

    @task(trigger_rule="all_done")
    def load_detections() -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSkipException

        from reko.index.client import IndexNames, get_client
        from reko.pipeline import Job
        from reko.pipeline import load_detections as load

        ti = get_current_context()["ti"]
        probed, manifest = ti.xcom_pull(task_ids="probe"), ti.xcom_pull(task_ids="extract_frames")
        if not probed or not manifest:
            raise AirflowSkipException("no frames were extracted: nothing to index")
        job = Job.from_xcom(probed)
        return load(
            get_client(),
            IndexNames.current(),
            job.store,
            frame_count=manifest["frame_count"],
            backend=job.cfg.backend,
            analyses=job.cfg.analyses,
            min_confidence=job.cfg.min_confidence,
        )

    @task
    def build_segments(probed: dict[str, Any], loaded: dict[str, Any]) -> dict[str, Any]:
        from reko.index.client import IndexNames, get_client
        from reko.pipeline import Job, load_segments

        job = Job.from_xcom(probed)
        return load_segments(
            get_client(), IndexNames.current(), job.store, backend=job.cfg.backend, analyses=job.cfg.analyses
        )

    @task
    def build_passes(probed: dict[str, Any], loaded: dict[str, Any]) -> dict[str, Any]:
        """Track bib reads across frames into runner passes (one voted number per runner)."""
        from reko.index.client import IndexNames, get_client
        from reko.pipeline import Job, find_runner_passes

        found = find_runner_passes(get_client(), IndexNames.current(), Job.from_xcom(probed))
        print(
            f"{found['passes']} runner passes: {found['numbers']}; {found['rejected_count']} tracks rejected"
        )
        for track in found["rejected"]:
            print(f"  not a runner: {track['text']!r} ({track['reason']})")
        return found

    @task(outlets=[VIDEO_ANALYSED])
    def write_video_document(
        probed: dict[str, Any],
        manifest: dict[str, Any],
        loaded: dict[str, Any],
        segments: dict[str, Any],
        passes: dict[str, Any],
    ) -> dict[str, Any]:
        from reko.index.client import IndexNames, get_client
        from reko.pipeline import Job, previous_video_document, video_document

        context = get_current_context()
        job = Job.from_xcom(probed)
        names = IndexNames.current()
        doc = video_document(
            previous=previous_video_document(get_client(), names, job.store.video_id),
            job=job,
            manifest=manifest,
            load=loaded,
            segments=segments,
            batch_reports=_batch_reports(context["ti"]),
            dag_id=context["dag"].dag_id,
            run_id=context["run_id"],
            passes=passes,
        )
        get_client().index(index=names.videos, id=doc["video_id"], body=doc, params={"refresh": "true"})
        context["outlet_events"][VIDEO_ANALYSED].extra = {
            "video_id": doc["video_id"],
            "source_uri": doc["source_uri"],
            "status": doc["status"],
            "frame_count": doc["frame_count"],
            **doc["counts"],
        }
        calls = doc["api_calls"]
        print(f"{doc['video_id']}: {doc['status']}, {doc['counts']}")
        print(
            f"{doc['backend']} calls: {calls['made']} made, {calls['skipped_cached']} skipped (cached),"
            f" {calls['skipped_duplicates']} skipped (identical to the previous frame);"
            f" estimated cost ${calls['estimated_cost_usd']:.4f}"
            f" at ${calls['price_per_1000']:g} per 1,000 images"
        )
        print(f"this run ${doc['run_cost_usd']:.4f}; every run of this video so far: {doc['totals']}")
        return {
            k: doc[k]
            for k in ("video_id", "status", "counts", "api_calls", "mediaconvert", "run_cost_usd", "totals")
        }

    @task
    def summarise_run() -> dict[str, Any]:
        """Release the lease; report the run to the log and (via the plugin) the run's note."""
        from reko import run_summary
        from reko.index.client import IndexNames, get_client
        from reko.index.lease import release
        from reko.pipeline import Job

        context = get_current_context()
        ti = context["ti"]
        probed = ti.xcom_pull(task_ids="probe")
        job = Job.from_xcom(probed)
        release(get_client(), IndexNames.current(), job.store.video_id, _me(context))
        manifest = ti.xcom_pull(task_ids="extract_frames")
        reports = _batch_reports(ti)
        load = ti.xcom_pull(task_ids="load_detections")
        segments = ti.xcom_pull(task_ids="build_segments")
        passes = ti.xcom_pull(task_ids="build_passes")
        video = ti.xcom_pull(task_ids="write_video_document") or {}
        started = context["dag_run"].start_date
        states = ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id]).get(ti.run_id, {})
        reasons = run_summary.failure_reasons(ti, states, context["dag"].task_ids)
        note = run_summary.render(
            outcomes=run_summary.task_outcomes(states, reasons),
            video_id=job.store.video_id,
            source_uri=job.cfg.video_uri,
            status=video.get("status", "failed"),
            manifest=manifest,
            reports=reports,
            load=load,
            segments=segments,
            passes=passes,
            api_calls=video.get("api_calls"),
            costs=video,
            stages=run_summary.stage_times(
                probe_s=probed.get("probe_s"),
                manifest=manifest,
                reports=reports,
                load=load,
                segments=segments,
                passes=passes,
            ),
            wall_s=(datetime.now(UTC) - started).total_seconds() if started else None,
        )
        print(note)
        return {"video_id": job.store.video_id, "status": video.get("status", "failed"), "note": note}

    @task(trigger_rule="one_failed", retries=0)
    def fail_run_on_failed_frames() -> None:
        """Leaf that turns the run red when batches failed (the load after them still succeeds)."""
        from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

        failed = [f for r in _batch_reports(get_current_context()["ti"]) for f in r["failed"]]
        if not failed:
            raise AirflowSkipException("no frame failed (an earlier step did; see it)")
        frames = sorted({f["frame_index"] for f in failed})
        raise AirflowFailException(f"{len(frames)} frames have no result: {frames[:50]}")

    probed = probe()
    summary = summarise_run()
    manifest = ExtractFramesOperator(
        task_id="extract_frames", probed=probed, waiter_delay=mediaconvert_poll_s()
    ).output
    wait_for_video >> probed
    analysed = analyse_frames.partial(probed=probed).expand(batch=plan_batches(manifest, probed))
    loaded = load_detections()
    analysed >> loaded
    failed_frames = fail_run_on_failed_frames()
    analysed >> failed_frames
    segments = build_segments(probed, loaded)
    written = write_video_document(probed, manifest, loaded, segments, build_passes(probed, loaded))
    [written, failed_frames] >> summary.as_teardown(setups=probed)


video_analysis()
