"""The short report a person reads at the end of a `video_analysis` run.

Written to the task log by the run's last task, returned as its XCom, and copied into the DAG
run's note by `reko.listeners` (the note is what the Airflow UI shows on the run's page; tasks
cannot write it themselves in Airflow 3).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

SUMMARY_TASK_ID = "summarise_run"
PROBE_TASK_ID = "probe"  # analyses a short video whole: its result under `run`, its summary under `summary`
SHORT_TASK_ID = "analyse_short_video"  # tries the probe's failed frames of a short video again (same keys)
BATCH_TASK_ID = "analyse_frames"
NOTE_HEADING = "#### reko run summary"
MAX_FAILED_LISTED = 10
MAX_RUNNERS_LISTED = 50
FAILURE_KEY = "reko_failure"  # XCom a failed task leaves (reko.listeners): why it failed
MAX_REASON_CHARS = 500
FAILED_STATES = ("failed", "up_for_retry")
NOT_RUN_STATES = ("upstream_failed",)


def failure_reason(error: object) -> str:
    """One line saying why a task failed: the exception's type and message, shortened."""
    if isinstance(error, BaseException):
        text = f"{type(error).__name__}: {error}"
    else:
        text = str(error or "no error was reported")
    text = " ".join(text.split())
    return text if len(text) <= MAX_REASON_CHARS else text[: MAX_REASON_CHARS - 1] + "…"


def split_task_key(key: str, task_ids: Iterable[str]) -> tuple[str, int]:
    """(task id, map index) of a task-state key (`<task_id>` or `<task_id>_<map index>`)."""
    ids = set(task_ids)
    task, _, index = key.rpartition("_")
    if key not in ids and task in ids and index.isdigit():
        return task, int(index)
    return key, -1


def failure_reasons(ti: Any, states: dict[str, Any], task_ids: Iterable[str]) -> dict[str, str]:
    """The reason each failed task of this run left (`FAILURE_KEY`), by task-state key."""
    reasons = {}
    for key, state in states.items():
        if state in FAILED_STATES:
            task_id, index = split_task_key(key, task_ids)
            reason = ti.xcom_pull(task_ids=task_id, key=FAILURE_KEY, map_indexes=index)
            if reason:
                reasons[key] = str(reason)
    return reasons


def task_outcomes(states: dict[str, Any], reasons: dict[str, str]) -> dict[str, Any]:
    """{"failed": [(task, reason)], "not_run": [task]} from `{task key: state}` of one run.

    Keys are task ids, or `<task_id>_<map index>` for mapped instances, as Airflow's task-state
    API returns them; `reasons` are keyed the same way.
    """
    failed = [
        (key, reasons.get(key, "see its log")) for key, st in sorted(states.items()) if st in FAILED_STATES
    ]
    not_run = sorted(key for key, st in states.items() if st in NOT_RUN_STATES)
    return {"failed": failed, "not_run": not_run}


def render_outcomes(outcomes: dict[str, Any] | None) -> list[str]:
    """Which tasks failed and why, and which did not run because of them."""
    if not outcomes:
        return []
    lines = [f"- `{task}` failed: {reason}" for task, reason in outcomes.get("failed", [])]
    if outcomes.get("not_run"):
        lines.append(
            "- not run (an upstream task failed): " + ", ".join(f"`{t}`" for t in outcomes["not_run"])
        )
    return lines


def render_without_summary(
    *, dag_id: str, run_id: str, video_uri: str | None, status: str, outcomes: dict[str, Any]
) -> str:
    """The note of a run whose `summarise_run` did not run (it failed before the lease: `probe`)."""
    from reko.storage import video_id_for

    video = video_id_for(video_uri) if video_uri else "no video"
    lines = [
        headline(video, status, "no frames extracted"),
        f"**{video}: {status}** — `{video_uri or '(no video_uri)'}`",
    ]
    lines.append("No frames were extracted: the run ended before its first stage finished.")
    lines += render_outcomes(outcomes)
    if not outcomes.get("failed"):
        lines.append(f"- no task reported a failure; see run {run_id} of {dag_id} in the UI")
    return "\n".join(lines)


