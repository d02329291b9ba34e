"""Operators whose work is done by ffmpeg locally and by a MediaConvert job on AWS.

One operator per step keeps the DAG's shape the same for both backends: the backend is a run
Param, read when the task runs. On AWS the operator submits the job once (a re-run reuses it) and
defers until it completes, like the amazon provider's operators.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowFailException
from airflow.providers.standard.operators.branch import BranchMixIn
from airflow.sdk import BaseOperator

from reko.aws.operators import MediaConvertCreateJobOperator
from reko.aws.sensors import VideoObjectSensor

if TYPE_CHECKING:
    from airflow.sdk import Context

# MediaConvert frame capture runs at several times real time; allow the video's duration again as a
# margin over the fixed minimum, so a six-hour video does not time out at the one-hour default.
_MIN_WAIT_S = 3600
_CUT_LOG = ("duration_s", "size_bytes", "method")


def _wait_attempts(duration_s: float, delay_s: int) -> int:
    return max(1, int((_MIN_WAIT_S + duration_s) // max(1, delay_s)))


class ExtractFramesOperator(MediaConvertCreateJobOperator):
    """
    Cut a run's frames: ffmpeg for backend `local`, a MediaConvert FRAME_CAPTURE job for `aws`.

    Both write `<stem>.NNNNNNN.jpg` under the video's frames folder and finish with the same
    manifest (frame count, fingerprint of the source), so analysis never knows which ran.

    :param probed: The `probe` task's output (a `reko.pipeline.Job` as XCom). (templated)
    :param deferrable: Wait for the MediaConvert job in the triggerer. (default: True)
    """

    template_fields: Sequence[str] = (*MediaConvertCreateJobOperator.template_fields, "probed")

    def __init__(self, *, probed: Any, deferrable: bool = True, **kwargs: Any) -> None:
        super().__init__(settings={}, deferrable=deferrable, **kwargs)
        self.probed = probed

    def execute(self, context: Context) -> dict[str, Any]:
        from reko.analysis.base import frames_cut_in_process
        from reko.aws.mediaconvert_jobs import frame_capture_settings
        from reko.media import InvalidVideoError, expected_frame_count
        from reko.pipeline import Job, current_frames, extract, this_run

        job = Job.from_xcom(self.probed)
        cfg, store, info = job.cfg, job.store, job.info
        try:
            if frames_cut_in_process(cfg.backend):
                return extract(cfg, store, info)
            manifest, _ = current_frames(cfg, store)
            if manifest:
                return this_run(manifest, extracted=False)
            self.settings = frame_capture_settings(
                cfg.video_uri,
                str(store.frames_dir),
                cfg.frame_interval_s,
                max_captures=expected_frame_count(info.duration_s, cfg.frame_interval_s),
                stem=store.stem,
            )
        except (InvalidVideoError, ValueError) as exc:
            raise AirflowFailException(str(exc)) from exc
        self.marker_uri = str(store.frames_dir)
        self.waiter_max_attempts = _wait_attempts(info.duration_s, self.waiter_delay)
        self.user_metadata = {"reko_video_id": store.video_id}
        return self._frames_written(context, super().execute(context))

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        return self._frames_written(context, super().execute_complete(context, event, **kwargs))

    def _frames_written(self, context: Context, mc_job: dict[str, Any]) -> dict[str, Any]:
        """List what the job wrote (S3Hook), check it, and write the manifest; record what the job
        cost this run (nothing when an earlier run's job was reused)."""
        from reko.aws.mediaconvert import list_frames
        from reko.aws.mediaconvert_jobs import proxy_billed_minutes
        from reko.config import mediaconvert_price_per_minute
        from reko.media import InvalidVideoError
        from reko.pipeline import Job, this_run, write_manifest
        from reko.storage import parse_uri, source_fingerprint

        job = Job.from_xcom(self.probed)
        fingerprint = source_fingerprint(parse_uri(job.cfg.video_uri))
        indexes = list_frames(str(job.store.frames_dir), stem=job.store.stem, aws_conn_id=self.aws_conn_id)
        timing = self.hook.get_job(mc_job["job_id"]).get("Timing", {})
        ran_s = 0.0
        if "FinishTime" in timing and "StartTime" in timing:
            ran_s = (timing["FinishTime"] - timing["StartTime"]).total_seconds()
        self.log.info("MediaConvert job %s wrote %d frames in %.1f s", mc_job["job_id"], len(indexes), ran_s)
        try:
            manifest = write_manifest(job.cfg, job.store, job.info, len(indexes), fingerprint, ran_s)
        except InvalidVideoError as exc:
            raise AirflowFailException(str(exc)) from exc
        seconds = 0.0 if mc_job.get("reused") else proxy_billed_minutes(job.info.duration_s) * 60
        price = mediaconvert_price_per_minute()
        minutes = round(seconds / 60, 4)
        mediaconvert = {
            "jobs": 0 if mc_job.get("reused") else 1,
            "proxy_minutes": minutes,
            "price_per_minute": price,
            "estimated_cost_usd": round(seconds / 60 * price, 6),
        }
        self.log.info(
            "MediaConvert proxy: %.2f output minutes this run, estimated $%.4f", minutes, minutes * price
        )
        return this_run(
            {**manifest, "mediaconvert_job_id": mc_job["job_id"]},
            extracted=not mc_job.get("reused"),
            extract_s=ran_s,
            mediaconvert=mediaconvert,
        )


class CutClipOperator(MediaConvertCreateJobOperator):
    """
    Cut one planned clip: a frame-exact ffmpeg cut for backend `local`, a MediaConvert job with
    `InputClippings` (ZEROBASED timecodes) for `aws`. Both cut the frames shown in [start, end).

    :param item: One range from `reko.clip_pipeline.plan_clips` (mapped over). (templated)
    :param deferrable: Wait for the MediaConvert job in the triggerer. (default: True)
    """

    template_fields: Sequence[str] = (*MediaConvertCreateJobOperator.template_fields, "item")

    def __init__(self, *, item: Any, deferrable: bool = True, **kwargs: Any) -> None:
        super().__init__(settings={}, deferrable=deferrable, **kwargs)
        self.item = item

    def execute(self, context: Context) -> dict[str, Any]:
        from reko.analysis.base import frames_cut_in_process
        from reko.aws.mediaconvert_jobs import clip_settings
        from reko.clip_pipeline import ClipInputError, cut_local

        item = self.item
        context["clip_label"] = item["label"]  # type: ignore[typeddict-unknown-key]
        try:
            if frames_cut_in_process(item["backend"]):
                return self._cut(item, cut_local(item))
            self.settings = clip_settings(
                item["source_uri"],
                item["clip_uri"],
                item["start_ms"],
                item["end_ms"],
                item["fps"],
                duration_s=item["duration_ms"] / 1000,
                audio=item["has_audio"],
            )
        except (ClipInputError, ValueError) as exc:
            raise AirflowFailException(str(exc)) from exc
        self.marker_uri = item["clip_uri"].rsplit("/", 1)[0]
        self.waiter_max_attempts = _wait_attempts(
            (item["end_ms"] - item["start_ms"]) / 1000, self.waiter_delay
        )
        self.user_metadata = {"reko_clip_id": item["clip_id"][:256]}
        return self._clip_written(super().execute(context))

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        context["clip_label"] = self.item["label"]  # type: ignore[typeddict-unknown-key]
        return self._clip_written(super().execute_complete(context, event, **kwargs))

    def _clip_written(self, mc_job: dict[str, Any]) -> dict[str, Any]:
        """What MediaConvert wrote: the frames are the requested ones (it clips by frame number)."""
        from reko.aws.mediaconvert_jobs import clip_frames, normalize_fps
        from reko.storage import parse_uri

        item = self.item
        fps = normalize_fps(item["fps"])
        first, last = clip_frames(item["start_ms"], item["end_ms"], fps, item["duration_ms"] / 1000)
        clip = parse_uri(item["clip_uri"], "clip_uri")
        cut = {
            "start_ms": round(first * 1000 / fps),
            "end_ms": round((last + 1) * 1000 / fps),
            "duration_s": round(float((last + 1 - first) / fps), 6),
            "size_bytes": clip.stat().st_size,
            "method": "mediaconvert",
        }
        self.log.info("MediaConvert job %s wrote %s", mc_job["job_id"], item["clip_uri"])
        return self._cut(item, cut)

    def _cut(self, item: dict[str, Any], cut: dict[str, Any]) -> dict[str, Any]:
        self.log.info(
            "%s: %.3f s, %d bytes (%s)", item["clip_uri"], cut["duration_s"], cut["size_bytes"], cut["method"]
        )
        return {"clip_id": item["clip_id"], **cut}


class ProbeVideoOperator(VideoObjectSensor, BranchMixIn):
    """
    Wait for the run's video, take its lease, read it, and choose the short or the mapped path.

    One task where there were two (a sensor, then the probe): a short clip pays for one task
    process fewer. An `s3://` video that has not landed defers in the triggerer, exactly like
    `VideoObjectSensor` (key and deadline logged, `video_wait_s`, no retries on timeout); a video
    being worked on by another run is waited for by rescheduling, without holding a worker slot.

    :param short_task_id: The task that does a short video's whole run.
    :param mapped_task_id: The first task of the mapped path.
    """

    def __init__(self, *, short_task_id: str, mapped_task_id: str, **kwargs: Any) -> None:
        super().__init__(deferrable=True, **kwargs)
        self.short_task_id = short_task_id
        self.mapped_task_id = mapped_task_id

    def execute(self, context: Context) -> Any:
        super().execute(context)  # defers (raises) while an s3:// video has not landed
        return self._probe(context)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        super().execute_complete(context, event)  # may defer again
        return self._probe(context)

    def _probe(self, context: Context) -> Any:
        from datetime import UTC, datetime, timedelta

        from airflow.sdk.exceptions import AirflowRescheduleException

        from reko.config import lease_wait_s
        from reko.index.lease import Holder
        from reko.pipeline import claim_and_probe

        params = dict(context["params"])
        try:
            job, holder, short = claim_and_probe(params, Holder(context["dag"].dag_id, context["run_id"]))
        except (ValueError, NotImplementedError) as exc:  # bad input: a retry will not help
            raise AirflowFailException(str(exc)) from exc
        if job is None:
            self.log.info("%s is being worked on by %s: waiting for it to end", params["video_uri"], holder)
            raise AirflowRescheduleException(datetime.now(UTC) + timedelta(seconds=lease_wait_s()))
        context["ti"].xcom_push(key="job", value=job)
        return self.do_branch(context, self.short_task_id if short else self.mapped_task_id)


class WaitForRunsOperator(BaseOperator):
    """
    Wait, deferred, until every run this scan started (or found already there) has ended.

    One trigger for all of a scan's runs: the trigger tasks return as soon as their run exists,
    instead of each deferring and coming back in a task process of its own when its run ends.
    Runs whose trigger did not succeed (not created) are not waited for.

    :param trigger_task_id: The mapped task that triggers the runs.
    :param requests: The trigger task's kwargs, one per run (`trigger_run_id` each). (templated)
    :param waited_dag_id: The DAG of those runs.
    :param poll_interval: Seconds between checks of their states.
    """

    template_fields: Sequence[str] = ("requests",)

    def __init__(
        self, *, trigger_task_id: str, requests: Any, waited_dag_id: str, poll_interval: float, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.trigger_task_id = trigger_task_id
        self.requests = requests
        self.waited_dag_id = waited_dag_id
        self.poll_interval = poll_interval

    def execute(self, context: Context) -> None:
        from airflow.providers.standard.triggers.external_task import DagStateTrigger
        from airflow.utils.state import DagRunState

        from reko.archive import trigger_states

        outcomes = trigger_states(context["ti"], self.trigger_task_id)
        created = ("success", "skipped")  # started now, or there already
        requests = self.requests or []
        run_ids = [r["trigger_run_id"] for i, r in enumerate(requests) if outcomes.get(i) in created]
        if not run_ids:
            return
        self.log.info("Waiting for %d %s runs to end", len(run_ids), self.waited_dag_id)
        trigger = DagStateTrigger(
            dag_id=self.waited_dag_id,
            states=[DagRunState.SUCCESS, DagRunState.FAILED],
            run_ids=run_ids,
            poll_interval=self.poll_interval,
        )
        self.defer(trigger=trigger, method_name="execute_complete")

    def execute_complete(self, context: Context, event: Any = None) -> None:
        self.log.info("Every %s run this scan waited for has ended", self.waited_dag_id)
