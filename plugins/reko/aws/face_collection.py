"""Faces on AWS: one Rekognition collection per index prefix, filled by the faces analysis,
searched by photo, emptied of a video's faces when the video is deleted.

* Collection: `collection_id(prefix)` = ``reko-faces-<prefix>`` (a prefix with characters outside
  ``[a-zA-Z0-9_.-]``, or too long for 255, is cleaned and gets a SHA-1 suffix, so two prefixes
  never share a collection). It is created on first use: IndexFaces answering
  ResourceNotFoundException creates it (ResourceAlreadyExistsException from a mapped task that
  raced us is success) and the frame is sent again, so the steady state costs no extra call.
* Analysis: IndexFaces replaces DetectFaces (one billed image per frame, not two). Its
  FaceRecords and UnindexedFaces each carry the same `FaceDetail` DetectFaces returns, from the
  same detector (up to the 100 largest faces): indexed faces get their `FaceId`, faces under the
  quality bar (`REKO_FACE_QUALITY_FILTER`, default AUTO) or past `REKO_FACE_MAX_FACES` (default
  100) keep `UnindexedReasons` and no id. The answer is DetectFaces-shaped (`FaceDetails`), so the
  faces index reads it like any other. `ExternalImageId` = ``<video id>:i<interval>ms:<frame>``;
  Rekognition does not store the same image twice for the same collection and external id, so a
  retried frame does not duplicate its faces.
* Search: SearchFacesByImage with `FaceMatchThreshold` = the threshold (Rekognition's similarity
  is the scale `reko.faces.similarity` maps local distances to); face ids are looked up in the
  faces index (`face_id`), so the answer is `find_person`'s. A collection that does not exist yet
  has no faces: the answer is empty, as it is locally before any faces index exists.
* Delete: DeleteFaces in batches of 4096 (the API's limit); a face already gone counts as deleted.

Nothing about a face (boxes, landmarks, similarities, the photo) is logged: calls run inside
`reko.faces.privacy.private()`, which also silences botocore's request/response body logs.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from reko import config
from reko.analysis.base import Analysis, FrameAnalysisError, RetryableAnalysisError
from reko.aws.rekognition import (
    MAX_BYTES,
    RETRYABLE_CODES,
    RekognitionAnalyser,
    RekognitionHook,
    _image_size,
    shrink,
)
from reko.faces.privacy import private
from reko.index.client import IndexNames
from reko.media import parse_frame_name

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath
    from opensearchpy import OpenSearch

log = logging.getLogger(__name__)

COLLECTION_PREFIX = "reko-faces-"
MAX_ID_CHARS = 255  # CollectionId and ExternalImageId
DELETE_BATCH = 4096  # DeleteFaces takes at most this many FaceIds
SEARCH_MAX_FACES = 4096  # SearchFacesByImage's MaxFaces limit
MAX_HITS = 10_000  # faces-index documents one lookup returns (OpenSearch's default window)
_NOT_COLLECTION = re.compile(r"[^a-zA-Z0-9_.\-]")
_NOT_EXTERNAL = re.compile(r"[^a-zA-Z0-9_.\-:]")


def collection_id(prefix: str) -> str:
    """The collection of an index prefix: deterministic, valid, and distinct per prefix."""
    clean = _NOT_COLLECTION.sub("_", prefix)
    name = COLLECTION_PREFIX + clean
    if clean == prefix and len(name) <= MAX_ID_CHARS:
        return name
    digest = hashlib.sha1(prefix.encode()).hexdigest()[:10]
    return f"{COLLECTION_PREFIX}{clean[: MAX_ID_CHARS - len(COLLECTION_PREFIX) - 11]}-{digest}"


def external_image_id(frame: ObjectStoragePath) -> str:
    """``<video id>:i<interval>ms:<frame index>`` of a frame in the work tree, cleaned to
    Rekognition's pattern; over 255 characters, the head of the video's stem is cut (its
    digest, the interval and the frame stay)."""
    parts = str(frame.path).rstrip("/").split("/")
    parsed = parse_frame_name(parts[-1])
    if len(parts) < 4 or parts[-2] != "frames" or parsed is None:
        raise FrameAnalysisError(f"{frame} is not a frame of the work tree (<video>/i<ms>ms/frames/<name>)")
    raw = f"{parts[-4]}:{parts[-3]}:{parsed[1]:07d}"
    return _NOT_EXTERNAL.sub("_", raw)[-MAX_ID_CHARS:]


def _code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def create_collection(conn: Any, collection: str) -> bool:
    """Create `collection`; False if it exists already (another task made it first)."""
    try:
        conn.create_collection(CollectionId=collection)
    except ClientError as exc:
        if _code(exc) == "ResourceAlreadyExistsException":
            return False
        raise
    log.info("created Rekognition collection %s", collection)
    return True


def as_detect_faces(response: dict[str, Any], collection: str) -> dict[str, Any]:
    """An IndexFaces answer in DetectFaces' shape: indexed faces (with `FaceId`) first, largest
    first as Rekognition sorts them, then the faces it detected but did not index."""
    details = []
    for record in response.get("FaceRecords") or []:
        face = record.get("Face") or {}
        detail = dict(record.get("FaceDetail") or {})
        for key in ("BoundingBox", "Confidence"):
            if key not in detail and key in face:
                detail[key] = face[key]
        detail["FaceId"] = face["FaceId"]
        details.append(detail)
    for unindexed in response.get("UnindexedFaces") or []:
        detail = dict(unindexed.get("FaceDetail") or {})
        detail["UnindexedReasons"] = list(unindexed.get("Reasons") or [])
        details.append(detail)
    out: dict[str, Any] = {"FaceDetails": details, "CollectionId": collection}
    for key in ("FaceModelVersion", "OrientationCorrection"):
        if response.get(key):
            out[key] = response[key]
    return out


class IndexFacesAnalyser(RekognitionAnalyser):
    """The AWS faces analysis: IndexFaces into the prefix's collection, answered as DetectFaces."""

    operation = "IndexFaces"
    method = "index_faces"

    def __init__(
        self,
        options: dict[str, Any] | None = None,
        hook: RekognitionHook | None = None,
        collection: str | None = None,
    ) -> None:
        super().__init__("faces", options, hook)
        self.collection = collection or collection_id(config.index_prefix())
        self.params = {
            "CollectionId": self.collection,
            "DetectionAttributes": self.params["Attributes"],
            "MaxFaces": config.face_max_faces(),
            "QualityFilter": config.face_quality_filter(),
        }

    def frame_params(self, frame: ObjectStoragePath) -> dict[str, Any]:
        return {"ExternalImageId": external_image_id(frame)}

    def _call(self, **params: Any) -> dict[str, Any]:
        with private():  # botocore logs request and response bodies at DEBUG
            try:
                return super()._call(**params)
            except ClientError as exc:
                if _code(exc) != "ResourceNotFoundException":
                    raise
            create_collection(self.hook.conn, self.collection)  # first use (or deleted since)
            return super()._call(**params)

    def _annotated(self, response: dict[str, Any], note: dict[str, Any]) -> dict[str, Any]:
        return super()._annotated(as_detect_faces(response, self.collection), note)


