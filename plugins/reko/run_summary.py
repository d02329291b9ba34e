"""The short report a person reads at the end of a `video_analysis` run.

Written to the task log by the run's last task, returned as its XCom, and copied into the DAG
run's note by `reko.listeners` (the note is what the Airflow UI shows on the run's page; tasks
cannot write it themselves in Airflow 3).
"""

from __future__ import annotations

from typing import Any

SUMMARY_TASK_ID = "summarise_run"
NOTE_HEADING = "#### reko run summary"
MAX_FAILED_LISTED = 10


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def stage_times(
    *,
    probe_s: float | None,
    manifest: dict[str, Any] | None,
    reports: list[dict[str, Any]],
    load: dict[str, Any] | None,
    segments: dict[str, Any] | None,
) -> dict[str, float | None]:
    """Seconds spent inside each stage's work (analysis: summed over batches)."""
    return {
        "probe": probe_s,
        "extract": (manifest or {}).get("extract_s"),
        "analyse": round(sum(r.get("elapsed_s", 0.0) for r in reports), 3) if reports else None,
        "load": (load or {}).get("elapsed_s"),
        "segments": (segments or {}).get("elapsed_s"),
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
) -> str:
    """Markdown: outcome, counts, failed frames with reasons, calls and cost, time per stage."""
    frames = (manifest or {}).get("frame_count")
    lines = [NOTE_HEADING, f"**{video_id}: {status}** — `{source_uri}`"]
    if frames is None:
        lines.append("No frames were extracted: see the first failed task's log.")
    else:
        failed = (load or {}).get("failed_frames", [])
        lines.append(
            f"- {frames} frames, {(load or {}).get('detections', '-')} detections,"
            f" {(segments or {}).get('segments', '-')} segments, {len(failed)} failed frames"
        )
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
    batches = f" in {len(reports)} batches, longest {_seconds(max(r.get('elapsed_s', 0.0) for r in reports))}"
    parts = [
        f"{name} {_seconds(value)}" + (batches if name == "analyse" and reports else "")
        for name, value in stages.items()
    ]
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
