"""Cut the stretches of video where a subject (a bib number, a caption word, a person) appears."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, NoReturn

import pendulum
from airflow.sdk import Param, dag, get_current_context, task

from reko.assets import CLIPS_CUT, VIDEO_ANALYSED
from reko.config import BACKENDS, default_backend, mediaconvert_poll_s
from reko.operators import CutClipOperator
from reko.params import face_subject_params

WATCHLIST_VARIABLE = "reko_clip_watchlist"

DOC_MD = f"""
### video_clips
Cuts one clip per stretch of video in which a subject is seen.

Runs by itself after every `video_analysis` run (the `reko_video_analysed` asset) for the subjects
in the Variable `{WATCHLIST_VARIABLE}` (a JSON list, e.g. `["1042", "257"]`), on the videos that
run analysed; or by hand with a `subject`, or with a person's face: `face_photo_uri` (a reference
photo, read into memory and never copied) or `face_id` (a face of the faces index), matched at
`face_threshold` similarity. A person's clips follow their face tracks and the runner passes
linked to them, and are named `face:<face id>` (never by the photo or an embedding).

1. **plan_clips** reads the subject's segments from the segments index, joins segments at most
   `merge_gap_s` apart, pads them by `padding_s` and clamps them to the video. A subject seen
   nowhere ends the run successfully with "no segments for ...".
2. **cut_clip** runs once per range (local: a frame-exact ffmpeg cut that re-encodes only around
   the cut points; aws: MediaConvert input clipping).
3. **register_clips** indexes each clip (deterministic id: video, subject, range) and removes the
   clips of the same video and subject that a changed range replaced, then announces
   `reko_clips_cut`.
"""


def _fail_without_retry(exc: Exception) -> NoReturn:
    """Bad input will not get better on retry: fail the task at once, with the message."""
    from airflow.sdk.exceptions import AirflowFailException

    raise AirflowFailException(str(exc)) from exc


@dag(
    dag_id="video_clips",
    schedule=[VIDEO_ANALYSED],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=4,
    tags=["reko", "video", "clips"],
    doc_md=DOC_MD,
    default_args={"owner": "reko", "retries": 2, "retry_delay": timedelta(seconds=15)},
    params={
        "subject": Param(
            "",
            type="string",
            maxLength=256,
            title="Subject",
            description=(
                "The text to clip (e.g. a bib number). Empty: a face below, else the Variable"
                f" `{WATCHLIST_VARIABLE}`."
            ),
        ),
        "video_ids": Param(
            [],
            type="array",
            items={"type": "string"},
            title="Video ids",
            description="Only these videos. Empty: every video where the subject appears.",
        ),
        "padding_s": Param(
            2.0,
            type="number",
            minimum=0,
            maximum=600,
            title="Padding (s)",
            description="Seconds added before and after each appearance.",
        ),
        "merge_gap_s": Param(
            3.0,
            type="number",
            minimum=0,
            maximum=3600,
            title="Merge gap (s)",
            description="Appearances at most this far apart become one clip.",
        ),
        "min_confidence": Param(
            80.0,
            type="number",
            minimum=0,
            maximum=100,
            title="Minimum confidence (%)",
            description="Only segments whose best detection reaches this confidence.",
        ),
        "backend": Param(
            default_backend(),
            type="string",
            enum=list(BACKENDS),
            title="Backend",
            description="local: ffmpeg; aws: MediaConvert input clipping.",
        ),
        **face_subject_params(),
    },
)
def video_clips() -> None:
    @task
    def plan_clips(params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Returns the ranges to cut (mapped over); the whole plan goes to XCom key "plan"."""
        from airflow.sdk import Variable

        from reko.clip_pipeline import ClipConfig, ClipInputError, plan_clips
        from reko.config import work_uri
        from reko.index.client import IndexNames, get_client

        context = get_current_context()
        params = dict(params or {})
        events = context["triggering_asset_events"].get(VIDEO_ANALYSED, [])
        if events and not params.get("video_ids"):
            params["video_ids"] = sorted({e.extra["video_id"] for e in events if e.extra.get("video_id")})
        try:
            cfg = ClipConfig.from_params(params, Variable.get(WATCHLIST_VARIABLE, [], deserialize_json=True))
            plan = plan_clips(get_client(), IndexNames.current(), cfg, work_uri())
        except ClipInputError as exc:
            _fail_without_retry(exc)
        for message in plan["messages"]:
            print(message)
        print(f"{len(plan['items'])} clips to cut for {plan['subjects']}")
        context["ti"].xcom_push(key="plan", value=plan)
        return plan["items"]

    @task(trigger_rule="none_failed", outlets=[CLIPS_CUT])
    def register_clips() -> dict[str, Any]:
        from reko.clip_pipeline import register_clips
        from reko.index.client import IndexNames, get_client

        context = get_current_context()
        plan = context["ti"].xcom_pull(task_ids="plan_clips", key="plan")
        cuts = context["ti"].xcom_pull(task_ids="cut_clip") or []
        cuts = cuts if isinstance(cuts, list) else [cuts]
        result = register_clips(
            get_client(),
            IndexNames.current(),
            plan,
            {c["clip_id"]: c for c in cuts if c},
            dag_id=context["dag"].dag_id,
            run_id=context["run_id"],
        )
        context["outlet_events"][CLIPS_CUT].extra = {
            "clip_ids": result["registered"],
            "removed": len(result["removed"]),
        }
        print(f"registered {len(result['registered'])} clips, removed {len(result['removed'])} replaced")
        return result

    cuts = CutClipOperator.partial(
        task_id="cut_clip", map_index_template="{{ clip_label }}", waiter_delay=mediaconvert_poll_s()
    ).expand(item=plan_clips())
    cuts >> register_clips()


video_clips()
