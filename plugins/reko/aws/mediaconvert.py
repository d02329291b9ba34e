"""AWS Elemental MediaConvert: hook, idempotent job submission, and reading frame-capture output.

Endpoint: botocore (1.43) resolves MediaConvert's regional endpoint
(`https://mediaconvert.<region>.amazonaws.com`) from its endpoint rules; DescribeEndpoints is
deprecated and never called. Accounts that still need their old account-specific endpoint set it
in the connection extras as `{"service_config": {"mediaconvert": {"endpoint_url": "https://..."}}}`
(AwsBaseHook honours it; a top-level `endpoint_url` would also redirect S3 and every other service).

Job role and queue come from the arguments or, failing that, from the connection extras
`mediaconvert_role_arn` and `mediaconvert_queue` (`role_arn` is taken: AwsBaseHook assumes it).
"""

from __future__ import annotations

import hashlib
import json
from functools import cached_property
from pathlib import Path
from typing import Any

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

ROLE_EXTRA, QUEUE_EXTRA = "mediaconvert_role_arn", "mediaconvert_queue"
WAITER_NAME = "job_complete"
STATUS_QUERIES = ["Job.Status", "Job.JobPercentComplete", "Job.ErrorCode", "Job.ErrorMessage"]
IN_FLIGHT, FAILED = ("SUBMITTED", "PROGRESSING"), ("ERROR", "CANCELED")


class MediaConvertJobError(RuntimeError):
    """A job ended in ERROR or CANCELED; the message carries MediaConvert's code and message."""

    def __init__(self, job: dict[str, Any]):
        self.job_id = job.get("Id")
        self.status = job.get("Status")
        self.error_code = job.get("ErrorCode")
        self.error_message = job.get("ErrorMessage")
        detail = f"error {self.error_code}: {self.error_message}" if self.error_code else "no error reported"
        super().__init__(f"MediaConvert job {self.job_id} ended {self.status}: {detail}")


# MediaConvert's answers to a request that is wrong as sent: retrying the same request cannot help
CONFIG_ERROR_CODES = frozenset({"BadRequestException", "ForbiddenException", "AccessDeniedException"})


class MediaConvertConfigError(ValueError):
    """The job cannot be submitted as configured (no job role, a refused request): not retried."""


def config_problem(error: Exception) -> str | None:
    """Why `error` is a configuration error (fail now, without retries), or None if it may pass."""
    from botocore.exceptions import ClientError, NoRegionError

    if isinstance(error, ValueError | NoRegionError):
        return str(error)
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "")
        if code in CONFIG_ERROR_CODES:
            message = error.response.get("Error", {}).get("Message", "")
            return f"MediaConvert refused the job ({code}): {message}; check the connection and job settings"
    return None


class MediaConvertHook(AwsBaseHook):
    """
    Interact with AWS Elemental MediaConvert.

    Thin wrapper around :external+boto3:py:class:`boto3.client("mediaconvert") <MediaConvert.Client>`.
    Additional arguments (such as ``aws_conn_id``) are passed down to AwsBaseHook.
    """

    def __init__(self, *args, **kwargs) -> None:
        kwargs["client_type"] = "mediaconvert"
        super().__init__(*args, **kwargs)

    @cached_property
    def waiter_path(self) -> Path:
        # The provider's get_waiter() looks next to its own modules unless told otherwise.
        return Path(__file__).parent / "waiters" / "mediaconvert.json"

    @property
    def job_role_arn(self) -> str | None:
        """IAM role MediaConvert assumes to read inputs and write outputs (connection extra)."""
        return self.conn_config.extra_config.get(ROLE_EXTRA)

    @property
    def queue(self) -> str | None:
        """Queue ARN or name from the connection extras (None: the account's Default queue)."""
        return self.conn_config.extra_config.get(QUEUE_EXTRA)

    def create_job(
        self,
        settings: dict[str, Any],
        role_arn: str | None = None,
        queue: str | None = None,
        client_request_token: str | None = None,
        user_metadata: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Submit a job and return MediaConvert's `Job` description."""
        role = role_arn or self.job_role_arn
        if not role:
            raise MediaConvertConfigError(
                f"no MediaConvert job role: pass role_arn or set the extra {ROLE_EXTRA!r} "
                f"on connection {self.aws_conn_id!r}"
            )
        params: dict[str, Any] = {"Role": role, "Settings": settings, **kwargs}
        optional = {
            "Queue": queue or self.queue,
            "ClientRequestToken": client_request_token,
            "UserMetadata": user_metadata,
            "Tags": tags,
        }
        params.update({k: v for k, v in optional.items() if v})
        return self.conn.create_job(**params)["Job"]

    def get_job(self, job_id: str) -> dict[str, Any]:
        return self.conn.get_job(Id=job_id)["Job"]

    def wait_for_job(self, job_id: str, waiter_delay: int = 30, waiter_max_attempts: int = 120) -> dict:
        """Poll until COMPLETE (returns the job) or ERROR/CANCELED (raises MediaConvertJobError)."""
        from airflow.providers.amazon.aws.exceptions import WaiterTerminalFailure
        from airflow.providers.amazon.aws.utils.waiter_with_logging import wait

        try:
            wait(
                waiter=self.get_waiter(WAITER_NAME),
                waiter_delay=waiter_delay,
                waiter_max_attempts=waiter_max_attempts,
                args={"Id": job_id},
                failure_message=f"MediaConvert job {job_id} failed",
                status_message=f"MediaConvert job {job_id} status",
                status_args=STATUS_QUERIES,
            )
        except WaiterTerminalFailure:
            raise MediaConvertJobError(self.get_job(job_id)) from None
        return self.get_job(job_id)


def settings_digest(settings: dict[str, Any]) -> str:
    """Short stable hash of job settings: the same video and settings give the same key."""
    canonical = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:20]


