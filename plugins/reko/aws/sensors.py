"""Waiting for the run's video in S3 with the amazon provider's own sensor (deferrable)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.sensors.s3 import S3KeySensor

if TYPE_CHECKING:
    from airflow.sdk import Context

WAIT_PARAM = "video_wait_s"


class VideoObjectSensor(S3KeySensor):
    """`S3KeySensor` on the run's `video_uri`; a `file://` video has nothing to wait for.

    The URI's connection id (`s3://conn_id@bucket/key`, the form ObjectStoragePath reads), else
    `REKO_AWS_CONN_ID` for a bare `s3://bucket/key`, becomes the sensor's `aws_conn_id`, so the wait
    and the reads use the same credentials (`reko.storage.s3_conn_id`).

    :param video_uri: The video to wait for. (templated)
    :param wait_s: Seconds to wait before failing, without retries (the run's `video_wait_s` Param
        when templated). The key and the deadline are logged, the trigger itself only says
        "Sleeping for ...". (templated)
    """

    template_fields: Sequence[str] = (*S3KeySensor.template_fields, "video_uri", "wait_s")

    def __init__(self, *, video_uri: str, wait_s: float | str = 3600, **kwargs: Any) -> None:
        super().__init__(bucket_key=video_uri, **kwargs)
        self.video_uri = video_uri
        self.wait_s = wait_s

    def execute(self, context: Context) -> None:
        # not at parse time: reko.storage imports reko.media
        from reko.storage import s3_conn_id, split_s3_uri

        if not self.video_uri.startswith("s3://"):
            self.log.info("%s is not in S3: nothing to wait for", self.video_uri)
            return
        _, self.bucket_name, self.bucket_key = split_s3_uri(self.video_uri, "video_uri")
        self.aws_conn_id = s3_conn_id(self.video_uri, "video_uri")
        self.timeout = self._wait_seconds()
        deadline = datetime.now(UTC) + timedelta(seconds=self.timeout)
        self.log.info(
            "Waiting for s3://%s/%s (connection %s) until %s, %g s from now (Param %s), checking every %g s",
            self.bucket_name,
            self.bucket_key,
            self.aws_conn_id,
            deadline.isoformat(timespec="seconds"),
            self.timeout,
            WAIT_PARAM,
            self.poke_interval,
        )
        super().execute(context)

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context) -> Any:
        """A wait that timed out names the key and the wait, and is not retried."""
        from airflow.sdk.exceptions import AirflowSensorTimeout

        try:
            return super().resume_execution(next_method, next_kwargs, context)
        except AirflowSensorTimeout as exc:
            raise AirflowSensorTimeout(
                f"{self.video_uri} did not appear within {self._wait_seconds():g} s (Param {WAIT_PARAM});"
                " upload it and clear this task, or trigger the run again with a longer wait"
            ) from exc

    def _wait_seconds(self) -> float:
        from airflow.sdk.exceptions import AirflowFailException

        try:
            wait = float(self.wait_s)
        except (TypeError, ValueError):
            message = f"{WAIT_PARAM} must be a number of seconds, got {self.wait_s!r}"
            raise AirflowFailException(message) from None
        if wait <= 0:
            raise AirflowFailException(f"{WAIT_PARAM} must be greater than 0, got {self.wait_s!r}")
        return wait