def faces_analysis(kind: str = "faces", options: dict[str, Any] | None = None) -> Analysis:
    """The registry's factory for ("aws", "faces"). The model names the collection: a result whose
    face ids live in another prefix's collection is analysed again, not reused."""
    analyser = IndexFacesAnalyser(options)
    return Analysis(
        kind,
        "aws",
        f"rekognition-IndexFaces@{analyser.collection}",
        analyser.run,
        version_key="FaceModelVersion",
        concurrency=config.rekognition_threads(),
    )


_HOOKS: dict[str, RekognitionHook] = {}
_HOOKS_LOCK = threading.Lock()


def _hook() -> RekognitionHook:
    """One hook (client, limiter) per connection per process: the web server searches often."""
    conn_id = config.aws_conn_id()
    with _HOOKS_LOCK:
        if conn_id not in _HOOKS:
            _HOOKS[conn_id] = RekognitionHook(aws_conn_id=conn_id)
        return _HOOKS[conn_id]


def _photo_image(photo: bytes) -> dict[str, Any]:
    """The photo as Rekognition `Image` bytes: JPEG/PNG, >= 80 px, re-encoded under 5 MB."""
    from reko.faces.search import PhotoSearchError

    try:
        _image_size(photo)
        data = photo if len(photo) <= MAX_BYTES else shrink(photo)[0]
    except FrameAnalysisError as exc:
        raise PhotoSearchError(str(exc).replace("frame", "photo", 1)) from None
    return {"Bytes": data}


def _search_error(exc: ClientError) -> Exception:
    from reko.faces.local import FaceNotFoundError
    from reko.faces.search import PhotoSearchError

    code = _code(exc)
    message = exc.response.get("Error", {}).get("Message", "")
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
    if code == "InvalidParameterException":  # the request is checked here: what is left is the face
        return FaceNotFoundError(f"no face found in the photo (Rekognition: {message})")
    if code in ("InvalidImageFormatException", "ImageTooLargeException"):
        return PhotoSearchError(f"Rekognition cannot read the photo: {code}: {message}")
    if code in RETRYABLE_CODES or status >= 500:
        return RetryableAnalysisError(f"SearchFacesByImage {code}: {message}: try again")
    return RuntimeError(f"SearchFacesByImage {code}: {message}")


