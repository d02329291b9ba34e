"""Copies each `video_analysis` run's summary into the run's note when the run ends; links the
probe's asset alias before the first run's tasks start (`_link_probe_alias`); has a LocalExecutor's
scheduler import what reko's task processes need before it forks them (`reko.preload`).

Airflow 3 tasks cannot write a DAG run's note (the execution API has no such call), but the
scheduler calls plugin listeners with the finished run attached to its own database session:
setting the note there is committed with the run's final state, without a second connection
(which SQLite would block) and without credentials in a task. dag.test() passes a detached run;
its thread-local scoped session is the one dag.test() commits, so the note goes through that.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from typing import Any

from airflow.listeners import hookimpl

log = logging.getLogger(__name__)

DAG_IDS = frozenset({"video_analysis"})


def _summary_of(dag_run: Any, session: Any) -> str | None:
    from airflow.models.xcom import XComModel
    from sqlalchemy import and_, or_, select

    from reko.run_summary import PROBE_TASK_ID, SHORT_TASK_ID, SUMMARY_TASK_ID
    from reko.short_path import SUMMARY_KEY

    row = session.scalars(
        select(XComModel)
        .where(
            XComModel.dag_id == dag_run.dag_id,
            XComModel.run_id == dag_run.run_id,
            XComModel.map_index == -1,
            or_(  # the mapped path's teardown, or the short path's task (the probe, or the retry)
                and_(XComModel.task_id == SUMMARY_TASK_ID, XComModel.key == "return_value"),
                and_(XComModel.task_id.in_([PROBE_TASK_ID, SHORT_TASK_ID]), XComModel.key == SUMMARY_KEY),
            ),
        )
        .order_by(XComModel.timestamp.desc())  # a task cleared alone leaves others' older summaries
    ).first()
    value = XComModel.deserialize_value(row) if row is not None else None
    return value.get("note") if isinstance(value, dict) else None


def _task_key(task_id: str, map_index: int) -> str:
    return task_id if map_index < 0 else f"{task_id}_{map_index}"


def _note_without_summary(dag_run: Any, session: Any, status: str) -> str:
    """A run that ended without a summary (its `probe` failed before it had a result, so the
    teardown did not run; or `analyse_short_video` did): the note
    says which tasks failed and why, from the reasons `on_task_instance_failed` left."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from sqlalchemy import select

    from reko.run_summary import FAILURE_KEY, render_without_summary, task_outcomes

    tis = session.scalars(
        select(TaskInstance).where(
            TaskInstance.dag_id == dag_run.dag_id, TaskInstance.run_id == dag_run.run_id
        )
    ).all()
    rows = session.scalars(
        select(XComModel).where(
            XComModel.dag_id == dag_run.dag_id,
            XComModel.run_id == dag_run.run_id,
            XComModel.key == FAILURE_KEY,
        )
    ).all()
    reasons = {_task_key(r.task_id, r.map_index): str(XComModel.deserialize_value(r)) for r in rows}
    states = {_task_key(ti.task_id, ti.map_index): str(ti.state) if ti.state else "" for ti in tis}
    return render_without_summary(
        dag_id=dag_run.dag_id,
        run_id=dag_run.run_id,
        video_uri=(dag_run.conf or {}).get("video_uri"),
        status=status,
        outcomes=task_outcomes(states, reasons),
    )


def _write_note(dag_run: Any, status: str) -> None:
    if dag_run.dag_id not in DAG_IDS:
        return
    from sqlalchemy.orm import object_session

    from reko.run_summary import merge_note

    run, session = dag_run, object_session(dag_run)
    try:
        if session is None:  # dag.test() passes a detached run: use the thread's scoped session
            from airflow import settings
            from airflow.models.dagrun import DagRun

            session = settings.Session()
            run = session.get(DagRun, dag_run.id)
        summary = _summary_of(run, session) or _note_without_summary(run, session, status)
        run.note = merge_note(run.note, summary)
    except Exception:  # a listener must never break the scheduler
        log.exception("could not write the summary of %s into its note", dag_run.run_id)