def headline(video: str, status: str, gist: str) -> str:
    """The note's first line: the heading with the outcome on it, because a collapsed note in
    Airflow's UI shows its first line, and a bare heading said nothing (issue 16). It still starts
    with `NOTE_HEADING`, which `merge_note` finds the summary by."""
    return f"{NOTE_HEADING} · {video}: {status} · {gist}"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def stage_times(
    *,
    probe_s: float | None,
    manifest: dict[str, Any] | None,
    reports: list[dict[str, Any]],
    load: dict[str, Any] | None,
    segments: dict[str, Any] | None,
    passes: dict[str, Any] | None = None,
) -> dict[str, float | None]:
    """Seconds spent inside each stage's work (analysis: summed over batches)."""
    manifest = manifest or {}
    this_run = manifest.get("this_run")  # the manifest's own extract_s is the run that cut the frames
    return {
        "probe": probe_s,
        "extract": this_run.get("extract_s") if this_run else manifest.get("extract_s"),
        "analyse": round(sum(r.get("elapsed_s", 0.0) for r in reports), 3) if reports else None,
        "load": (load or {}).get("elapsed_s"),
        "segments": (segments or {}).get("elapsed_s"),
        "passes": (passes or {}).get("elapsed_s"),
    }


def render(
    *,
    video_id: str,
    source_uri: str,
    status: str,
    manifest: dict[str, Any] | None,
    reports: list[dict[str, Any]],
    load: dict[str, Any] | None,
    segments: dict[str, Any] | None,
    api_calls: dict[str, Any] | None,
    stages: dict[str, float | None],
    wall_s: float | None,
    outcomes: dict[str, Any] | None = None,
    costs: dict[str, Any] | None = None,
    passes: dict[str, Any] | None = None,
) -> str:
    """Markdown: outcome, what failed and why, counts, failed frames with reasons, calls and cost,
    time per stage. Any stage may be missing (the run failed before it), batches included."""
    frames = (manifest or {}).get("frame_count")
    if frames is None:
        gist = "no frames extracted"
    else:
        failed = len((load or {}).get("failed_frames", []))
        gist = (
            f"{frames} frames, {(load or {}).get('detections', '-')} detections,"
            f" {(passes or {}).get('passes', '-')} runner passes, {failed} failed frames"
        )
    lines = [headline(video_id, status, gist), f"**{video_id}: {status}** — `{source_uri}`"]
    lines += render_outcomes(outcomes)
    if frames is None:
        lines.append("No frames were extracted.")
    else:
        failed = (load or {}).get("failed_frames", [])
        lines.append(
            f"- {frames} frames, {(load or {}).get('detections', '-')} detections,"
            f" {(segments or {}).get('segments', '-')} segments, {(passes or {}).get('passes', '-')} runner"
            f" passes, {len(failed)} failed frames"
        )
        if passes and passes.get("numbers"):
            lines.append(f"  - runners: {', '.join(passes['numbers'][:MAX_RUNNERS_LISTED])}")
        for failure in failed[:MAX_FAILED_LISTED]:
            lines.append(f"  - frame {failure['frame_index']} ({failure['kind']}): {failure['reason']}")
        if len(failed) > MAX_FAILED_LISTED:
            lines.append(f"  - … and {len(failed) - MAX_FAILED_LISTED} more (the video document lists them)")
    if api_calls:
        lines.append(
            f"- calls: {api_calls['made']} made, {api_calls['skipped_cached']} skipped (cached),"
            f" {api_calls['skipped_duplicates']} skipped (identical or near-identical frames);"
            f" estimated cost ${api_calls['estimated_cost_usd']:.4f}"
        )
    elif reports:
        made = sum(r["made"] for r in reports)
        lines.append(f"- calls: {made} made (the video document was not written)")
    if costs and "run_cost_usd" in costs:
        proxy, totals = costs.get("mediaconvert") or {}, costs.get("totals") or {}
        minutes, proxy_usd = proxy.get("proxy_minutes", 0), proxy.get("estimated_cost_usd", 0)
        lines.append(
            f"- cost this run ${costs['run_cost_usd']:.4f}"
            f" (MediaConvert proxy {minutes:g} min, ${proxy_usd:.4f});"
            f" all {totals.get('runs', 1)} runs of this video ${totals.get('estimated_cost_usd', 0):.4f}"
        )
    longest = max((r.get("elapsed_s", 0.0) for r in reports), default=None)
    batches = f" in {len(reports)} batches, longest {_seconds(longest)}"
    cached = (manifest or {}).get("this_run", {}).get("extracted") is False
    notes = {
        "analyse": batches if reports else "",
        "extract": " (frames cut by an earlier run)" if cached else "",
    }
    parts = [f"{name} {_seconds(value)}{notes.get(name, '')}" for name, value in stages.items()]
    inside = sum(v for v in stages.values() if v)
    lines.append("- time: " + " · ".join(parts))
    if wall_s is not None:
        lines.append(
            f"- wall time {_seconds(wall_s)} since the run started; {_seconds(max(0.0, wall_s - inside))}"
            " outside the stages' work (scheduling, queueing, waiting for the video or the lease)"
        )
    return "\n".join(lines)