def search_collection(
    client: OpenSearch,
    names: IndexNames,
    photo: bytes,
    *,
    threshold: float,
    video_ids: list[str] | None,
    max_matches: int,
    search: str | None,
) -> dict[str, Any]:
    """The AWS photo search (`find_person` on AWS): SearchFacesByImage, then the faces-index
    documents of the matched face ids. With `video_ids`, Rekognition (which cannot filter by
    video) is asked for its 4096 best matches, filtered here."""
    from reko.faces.search import PhotoSearchError, result_shape

    if search not in (None, "rekognition"):
        raise PhotoSearchError(f"search on AWS is 'rekognition' (Rekognition's own), got {search!r}")
    image = _photo_image(photo)
    collection = collection_id(names.prefix)
    started = time.monotonic()
    with private():
        try:
            response = _hook().conn.search_faces_by_image(
                CollectionId=collection,
                Image=image,
                MaxFaces=SEARCH_MAX_FACES if video_ids else max_matches,
                FaceMatchThreshold=float(threshold),
            )
        except ClientError as exc:
            if _code(exc) != "ResourceNotFoundException":
                raise _search_error(exc) from None
            response = None
        except BotoCoreError as exc:
            raise RetryableAnalysisError(f"SearchFacesByImage failed: {exc}: try again") from None
    searched = time.monotonic()
    if response is None:
        log.info("no Rekognition collection %s yet: no faces indexed on AWS under this prefix", collection)
        query: dict[str, Any] = {"faces_in_photo": None, "bbox": None}
        matches: list[tuple[float, dict[str, Any]]] = []
        truncated = False
    else:
        log.info(
            "SearchFacesByImage: 1 image billed (estimated $%.4f)", config.rekognition_price_per_1000() / 1000
        )
        query = {"faces_in_photo": None, "bbox": response.get("SearchedFaceBoundingBox")}
        scores = {
            m["Face"]["FaceId"]: round(float(m["Similarity"]), 3) for m in response.get("FaceMatches", [])
        }
        hits = _documents_of(client, names, list(scores), video_ids)
        ranked = sorted(((scores[h["_source"]["face_id"]], h) for h in hits), key=lambda m: -m[0])
        matches = ranked[:max_matches]
        asked = SEARCH_MAX_FACES if video_ids else max_matches
        truncated = len(scores) >= asked or len(ranked) > max_matches
    return result_shape(
        matches,
        query=query,
        threshold=threshold,
        search="rekognition",
        truncated=truncated,
        embed_s=searched - started,
        search_s=time.monotonic() - searched,
    )


def _documents_of(
    client: OpenSearch, names: IndexNames, face_ids: list[str], video_ids: list[str] | None
) -> list[dict[str, Any]]:
    """The faces-index documents carrying these face ids (a face id is on several documents
    when identical frames share one result); ids with no document are dropped."""
    if not face_ids:
        return []
    filters: list[dict[str, Any]] = [{"terms": {"face_id": face_ids}}]
    if video_ids:
        filters.append({"terms": {"video_id": list(video_ids)}})
    body = {"size": MAX_HITS, "query": {"bool": {"filter": filters}}, "_source": {"excludes": ["embedding"]}}
    with private():
        if not client.indices.exists(index=names.faces):
            return []
        return client.search(index=names.faces, body=body)["hits"]["hits"]


def delete_faces(face_ids: Iterable[str], names: IndexNames) -> dict[str, Any]:
    """Remove faces from the prefix's collection, 4096 a call. A face already gone (or a
    collection that does not exist) counts as removed; anything else raises, so the caller
    keeps the face ids it has and can run again."""
    ids = sorted(set(face_ids))
    collection = collection_id(names.prefix)
    report = {"collection": collection, "requested": len(ids), "deleted": 0, "already_gone": 0}
    if not ids:
        return report
    conn = _hook().conn
    refused: list[dict[str, Any]] = []
    for start in range(0, len(ids), DELETE_BATCH):
        batch = ids[start : start + DELETE_BATCH]
        try:
            response = conn.delete_faces(CollectionId=collection, FaceIds=batch)
        except ClientError as exc:
            if _code(exc) == "ResourceNotFoundException":
                report["already_gone"] += len(ids) - start
                break
            raise
        deleted = len(response.get("DeletedFaces") or [])
        kept = [
            failure
            for failure in response.get("UnsuccessfulFaceDeletions") or []
            if "FACE_NOT_FOUND" not in (failure.get("Reasons") or [])
        ]
        refused += kept
        report["deleted"] += deleted
        report["already_gone"] += len(batch) - deleted - len(kept)  # not found, listed or not
    if refused:
        reasons = sorted({r for f in refused for r in f.get("Reasons") or []})
        raise RuntimeError(
            f"Rekognition refused to delete {len(refused)} faces from {collection} ({', '.join(reasons)}):"
            " nothing else of the video was deleted; fix that and run the delete again"
        )
    log.info(
        "removed %d faces from %s (%d were gone already)",
        report["deleted"],
        collection,
        report["already_gone"],
    )
    return report
