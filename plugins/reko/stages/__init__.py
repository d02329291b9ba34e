"""The steps that cut media, one small class per backend behind the same interface.

`ExtractFramesOperator` and `CutClipOperator` (reko.operators) are plain operators that ask the
backend's stage to do the work: ffmpeg in the task process (`reko.stages.local`), or a
MediaConvert job the task waits for deferred (`reko.aws.stages`). Which stage a backend uses is
one entry in `reko.analysis.base`'s traits, so the operators never ask which backend it is, and
the DAG files import neither boto3 nor the amazon provider when they are parsed.

A stage method returns the step's result, or raises `TaskDeferred` (through `op.defer`); the
operator's `execute_complete` then hands the trigger's event to the same stage's `resume`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Context

    from reko.pipeline import Job


class FrameStage(Protocol):
    def extract(self, op: BaseOperator, context: Context, job: Job) -> dict[str, Any]:
        """Cut the run's frames (or find them cut) and return the manifest plus `this_run`."""

    def resume(
        self, op: BaseOperator, context: Context, job: Job, event: dict[str, Any] | None, **kwargs: Any
    ) -> dict[str, Any]:
        """Finish after a deferral: the same result as `extract`."""


class ClipStage(Protocol):
    def cut(self, op: BaseOperator, context: Context, item: dict[str, Any]) -> dict[str, Any]:
        """Cut one planned clip and return what was cut (range, duration, size, method)."""

    def resume(
        self,
        op: BaseOperator,
        context: Context,
        item: dict[str, Any],
        event: dict[str, Any] | None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Finish after a deferral: the same result as `cut`."""
