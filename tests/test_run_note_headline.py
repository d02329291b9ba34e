"""The run note's first line says the outcome: a collapsed note in Airflow's UI shows only that line."""

from __future__ import annotations

from reko.run_summary import NOTE_HEADING, merge_note, render, render_without_summary, stage_times


def note_of(status: str, load: dict | None, manifest: dict | None) -> str:
    passes = {"passes": 8, "numbers": ["1042"], "elapsed_s": 0.1}
    return render(
        video_id="race-0123456789",
        source_uri="file:///race.mp4",
        status=status,
        manifest=manifest,
        reports=[],
        load=load,
        segments={"segments": 23},
        passes=passes,
        api_calls=None,
        stages=stage_times(
            probe_s=0.1, manifest=manifest, reports=[], load=load, segments=None, passes=passes
        ),
        wall_s=None,
    )


def test_the_first_line_is_a_one_line_summary():
    load = {"detections": 302, "failed_frames": [{"frame_index": 3, "kind": "text", "reason": "x"}]}
    first = note_of("partial", load, {"frame_count": 38}).splitlines()[0]
    assert first == (
        f"{NOTE_HEADING} · race-0123456789: partial · 38 frames, 302 detections, 8 runner passes,"
        " 1 failed frames"
    )


def test_a_run_without_frames_says_so_on_its_first_line():
    assert (
        note_of("failed", None, None)
        .splitlines()[0]
        .endswith("race-0123456789: failed · no frames extracted")
    )
    early = render_without_summary(
        dag_id="video_analysis", run_id="r", video_uri="file:///x/race.mp4", status="failed", outcomes={}
    )
    first = early.splitlines()[0]
    assert first.startswith(NOTE_HEADING + " · ") and first.endswith(": failed · no frames extracted")


def test_a_new_summary_still_replaces_the_old_one_and_keeps_a_persons_text():
    old = note_of("failed", None, None)
    new = note_of("complete", {"detections": 302, "failed_frames": []}, {"frame_count": 38})
    merged = merge_note(f"checked by Ana\n\n{old}", new)
    assert merged == f"checked by Ana\n\n{new}" and merged.count(NOTE_HEADING) == 1
