"""The short path of `video_analysis`: one task does a short video's whole run.

Cutting, analysis, detections, segments, passes and the video document are `reko.pipeline.
analyse_video`; what the mapped path's teardown does (the summary, the release of the lease) is
done here too. The probe runs it (a short run is one task process); `analyse_short_video` runs it
again only for frames that failed in the probe, and when it is cleared.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

log = logging.getLogger(__name__)

RESULT_KEY = "run"  # the run's result: pushed, because a task that fails returns nothing
SUMMARY_KEY = "summary"  # the note the plugin copies into the run (reko.listeners)


def run_short_path(
    context: Any, job: dict[str, Any], *, summary_if_failed: bool = True, lease_held: bool = False
) -> dict[str, Any]:
    """The run's result, pushed under `run`; its summary pushed under `summary` (not when frames
    failed and `summary_if_failed` is False: the probe then hands them on, and the task that tries
    them again writes the run's summary).

    The lease is taken again first, unless `lease_held` (the probe, which took it a moment ago in
    this process): it is already this run's unless the task was cleared after the run ended, when
    another run may hold it; then the task waits, rescheduled. It is released whatever happens; a
    retry takes it again."""
    from airflow.sdk.exceptions import AirflowRescheduleException

    from reko.config import lease_wait_s
    from reko.index.client import IndexNames, get_client
    from reko.index.lease import Holder, airflow_run_is_live, claim, release
    from reko.pipeline import Job, analyse_video
    from reko.run_summary import summarise_short

    ti, me = context["ti"], Holder(context["dag"].dag_id, context["run_id"])
    client, names, video_id = get_client(), IndexNames.current(), job["store"]["video_id"]
    holder = None if lease_held else claim(client, names, video_id, me, airflow_run_is_live)
    if holder is not None:
        log.info("%s is being worked on by %s: waiting for it to end", video_id, holder)
        raise AirflowRescheduleException(datetime.now(UTC) + timedelta(seconds=lease_wait_s()))
    started = context["dag_run"].start_date
    try:
        result = analyse_video(
            client,
            names,
            Job.from_xcom(job),
            dag_id=me.dag_id,
            run_id=me.run_id,
            not_before=started.isoformat() if started else None,
        )
    finally:
        release(client, names, video_id, me)
    lines = result.pop("log")
    summary = summarise_short(context, job, result)
    ti.xcom_push(key=RESULT_KEY, value=result)
    if summary_if_failed or not result["report"]["failed"]:
        ti.xcom_push(key=SUMMARY_KEY, value=summary)
        lines.append(summary["note"])
    print("\n".join(lines))
    return result