def marker_path(marker_uri: str, settings: dict[str, Any]):
    """Where the job id for these settings is kept: `<marker_uri>/_mediaconvert-<digest>.json`."""
    from reko.storage import parse_uri

    return parse_uri(marker_uri, "marker_uri") / f"_mediaconvert-{settings_digest(settings)}.json"


def submit_job_once(
    hook: MediaConvertHook,
    settings: dict[str, Any],
    *,
    marker_uri: str | None,
    role_arn: str | None = None,
    queue: str | None = None,
    user_metadata: dict[str, str] | None = None,
    tags: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Start a job for `settings` unless one already exists; return job id, status and `reused`.

    `ClientRequestToken` dedupes only for about a minute, so the job id is also kept in a small
    marker object under `marker_uri` (next to the job's outputs) keyed by a hash of the settings.
    On a re-run: COMPLETE or in flight -> that job is returned (the caller waits for it);
    ERROR/CANCELED or unknown to MediaConvert -> a new job. The token carries the attempt number
    so a new attempt is not answered with the failed job; a crash between submit and marker write
    is covered by the token when the re-run comes within the minute.
    """
    from botocore.exceptions import ClientError

    from reko.storage import read_json, write_json

    digest = settings_digest(settings)
    marker = marker_path(marker_uri, settings) if marker_uri else None
    previous = read_json(marker) if marker is not None else None
    attempt = 1
    if previous:
        try:
            job = hook.get_job(previous["job_id"])
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "NotFoundException":
                raise
            job = {"Id": previous["job_id"], "Status": "UNKNOWN"}
        hook.log.info("Job %s from an earlier run is %s", job["Id"], job["Status"])
        if job["Status"] == "COMPLETE" or job["Status"] in IN_FLIGHT:
            return {"job_id": job["Id"], "status": job["Status"], "reused": True, "settings_digest": digest}
        attempt = int(previous.get("attempt", 1)) + 1
    metadata = {"reko_settings": digest, **(user_metadata or {})}
    job = hook.create_job(
        settings,
        role_arn=role_arn,
        queue=queue,
        client_request_token=f"reko-{digest}-{attempt}",
        user_metadata=metadata,
        tags=tags,
    )
    hook.log.info("Submitted MediaConvert job %s (attempt %d)", job["Id"], attempt)
    if marker is not None:
        write_json(marker, {"job_id": job["Id"], "attempt": attempt, "settings_digest": digest})
    return {"job_id": job["Id"], "status": job["Status"], "reused": False, "settings_digest": digest}


def list_frames(frames_uri: str, *, stem: str | None = None, aws_conn_id: str | None = None) -> list[int]:
    """Indexes 0..n-1 of the `<stem>.NNNNNNN.jpg` captures under an S3 prefix.

    `frames_uri` is `s3://[conn_id@]bucket/prefix/`; the connection in the URI wins over
    `aws_conn_id` (default `REKO_AWS_CONN_ID`). Frame i was captured at `frame_timestamp_ms(i, interval)`.
    A missing capture (a gap) or captures of several stems in one prefix is an error, since
    indexes would no longer map to times.
    """
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    from reko.config import aws_conn_id as default_conn_id
    from reko.media import parse_frame_name
    from reko.storage import split_s3_uri

    conn_in_uri, bucket, prefix = split_s3_uri(frames_uri, "frames_uri")
    conn_id = conn_in_uri or aws_conn_id or default_conn_id()
    prefix = prefix.rstrip("/") + "/" if prefix else ""
    keys = S3Hook(aws_conn_id=conn_id).list_keys(bucket_name=bucket, prefix=prefix, delimiter="/")
    by_stem: dict[str, list[int]] = {}
    for key in keys:
        parsed = parse_frame_name(key[len(prefix) :])
        if parsed and (stem is None or parsed[0] == stem):
            by_stem.setdefault(parsed[0], []).append(parsed[1])
    if len(by_stem) > 1:
        raise ValueError(f"frames of several videos under {frames_uri}: {', '.join(sorted(by_stem))}")
    indexes = sorted(next(iter(by_stem.values()), []))
    missing = sorted(set(range(indexes[-1] + 1)) - set(indexes)) if indexes else []
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
        raise ValueError(f"frame capture under {frames_uri} has gaps: missing index(es) {shown}")
    return indexes
