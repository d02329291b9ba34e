"""MediaConvert operator: submit a job once (idempotent across re-runs) and wait for it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.amazon.aws.utils import validate_execute_complete_event
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, conf

from reko.aws.mediaconvert import MediaConvertHook, MediaConvertJobError, config_problem, submit_job_once
from reko.aws.triggers import MediaConvertJobCompleteTrigger
from reko.config import aws_conn_id

if TYPE_CHECKING:
    from airflow.sdk import Context


class MediaConvertCreateJobOperator(AwsBaseOperator[MediaConvertHook]):
    """
    Create a MediaConvert job from `settings` and wait for it (deferred by default).

    A re-run with the same settings does not start a second job: with `marker_uri` the job id is
    kept in a marker object there and reused while the job is COMPLETE or in flight (see
    `reko.aws.mediaconvert.submit_job_once`).

    :param settings: Job `Settings` (e.g. from `reko.aws.mediaconvert_jobs`). (templated)
    :param role_arn: IAM role for the job; default the connection extra `mediaconvert_role_arn`. (templated)
    :param mediaconvert_queue: Queue ARN; default the extra `mediaconvert_queue`, else the Default
        queue. (templated; not `queue`, which is BaseOperator's executor queue)
    :param marker_uri: Folder (`s3://conn@bucket/...` or `file://`) for the job-id marker. (templated)
    :param user_metadata: Job UserMetadata. (templated)
    :param tags: Job tags. (templated)
    :param wait_for_completion: Wait in the worker when not deferrable. (default: True)
    :param waiter_delay: Seconds between status checks. (default: 30)
    :param waiter_max_attempts: Maximum number of status checks. (default: 120)
    :param deferrable: Wait in the triggerer. Default: conf `operators.default_deferrable`, as in the
        provider; the deployment sets it True (AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE) so waits defer.
    """

    aws_hook_class = MediaConvertHook
    template_fields: Sequence[str] = aws_template_fields(
        "settings", "role_arn", "mediaconvert_queue", "marker_uri", "user_metadata", "tags"
    )
    template_fields_renderers: ClassVar[dict] = {"settings": "json"}

    def __init__(
        self,
        *,
        settings: dict[str, Any],
        role_arn: str | None = None,
        mediaconvert_queue: str | None = None,
        marker_uri: str | None = None,
        user_metadata: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
        wait_for_completion: bool = True,
        waiter_delay: int = 30,
        waiter_max_attempts: int = 120,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("aws_conn_id", aws_conn_id())  # the one default AWS connection of reko
        super().__init__(**kwargs)
        self.settings = settings
        self.role_arn = role_arn
        self.mediaconvert_queue = mediaconvert_queue
        self.marker_uri = marker_uri
        self.user_metadata = user_metadata
        self.tags = tags
        self.wait_for_completion = wait_for_completion
        self.waiter_delay = waiter_delay
        self.waiter_max_attempts = waiter_max_attempts
        self.deferrable = deferrable

    def execute(self, context: Context) -> dict[str, Any]:
        """Return `{"job_id", "status", "reused", "settings_digest"}` (status COMPLETE once waited).

        A configuration error (no job role, no region, a request MediaConvert refuses as bad or
        forbidden) fails the task at once: a retry would send the same request.
        """
        try:
            job = submit_job_once(
                self.hook,
                self.settings,
                marker_uri=self.marker_uri,
                role_arn=self.role_arn,
                queue=self.mediaconvert_queue,
                user_metadata=self.user_metadata,
                tags=self.tags,
            )
        except Exception as exc:
            problem = config_problem(exc)
            if problem is None:
                raise
            raise AirflowFailException(problem) from exc
        job_id = job["job_id"]
        if job["status"] == "COMPLETE":
            self.log.info("MediaConvert job %s already completed: reusing its outputs", job_id)
            return job
        if self.deferrable:
            self.log.info("Deferring until MediaConvert job %s completes", job_id)
            self.defer(
                trigger=MediaConvertJobCompleteTrigger(
                    job_id=job_id,
                    waiter_delay=self.waiter_delay,
                    waiter_max_attempts=self.waiter_max_attempts,
                    aws_conn_id=self.aws_conn_id,
                    region_name=self.region_name,
                    verify=self.verify,
                    botocore_config=self.botocore_config,
                ),
                method_name="execute_complete",
                kwargs={"reused": job["reused"], "settings_digest": job["settings_digest"]},
            )
        if self.wait_for_completion:
            finished = self.hook.wait_for_job(job_id, self.waiter_delay, self.waiter_max_attempts)
            job["status"] = finished["Status"]
        return job

    def execute_complete(
        self,
        context: Context,
        event: dict[str, Any] | None = None,
        reused: bool = False,
        settings_digest: str | None = None,
    ) -> dict[str, Any]:
        validated = validate_execute_complete_event(event)
        job = self.hook.get_job(validated["job_id"])
        if validated["status"] != "success" or job["Status"] != "COMPLETE":
            if job["Status"] in ("ERROR", "CANCELED"):
                raise MediaConvertJobError(job)
            raise AirflowException(
                f"MediaConvert job {validated['job_id']} did not complete ({job['Status']}): "
                f"{validated.get('message', '')}"
            )
        self.log.info("MediaConvert job %s complete", job["Id"])
        return {
            "job_id": job["Id"],
            "status": job["Status"],
            "reused": reused,
            "settings_digest": settings_digest,
        }