_probe_alias_linked = False  # per scheduler process: once linked, the link stays


def _link_probe_alias(session: Any) -> bool:
    """Link the probe's asset alias to `reko_video_analysed` unless it already is; True once linked.

    Airflow links an alias to an asset on the first event through it, and two tasks that do that at
    once race: one of them is set failed after it succeeded, on a UNIQUE violation of
    `asset_alias_asset` (Airflow 3.3.2; seen with two short runs at once on a fresh deployment).
    Linked here, in the scheduler, before a run's tasks start, no first event is left to race.
    """
    from airflow.models.asset import AssetAliasModel, AssetModel
    from sqlalchemy import select

    from reko.assets import VIDEO_ANALYSED, VIDEO_ANALYSED_BY_PROBE

    by_name = AssetAliasModel.name == VIDEO_ANALYSED_BY_PROBE.name
    alias = session.scalar(select(AssetAliasModel).where(by_name))
    asset = session.scalar(
        select(AssetModel).where(AssetModel.name == VIDEO_ANALYSED.name, AssetModel.uri == VIDEO_ANALYSED.uri)
    )
    if alias is None or asset is None:  # the DAG is not parsed yet: try at the next run
        return False
    if asset not in alias.assets:
        # a savepoint keeps a second scheduler's simultaneous link (HA, never SQLite) from failing
        # this scheduler's transaction; SQLite allows one scheduler, and pysqlite's savepoints are unsafe
        nested = session.begin_nested() if session.get_bind().dialect.name != "sqlite" else nullcontext()
        with nested:
            alias.assets.append(asset)
            session.flush()
        log.info("linked asset alias %s to %s", VIDEO_ANALYSED_BY_PROBE.name, VIDEO_ANALYSED.name)
    return True


@hookimpl
def on_starting(component: Any) -> None:
    """In a LocalExecutor's scheduler, before it forks its workers: import what reko's tasks
    need, so every task process has it already (`reko.preload`). Nowhere else."""
    try:
        from reko.config import default_backend, preload_enabled
        from reko.preload import forks_task_processes, preload_task_modules

        if preload_enabled() and forks_task_processes(component):
            preload_task_modules(default_backend())
    except Exception:  # a listener must never stop the scheduler from starting
        log.exception("could not preload reko's task modules; each task process imports its own")


@hookimpl
def on_dag_run_running(dag_run: Any, msg: str) -> None:
    global _probe_alias_linked
    if _probe_alias_linked or dag_run.dag_id not in DAG_IDS:
        return
    try:
        from sqlalchemy.orm import object_session

        session = object_session(dag_run)
        if session is not None:  # the scheduler's session: the link commits with the run's start
            _probe_alias_linked = _link_probe_alias(session)
    except Exception:  # a listener must never break the scheduler
        log.exception("could not link the probe's asset alias; a first short run may race")


@hookimpl
def on_dag_run_success(dag_run: Any, msg: str) -> None:
    _write_note(dag_run, "success")


@hookimpl
def on_dag_run_failed(dag_run: Any, msg: str) -> None:
    _write_note(dag_run, "failed")


@hookimpl
def on_task_instance_failed(previous_state: Any, task_instance: Any, error: Any) -> None:
    """In the task's own process: leave why it failed as an XCom, for the run's note."""
    if getattr(task_instance, "dag_id", None) not in DAG_IDS:
        return
    try:
        from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

        from reko.run_summary import FAILURE_KEY, failure_reason

        if isinstance(task_instance, RuntimeTaskInstance):  # not the API server's TaskInstance
            task_instance.xcom_push(key=FAILURE_KEY, value=failure_reason(error))
    except Exception:  # a listener must never break the task runner
        log.exception("could not record why %s failed", getattr(task_instance, "task_id", "?"))
