"""The analysis and clip DAGs' own operators: plain operators, whatever the backend.

The backend is a run Param, read when the task runs. The media steps hand their work to the
backend's stage (`reko.stages`: ffmpeg in the task, or a MediaConvert job waited for deferred,
like the amazon provider's operators); the probe borrows the provider's S3 sensor only for an
`s3://` video. So parsing a DAG file, which every task process does first, imports neither boto3
nor the amazon provider (about 0.23 CPU-s a task process, measured in bench/).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowFailException
from airflow.providers.standard.operators.branch import BranchMixIn
from airflow.sdk import BaseOperator

from reko import config

if TYPE_CHECKING:
    from airflow.sdk import Context

_AWS_FIELDS = ("aws_conn_id", "region_name", "verify", "botocore_config")


class _MediaStepOperator(BaseOperator):
    """What a media step needs whichever backend runs it: the AWS connection and the wait.

    :param aws_conn_id: AWS connection for MediaConvert and S3 (default `REKO_AWS_CONN_ID`). (templated)
    :param region_name: AWS region; default the connection's. (templated)
    :param verify: TLS verification for the AWS clients. (templated)
    :param botocore_config: botocore client configuration. (templated)
    :param waiter_delay: Seconds between checks of a MediaConvert job. (default: 30)
    :param deferrable: Wait for a MediaConvert job in the triggerer. (default: True)
    """

    def __init__(
        self,
        *,
        aws_conn_id: str | None = None,
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict[str, Any] | None = None,
        waiter_delay: int = 30,
        deferrable: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.aws_conn_id = aws_conn_id or config.aws_conn_id()  # reko's one default AWS connection
        self.region_name = region_name
        self.verify = verify
        self.botocore_config = botocore_config
        self.waiter_delay = waiter_delay
        self.deferrable = deferrable


class ExtractFramesOperator(_MediaStepOperator):
    """
    Cut a run's frames: ffmpeg for backend `local`, a MediaConvert FRAME_CAPTURE job for `aws`.

    Both write `<stem>.NNNNNNN.jpg` under the video's frames folder and finish with the same
    manifest (frame count, fingerprint of the source), so analysis never knows which ran.

    :param probed: The `probe` task's output (a `reko.pipeline.Job` as XCom). (templated)
    """

    template_fields: Sequence[str] = ("probed", *_AWS_FIELDS)

    def __init__(self, *, probed: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.probed = probed

    def execute(self, context: Context) -> dict[str, Any]:
        from reko.analysis.base import frame_stage
        from reko.pipeline import Job

        job = Job.from_xcom(self.probed)
        return frame_stage(job.cfg.backend).extract(self, context, job)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        from reko.analysis.base import frame_stage
        from reko.pipeline import Job

        job = Job.from_xcom(self.probed)
        return frame_stage(job.cfg.backend).resume(self, context, job, event, **kwargs)


class CutClipOperator(_MediaStepOperator):
    """
    Cut one planned clip: a frame-exact ffmpeg cut for backend `local`, a MediaConvert job with
    `InputClippings` (ZEROBASED timecodes) for `aws`. Both cut the frames shown in [start, end).

    :param item: One range from `reko.clip_pipeline.plan_clips` (mapped over). (templated)
    """

    template_fields: Sequence[str] = ("item", *_AWS_FIELDS)

    def __init__(self, *, item: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.item = item

    def execute(self, context: Context) -> dict[str, Any]:
        from reko.analysis.base import clip_stage

        context["clip_label"] = self.item["label"]  # type: ignore[typeddict-unknown-key]
        return self._cut(clip_stage(self.item["backend"]).cut(self, context, self.item))

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        from reko.analysis.base import clip_stage

        context["clip_label"] = self.item["label"]  # type: ignore[typeddict-unknown-key]
        return self._cut(clip_stage(self.item["backend"]).resume(self, context, self.item, event, **kwargs))

    def _cut(self, cut: dict[str, Any]) -> dict[str, Any]:
        item = self.item
        self.log.info(
            "%s: %.3f s, %d bytes (%s)", item["clip_uri"], cut["duration_s"], cut["size_bytes"], cut["method"]
        )
        return {"clip_id": item["clip_id"], **cut}


class ProbeVideoOperator(BaseOperator, BranchMixIn):
    """
    Wait for the run's video, take its lease, read it, and choose the short or the mapped path.

    One task where there were two (a sensor, then the probe): a short clip pays for one task
    process fewer. An `s3://` video that has not landed defers in the triggerer through the
    provider's sensor (`reko.aws.sensors.VideoObjectSensor`: key and deadline logged,
    `video_wait_s`, no retries on timeout), built only when the video is in S3; a video being
    worked on by another run is waited for by rescheduling, without holding a worker slot.

    :param video_uri: The video. (templated)
    :param wait_s: Seconds to wait for an `s3://` video (the `video_wait_s` Param). (templated)
    :param poke_interval: Seconds between checks for an `s3://` video.
    :param short_task_id: The task that tries a short video's failed frames again (and fails red
        if they still fail), or does the whole short run when `analyse_short` is False.
    :param mapped_task_id: The first task of the mapped path.
    :param analyse_short: Analyse a short video here, whole, so that a short run is one task
        process; its asset event goes through the `reko.assets.VIDEO_ANALYSED_BY_PROBE` alias,
        which must be among the task's outlets.
    """

    template_fields: Sequence[str] = ("video_uri", "wait_s")

    def __init__(
        self,
        *,
        video_uri: str,
        wait_s: float | str = 3600,
        poke_interval: float = 30,
        short_task_id: str,
        mapped_task_id: str,
        analyse_short: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.analyse_short = analyse_short
        self.video_uri = video_uri
        self.wait_s = wait_s
        self.poke_interval = poke_interval
        self.short_task_id = short_task_id
        self.mapped_task_id = mapped_task_id

    def _sensor(self) -> Any:
        from reko.aws.sensors import VideoObjectSensor

        sensor = VideoObjectSensor(
            task_id=self.task_id,
            video_uri=self.video_uri,
            wait_s=self.wait_s,
            poke_interval=self.poke_interval,
            deferrable=True,
        )
        sensor._cached_logger = self.log  # its lines belong in this task's log
        return sensor

    def execute(self, context: Context) -> Any:
        if self.video_uri.startswith("s3://"):
            self._sensor().execute(context)  # defers (raises) while the video has not landed
        return self._probe(context)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        self._sensor().execute_complete(context, event)  # may defer again
        return self._probe(context)

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context) -> Any:
        """A wait that timed out names the key and the wait, and is not retried (the sensor's)."""
        from airflow.sdk.bases.operator import TRIGGER_FAIL_REPR

        if next_method == TRIGGER_FAIL_REPR:
            return self._sensor().resume_execution(next_method, next_kwargs, context)
        return super().resume_execution(next_method, next_kwargs, context)

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
        if short and self.analyse_short:
            return self._analyse_short(context, job)
        return self.do_branch(context, self.short_task_id if short else self.mapped_task_id)

    def _analyse_short(self, context: Context, job: dict[str, Any]) -> Any:
        """The whole short run here (one task process instead of two); every other task is skipped.

        Failed frames are handed to `short_task_id` instead of failing this task: failing here would
        mark the mapped path upstream-failed rather than skipped, so a clear of this task alone could
        not turn the run green. That task tries them once more, fails red if they still fail, and is
        the one to clear after a fix (stored results are reused, so only those frames are redone)."""
        from reko.assets import VIDEO_ANALYSED, VIDEO_ANALYSED_BY_PROBE
        from reko.short_path import run_short_path

        result = run_short_path(context, job, summary_if_failed=False, lease_held=True)
        failed = result["report"]["failed"]
        if failed:
            self.log.warning("%d frames failed: %s tries them again", len(failed), self.short_task_id)
            return self.do_branch(context, self.short_task_id)
        context["outlet_events"][VIDEO_ANALYSED_BY_PROBE].add(VIDEO_ANALYSED, extra=result["asset_extra"])
        return self.do_branch(context, None)


class WaitForRunsOperator(BaseOperator):
    """
    Wait, deferred, until every run this scan started (or found already there) has ended.

    One trigger for all of a scan's runs: the trigger tasks return as soon as their run exists,
    instead of each deferring and coming back in a task process of its own when its run ends. The
    trigger ends this task too (`reko.triggers.RunsEndedTrigger`): it never resumes in a process.
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
        from airflow.utils.state import DagRunState

        from reko.archive import trigger_states
        from reko.triggers import RunsEndedTrigger

        outcomes = trigger_states(context["ti"], self.trigger_task_id)
        created = ("success", "skipped")  # started now, or there already
        requests = self.requests or []
        run_ids = [r["trigger_run_id"] for i, r in enumerate(requests) if outcomes.get(i) in created]
        if not run_ids:
            return
        self.log.info("Waiting for %d %s runs to end", len(run_ids), self.waited_dag_id)
        # ends this task in the triggerer: no task process comes back only to return
        trigger = RunsEndedTrigger(
            dag_id=self.waited_dag_id,
            states=[DagRunState.SUCCESS, DagRunState.FAILED],
            run_ids=run_ids,
            poll_interval=self.poll_interval,
        )
        self.defer(trigger=trigger, method_name="execute_complete")

    def execute_complete(self, context: Context, event: Any = None) -> None:
        """Only dag.test() comes back here (it resumes a task after any event); under a scheduler
        the triggerer ends the task on the trigger's TaskSuccessEvent."""
        self.log.info("Every %s run this scan waited for has ended", self.waited_dag_id)
