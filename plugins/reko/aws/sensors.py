"""Waiting for the run's video in S3 with the amazon provider's own sensor (deferrable)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.sensors.s3 import S3KeySensor

if TYPE_CHECKING:
    from airflow.sdk import Context


class VideoObjectSensor(S3KeySensor):
    """`S3KeySensor` on the run's `video_uri`; a `file://` video has nothing to wait for.

    The URI's connection id (`s3://conn_id@bucket/key`, the form ObjectStoragePath reads) becomes
    the sensor's `aws_conn_id`, so the wait and the reads use the same credentials.
    """

    template_fields: Sequence[str] = (*S3KeySensor.template_fields, "video_uri")

    def __init__(self, *, video_uri: str, **kwargs: Any) -> None:
        super().__init__(bucket_key=video_uri, **kwargs)
        self.video_uri = video_uri

    def execute(self, context: Context) -> None:
        from reko.storage import split_s3_uri  # not at DAG-parse time: reko.storage imports reko.media

        if not self.video_uri.startswith("s3://"):
            self.log.info("%s is not in S3: nothing to wait for", self.video_uri)
            return
        conn_id, self.bucket_name, self.bucket_key = split_s3_uri(self.video_uri, "video_uri")
        if conn_id:
            self.aws_conn_id = conn_id
        super().execute(context)
