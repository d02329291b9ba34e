"""The local backend's media stages: ffmpeg in the task process, nothing to wait for."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Context

    from reko.pipeline import Job


class Frames:
    def extract(self, op: BaseOperator, context: Context, job: Job) -> dict[str, Any]:
        from reko.media import InvalidVideoError
        from reko.pipeline import extract

        try:
            return extract(job.cfg, job.store, job.info)
        except (InvalidVideoError, ValueError) as exc:  # not a video after all: a retry will not help
            raise AirflowFailException(str(exc)) from exc

    def resume(
        self, op: BaseOperator, context: Context, job: Job, event: Any, **kwargs: Any
    ) -> dict[str, Any]:
        raise RuntimeError("ffmpeg frame extraction never defers; nothing to resume")


class Clips:
    def cut(self, op: BaseOperator, context: Context, item: dict[str, Any]) -> dict[str, Any]:
        from reko.clip_pipeline import ClipInputError, cut_local

        try:
            return cut_local(item)
        except (ClipInputError, ValueError) as exc:
            raise AirflowFailException(str(exc)) from exc

    def resume(
        self, op: BaseOperator, context: Context, item: dict[str, Any], event: Any, **kwargs: Any
    ) -> dict[str, Any]:
        raise RuntimeError("ffmpeg clip cutting never defers; nothing to resume")
