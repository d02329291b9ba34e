"""Triggers that end their task in the triggerer (the AWS ones are in `reko.aws.triggers`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from airflow.providers.standard.triggers.external_task import DagStateTrigger
from airflow.triggers.base import TaskSuccessEvent, TriggerEvent


class RunsEndedTrigger(DagStateTrigger):
    """The standard provider's `DagStateTrigger`, ending the waiting task itself once every run has
    reached one of `states`: the triggerer marks the task a success, and no task process starts
    only to return (one process and one scheduling round fewer per scan run)."""

    def serialize(self) -> tuple[str, dict[str, Any]]:
        _, kwargs = super().serialize()
        return f"{type(self).__module__}.{type(self).__qualname__}", kwargs

    async def run(self) -> AsyncIterator[TriggerEvent]:
        async for _ in super().run():
            self.log.info("All %d %s runs waited for have ended", len(self.run_ids or []), self.dag_id)
            yield TaskSuccessEvent()
            return
