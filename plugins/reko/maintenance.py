"""Remove a video from reko: its documents in every index, its frames, results and clips.

The source video itself is never touched. The video's lease is taken first, so a delete never
races an analysis or clip run of the same video (which would write documents back).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from reko.index.client import INDEX_KINDS, IndexNames
from reko.index.lease import Holder, claim, release
from reko.storage import parse_uri, remove_tree, video_id_for

if TYPE_CHECKING:
    from opensearchpy import OpenSearch

log = logging.getLogger(__name__)


class VideoBusyError(RuntimeError):
    """Another run works on the video now."""


def resolve_video_id(video: str) -> str:
    """A video id as given, or the id of a `file://` / `s3://` URI."""
    video = (video or "").strip()
    if not video:
        raise ValueError("video is empty: give a video id (e.g. race-e69cc08297) or the video's URI")
    return video_id_for(video) if "://" in video else video


def delete_video(
    client: OpenSearch,
    names: IndexNames,
    work_uri: str,
    video_id: str,
    me: Holder,
    run_is_live: Callable[[Holder], bool],
) -> dict[str, Any]:
    """Delete the video's documents (every index) and work tree; counts of what was removed."""
    from reko.index.bulk import bulk_load

    holder = claim(client, names, video_id, me, run_is_live)
    if holder is not None:
        raise VideoBusyError(f"{video_id} is being worked on by {holder}: try again when it has ended")
    try:
        removed: dict[str, Any] = {}
        for kind in INDEX_KINDS:
            index = getattr(names, kind)
            if not client.indices.exists(index=index):
                removed[kind] = 0
                continue
            client.indices.refresh(index=index)
            ids = _ids_of(client, index, video_id)
            actions = ({"_op_type": "delete", "_index": index, "_id": i} for i in ids)
            removed[kind] = bulk_load(client, actions).written
            client.indices.refresh(index=index)
        tree = parse_uri(work_uri, "REKO_WORK_URI") / video_id
        removed["work_tree"] = str(tree) if tree.exists() else None
        remove_tree(tree)
        log.info("deleted %s: %s", video_id, removed)
        return removed
    finally:
        release(client, names, video_id, me)


def _ids_of(client: OpenSearch, index: str, video_id: str) -> list[str]:
    from opensearchpy.helpers import scan

    hits = scan(client, index=index, query={"query": {"term": {"video_id": video_id}}, "_source": False})
    return [hit["_id"] for hit in hits]
