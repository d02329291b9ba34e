"""The aws backend's media stages: a MediaConvert job per step, submitted once and waited for
deferred, by the same `MediaConvertCreateJobOperator` a user would put in a DAG of their own.

The stage builds that operator inside the running task and runs its `execute`; its deferral
(`TaskDeferred`, method `execute_complete`) propagates out of the reko operator, which hands the
event back here, so the wait, the job-id marker and the error handling are the provider-style
operator's own, and the DAG files never import it at parse time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from reko.aws.operators import MediaConvertCreateJobOperator

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Context

    from reko.pipeline import Job

# MediaConvert frame capture runs at several times real time; allow the video's duration again as a
# margin over the fixed minimum, so a six-hour video does not time out at the one-hour default.
_MIN_WAIT_S = 3600


def _wait_attempts(duration_s: float, delay_s: int) -> int:
    return max(1, int((_MIN_WAIT_S + duration_s) // max(1, delay_s)))


def _job_operator(op: BaseOperator, duration_s: float, **kwargs: Any) -> MediaConvertCreateJobOperator:
    """The MediaConvert operator for `op`'s task: its connection, region, delay and deferral."""
    delay = op.waiter_delay  # type: ignore[attr-defined]
    mc = MediaConvertCreateJobOperator(
        task_id=op.task_id,
        aws_conn_id=op.aws_conn_id,  # type: ignore[attr-defined]
        region_name=op.region_name,  # type: ignore[attr-defined]
        verify=op.verify,  # type: ignore[attr-defined]
        botocore_config=op.botocore_config,  # type: ignore[attr-defined]
        waiter_delay=delay,
        waiter_max_attempts=_wait_attempts(duration_s, delay),
        deferrable=op.deferrable,  # type: ignore[attr-defined]
        settings=kwargs.pop("settings", {}),
        **kwargs,
    )
    mc._cached_logger = op.log  # its lines belong in this task's log
    return mc


class Frames:
    """A FRAME_CAPTURE job writing `<stem>.NNNNNNN.jpg` where ffmpeg would, then the same manifest."""

    def extract(self, op: BaseOperator, context: Context, job: Job) -> dict[str, Any]:
        from reko.aws.mediaconvert_jobs import frame_capture_settings
        from reko.media import InvalidVideoError, expected_frame_count
        from reko.pipeline import current_frames, this_run

        cfg, store, info = job.cfg, job.store, job.info
        try:
            manifest, _ = current_frames(cfg, store)
            if manifest:
                return this_run(manifest, extracted=False)
            settings = frame_capture_settings(
                cfg.video_uri,
                str(store.frames_dir),
                cfg.frame_interval_s,
                max_captures=expected_frame_count(info.duration_s, cfg.frame_interval_s),
                stem=store.stem,
            )
        except (InvalidVideoError, ValueError) as exc:
            raise AirflowFailException(str(exc)) from exc
        mc = _job_operator(
            op,
            info.duration_s,
            settings=settings,
            marker_uri=str(store.frames_dir),
            user_metadata={"reko_video_id": store.video_id},
        )
        return self._frames_written(mc, job, mc.execute(context))

    def resume(
        self, op: BaseOperator, context: Context, job: Job, event: Any, **kwargs: Any
    ) -> dict[str, Any]:
        mc = _job_operator(op, job.info.duration_s)
        return self._frames_written(mc, job, mc.execute_complete(context, event, **kwargs))

    def _frames_written(
        self, mc: MediaConvertCreateJobOperator, job: Job, mc_job: dict[str, Any]
    ) -> dict[str, Any]:
        """List what the job wrote (S3Hook), check it, and write the manifest; record what the job
        cost this run (nothing when an earlier run's job was reused)."""
        from reko.aws.mediaconvert import list_frames
        from reko.aws.mediaconvert_jobs import proxy_billed_minutes
        from reko.config import mediaconvert_price_per_minute
        from reko.media import InvalidVideoError
        from reko.pipeline import this_run, write_manifest
        from reko.storage import parse_uri, source_fingerprint

        fingerprint = source_fingerprint(parse_uri(job.cfg.video_uri))
        indexes = list_frames(str(job.store.frames_dir), stem=job.store.stem, aws_conn_id=mc.aws_conn_id)
        timing = mc.hook.get_job(mc_job["job_id"]).get("Timing", {})
        ran_s = 0.0
        if "FinishTime" in timing and "StartTime" in timing:
            ran_s = (timing["FinishTime"] - timing["StartTime"]).total_seconds()
        mc.log.info("MediaConvert job %s wrote %d frames in %.1f s", mc_job["job_id"], len(indexes), ran_s)
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
        mc.log.info(
            "MediaConvert proxy: %.2f output minutes this run, estimated $%.4f", minutes, minutes * price
        )
        return this_run(
            {**manifest, "mediaconvert_job_id": mc_job["job_id"]},
            extracted=not mc_job.get("reused"),
            extract_s=ran_s,
            mediaconvert=mediaconvert,
        )


class Clips:
    """A job with `InputClippings` (ZEROBASED timecodes): MediaConvert cuts by frame number."""

    def cut(self, op: BaseOperator, context: Context, item: dict[str, Any]) -> dict[str, Any]:
        from reko.aws.mediaconvert_jobs import clip_settings

        try:
            settings = clip_settings(
                item["source_uri"],
                item["clip_uri"],
                item["start_ms"],
                item["end_ms"],
                item["fps"],
                duration_s=item["duration_ms"] / 1000,
                audio=item["has_audio"],
            )
        except ValueError as exc:
            raise AirflowFailException(str(exc)) from exc
        mc = _job_operator(
            op,
            (item["end_ms"] - item["start_ms"]) / 1000,
            settings=settings,
            marker_uri=item["clip_uri"].rsplit("/", 1)[0],
            user_metadata={"reko_clip_id": item["clip_id"][:256]},
        )
        return self._clip_written(mc, item, mc.execute(context))

    def resume(
        self, op: BaseOperator, context: Context, item: dict[str, Any], event: Any, **kwargs: Any
    ) -> dict[str, Any]:
        mc = _job_operator(op, (item["end_ms"] - item["start_ms"]) / 1000)
        return self._clip_written(mc, item, mc.execute_complete(context, event, **kwargs))

    def _clip_written(
        self, mc: MediaConvertCreateJobOperator, item: dict[str, Any], mc_job: dict[str, Any]
    ) -> dict[str, Any]:
        """What MediaConvert wrote: the frames are the requested ones (it clips by frame number)."""
        from reko.aws.mediaconvert_jobs import clip_frames, normalize_fps
        from reko.storage import parse_uri

        fps = normalize_fps(item["fps"])
        first, last = clip_frames(item["start_ms"], item["end_ms"], fps, item["duration_ms"] / 1000)
        clip = parse_uri(item["clip_uri"], "clip_uri")
        mc.log.info("MediaConvert job %s wrote %s", mc_job["job_id"], item["clip_uri"])
        return {
            "start_ms": round(first * 1000 / fps),
            "end_ms": round((last + 1) * 1000 / fps),
            "duration_s": round(float((last + 1 - first) / fps), 6),
            "size_bytes": clip.stat().st_size,
            "method": "mediaconvert",
        }
