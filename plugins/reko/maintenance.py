"""Remove a video from reko: its faces in any backend's own face store (a Rekognition
collection), its documents in every index, its frames, results and clips.

The source video itself is never touched. The video's lease is taken first, so a delete never
races an analysis or clip run of the same video (which would write documents back).

Order, so a failed delete can simply be run again and nothing is left behind: the face store
first (its face ids are read from the faces index and from the stored frame results, which also
hold the faces under the run's confidence threshold that have no document), then the index
documents, then the work tree (the results). Deleting the documents or results first would lose
the only record of which stored faces are the video's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from reko.config import BACKENDS
from reko.index.client import INDEX_KINDS, IndexNames
from reko.index.lease import Holder, claim, release
from reko.storage import parse_uri, read_json, remove_tree, video_id_for

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
    """Delete the video's stored faces, documents (every index) and work tree; counts of what was
    removed."""
    from reko.index.bulk import bulk_load

    holder = claim(client, names, video_id, me, run_is_live)
    if holder is not None:
        raise VideoBusyError(f"{video_id} is being worked on by {holder}: try again when it has ended")
    try:
        tree = parse_uri(work_uri, "REKO_WORK_URI") / video_id
        removed: dict[str, Any] = {"face_stores": delete_stored_faces(client, names, tree, video_id)}
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


def delete_stored_faces(client: OpenSearch, names: IndexNames, tree: Any, video_id: str) -> dict[str, Any]:
    """Remove the video's faces from every backend's own face store (`face_store` trait): only a
    backend that stored faces of this video is called, so a local-only deployment needs no AWS."""
    from reko.analysis.base import face_store_deleter
    from reko.index.faces import indexed_face_ids

    removed: dict[str, Any] = {}
    for backend in BACKENDS:
        delete = face_store_deleter(backend)
        if delete is None:
            continue
        ids = indexed_face_ids(client, names, video_id, backend) | _stored_face_ids(tree, backend)
        if ids:
            removed[backend] = delete(ids, names)
    return removed


def _stored_face_ids(tree: Any, backend: str) -> set[str]:
    """Face ids in the video's stored faces results, every interval (one read per frame result)."""
    from concurrent.futures import ThreadPoolExecutor

    if not tree.exists():
        return set()
    paths = []
    for interval in tree.iterdir():
        folder = interval / "results" / backend / "faces"
        if folder.is_dir():
            paths += [p for p in folder.iterdir() if p.name.endswith(".json") and ".error." not in p.name]
    with ThreadPoolExecutor(8) as pool:  # one request each on object storage
        results = list(pool.map(read_json, paths))
    return {
        face["FaceId"]
        for result in results
        if result
        for face in (result.get("response") or {}).get("FaceDetails") or []
        if face.get("FaceId")
    }