def merge_note(existing: str | None, summary: str) -> str:
    """The run's note with the summary in place of any earlier one; a person's text is kept."""
    kept = (existing or "").split(NOTE_HEADING, 1)[0].rstrip()
    return f"{kept}\n\n{summary}" if kept else summary


def batch_reports(pull: Callable[..., Any]) -> list[dict[str, Any]]:
    """Every analysis batch's report via `ti.xcom_pull` (one mapped instance pulls as a dict,
    several as a list); the short path's one report when it ran instead."""
    reports = pull(task_ids=BATCH_TASK_ID, key="report")
    found = [r for r in (reports if isinstance(reports, list) else [reports]) if r]
    short = pull(task_ids=SHORT_TASK_ID, key="run")
    return found + ([short["report"]] if short else [])


def run_results(pull: Callable[..., Any]) -> dict[str, Any]:
    """What the run's stages left in XCom, from whichever path ran (either may have failed early)."""
    short = pull(task_ids=SHORT_TASK_ID, key="run") or {}
    if short:
        return {**short, "reports": [short["report"]]}
    return {
        "manifest": pull(task_ids="extract_frames"),
        "reports": batch_reports(pull),
        "load": pull(task_ids="load_detections"),
        "segments": pull(task_ids="build_segments"),
        "passes": pull(task_ids="build_passes"),
        "video": pull(task_ids="write_video_document"),
    }


def summarise(context: Any, job: dict[str, Any]) -> dict[str, Any]:
    """`summarise_run` (the mapped path's teardown): release the run's lease, then the note from
    what every task left.

    A teardown cannot take the return values of tasks that failed or were skipped, so the
    results are pulled; `job` is the setup's (probe's) result."""
    from reko.index.client import IndexNames, get_client
    from reko.index.lease import Holder, release

    ti = context["ti"]
    video_id = job["store"]["video_id"]
    release(get_client(), IndexNames.current(), video_id, Holder(context["dag"].dag_id, context["run_id"]))
    states = ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id]).get(ti.run_id, {})
    reasons = failure_reasons(ti, states, context["dag"].task_ids)
    return summary_of(context, job, run_results(ti.xcom_pull), task_outcomes(states, reasons))


def summarise_short(context: Any, job: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    """The short path's summary, written by `analyse_short_video` itself from its own result: no
    teardown runs on that path (one task process fewer per short video). Its failed frames are the
    only failure it can know of while it runs; anything else it raised is in its log, and the run's
    note then says why (`reko.listeners`)."""
    report = result["report"]
    gist = f"{len(report['failed'])} of {report['end'] - report['start']} frames failed"
    outcomes = {"failed": [(SHORT_TASK_ID, gist)] if report["failed"] else [], "not_run": []}
    return summary_of(context, job, {**result, "reports": [result["report"]]}, outcomes)


def summary_of(
    context: Any, job: dict[str, Any], r: dict[str, Any], outcomes: dict[str, Any]
) -> dict[str, Any]:
    """{"video_id", "status", "note"}: the note from the run's stage results `r` (any may be missing)."""
    video = r.get("video") or {}
    started = context["dag_run"].start_date
    note = render(
        outcomes=outcomes,
        video_id=job["store"]["video_id"],
        source_uri=job["cfg"]["video_uri"],
        status=video.get("status", "failed"),
        manifest=r.get("manifest"),
        reports=r["reports"],
        load=r.get("load"),
        segments=r.get("segments"),
        passes=r.get("passes"),
        api_calls=video.get("api_calls"),
        costs=video,
        stages=stage_times(
            probe_s=job.get("probe_s"),
            manifest=r.get("manifest"),
            reports=r["reports"],
            load=r.get("load"),
            segments=r.get("segments"),
            passes=r.get("passes"),
        ),
        wall_s=(datetime.now(UTC) - started).total_seconds() if started else None,
    )
    return {"video_id": job["store"]["video_id"], "status": video.get("status", "failed"), "note": note}
