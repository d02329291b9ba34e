"""Delete one video from reko (documents, frames, results, clips); reprocessing is a video_analysis run."""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import Param, dag, get_current_context, task

DOC_MD = """
### video_maintenance
**Delete a video**: its faces in the Rekognition collection (AWS runs with faces), every
document of the video in the detections, segments, passes, faces, videos and clips indices, and
its work tree (frames, per-frame results, clips). The source video is not touched. The
collection goes first and the documents and results (which hold the face ids) after it, so a
delete that fails part-way deletes nothing else and can simply be run again.
The video's lease is taken first: while an analysis or clip run of the video is in progress the
delete fails at once, saying which run holds it, and can simply be run again later.

**Reprocess a video** with a new interval, analyses or threshold: trigger `video_analysis` for
its URI with the new Params. Its old detections and segments are replaced when the new ones
are loaded (ids that the new run did not write are deleted), never mixed. Set `reanalyse` to
ignore stored per-frame results too (a new model).
"""


@dag(
    dag_id="video_maintenance",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["reko", "maintenance"],
    doc_md=DOC_MD,
    default_args={"owner": "reko", "retries": 0},
    params={
        "video": Param(
            "",
            type="string",
            minLength=1,
            title="Video",
            description="The video id (as on the search page) or the video's file:// or s3:// URI.",
        ),
        "confirm_delete": Param(
            False,
            type="boolean",
            title="Yes, delete it",
            description="Deleting cannot be undone: the video's documents, frames and clips are removed.",
        ),
    },
)
def video_maintenance() -> None:
    @task
    def delete_video(params: dict[str, Any] | None = None) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        from reko.config import work_uri
        from reko.index.client import IndexNames, get_client
        from reko.index.lease import Holder, airflow_run_is_live
        from reko.maintenance import VideoBusyError, delete_video, resolve_video_id

        params = params or {}
        if not params.get("confirm_delete"):
            raise AirflowFailException("confirm_delete is not set: nothing was deleted")
        context = get_current_context()
        try:
            video_id = resolve_video_id(str(params.get("video", "")))
            me = Holder(context["dag"].dag_id, context["run_id"])
            removed = delete_video(
                get_client(), IndexNames.current(), work_uri(), video_id, me, airflow_run_is_live
            )
        except (ValueError, VideoBusyError) as exc:
            raise AirflowFailException(str(exc)) from exc
        print(f"deleted {video_id}: {removed}")
        return {"video_id": video_id, **removed}

    delete_video()


video_maintenance()
