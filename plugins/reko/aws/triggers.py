"""Triggers for the deferrable MediaConvert wait; importable by the triggerer (lives in plugins/)."""

from __future__ import annotations

from airflow.providers.amazon.aws.triggers.base import AwsBaseWaiterTrigger

from reko.aws.mediaconvert import STATUS_QUERIES, WAITER_NAME, MediaConvertHook


class MediaConvertJobCompleteTrigger(AwsBaseWaiterTrigger):
    """
    Fire when a MediaConvert job is COMPLETE (success) or ERROR/CANCELED (error event).

    :param job_id: The MediaConvert job id.
    :param waiter_delay: Seconds between GetJob calls. (default: 30)
    :param waiter_max_attempts: Maximum number of GetJob calls. (default: 120)
    :param aws_conn_id: The Airflow connection used for AWS credentials.
    :param region_name: The AWS region of the job.
    :param verify: Whether or not to verify SSL certificates.
    :param botocore_config: Configuration dictionary (key-values) for botocore client.
    """

    aws_hook_class = MediaConvertHook

    def __init__(
        self,
        *,
        job_id: str,
        waiter_delay: int = 30,
        waiter_max_attempts: int = 120,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict | None = None,
    ) -> None:
        super().__init__(
            serialized_fields={"job_id": job_id},
            waiter_name=WAITER_NAME,
            waiter_args={"Id": job_id},
            failure_message=f"MediaConvert job {job_id} failed",
            status_message=f"MediaConvert job {job_id} status",
            status_queries=STATUS_QUERIES,
            return_key="job_id",
            return_value=job_id,
            waiter_delay=waiter_delay,
            waiter_max_attempts=waiter_max_attempts,
            aws_conn_id=aws_conn_id,
            region_name=region_name,
            verify=verify,
            botocore_config=botocore_config,
        )
