"""Search of the index contract for the web page: frames where a text was read, paged, by video.

One query per page against the detections index: the text goes into `term`/`match` queries as a
value (never into `query_string`), every filter sits in `filter` context (cached, unscored), the
`_source` is limited to what the page draws, and paging is `search_after` on a unique sort
(video, frame, kind, ordinal: the parts of the deterministic `_id`), so page 1,000 costs what
page 1 does. The cursor returned as `next` is opaque to callers.
"""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any

from reko.index.docs import normalise

if TYPE_CHECKING:
    from opensearchpy import OpenSearch

    from reko.index.client import IndexNames

MAX_PAGE_SIZE = 500
MAX_TEXT_LENGTH = 256  # value_norm is a keyword with ignore_above 256
SORT = [
    {"video_id": "asc"},
    {"frame_index": "asc"},
    {"kind": "asc"},
    {"ordinal": "asc"},
]
SORT_TYPES = (str, int, str, int)  # keyword, integer, keyword, integer in the detections mapping
MAX_INTEGER = 2**31 - 1
BAD_CURSOR = "after is not a cursor returned by a previous search"
DETECTION_FIELDS = [
    "video_id",
    "frame_index",
    "timestamp_ms",
    "kind",
    "text_type",
    "value",
    "confidence",
    "bbox",
    "frame_uri",
]
SEGMENT_FIELDS = ["video_id", "value", "start_ms", "end_ms", "frame_count", "best_confidence"]
PASS_FIELDS = [
    "video_id",
    "number",
    "name",
    "category",
    "start_ms",
    "end_ms",
    "frame_count",
    "read_count",
    "best_confidence",
    "vote_margin",
    "overruled",
]
MAX_PASSES = 1000
VIDEO_FIELDS = ["video_id", "source_uri", "duration_ms", "frame_count", "frame_interval_ms", "status"]
MAX_SEGMENTS = 1000


class SearchInputError(ValueError):
    """A search parameter is out of range; the message names it."""


def encode_cursor(sort_values: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(sort_values, separators=(",", ":")).encode()).decode()


def decode_cursor(cursor: str) -> list[Any]:
    """The sort values behind a `next` cursor, or a clear error for anything else.

    Each value must have its sort field's type (keyword or integer in range): a forged cursor
    must be a 400, not an OpenSearch error about `search_after` turned into a 500.
    """
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, TypeError):
        raise SearchInputError(BAD_CURSOR) from None
    if not isinstance(values, list) or len(values) != len(SORT):
        raise SearchInputError(BAD_CURSOR)
    for value, kind in zip(values, SORT_TYPES, strict=True):
        if kind is int:
            ok = type(value) is int and 0 <= value <= MAX_INTEGER
        else:
            ok = isinstance(value, str) and 0 < len(value) <= MAX_TEXT_LENGTH
        if not ok:
            raise SearchInputError(BAD_CURSOR)
    return values


def validate(text: str, min_confidence: float, max_confidence: float, size: int) -> str:
    """The normalised text, once every parameter is in range."""
    if not isinstance(text, str) or not text.strip():
        raise SearchInputError("text is required: a bib number or any text read in the video")
    if len(text) > MAX_TEXT_LENGTH:
        raise SearchInputError(f"text is longer than {MAX_TEXT_LENGTH} characters")
    for name, value in (("min_confidence", min_confidence), ("max_confidence", max_confidence)):
        if not 0 <= value <= 100:
            raise SearchInputError(f"{name} must be between 0 and 100, got {value}")
    if min_confidence > max_confidence:
        raise SearchInputError(
            f"min_confidence ({min_confidence}) is above max_confidence ({max_confidence})"
        )
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise SearchInputError(f"size must be between 1 and {MAX_PAGE_SIZE}, got {size}")
    return normalise(text)


MAX_BIBS = 20  # numbers in one "several bibs" search


def bibs_of(norm: str) -> list[str]:
    """The numbers of a search for several bibs at once ("4172 5021"), else []: a text made only
    of two or more numbers is read as a list of bibs, not as a line to find."""
    parts = norm.split()
    if 1 < len(parts) <= MAX_BIBS and all(part.isdigit() for part in parts):
        return list(dict.fromkeys(parts))
    return []


def subjects_of(norm: str) -> list[str]:
    """The values a search's timeline and passes are of: each bib of a list, else the text."""
    return bibs_of(norm) or [norm]


def text_query(text: str, norm: str) -> dict:
    """Exact normalised value or the analysed words; WORDs for one word, LINEs for several; each
    number's WORDs for several bibs.

    Rekognition (and the local analyser) report a line and its words; a one-word line is both,
    so searching both kinds would draw every box twice. A bib is one word: its WORD box is the
    tight one. Several words can only match a LINE.
    """
    bibs = bibs_of(norm)
    if bibs:
        return {
            "bool": {
                "filter": [{"terms": {"value_norm": bibs}}],
                "must_not": [{"term": {"text_type": "LINE"}}],
            }
        }
    if " " in norm:
        should = [{"term": {"value_norm": norm}}, {"match_phrase": {"value": text}}]
        level = {"term": {"text_type": "LINE"}}
        return {"bool": {"should": should, "minimum_should_match": 1, "filter": [level]}}
    should = [{"term": {"value_norm": norm}}, {"match": {"value": {"query": text, "operator": "and"}}}]
    return {
        "bool": {
            "should": should,
            "minimum_should_match": 1,
            "must_not": [{"term": {"text_type": "LINE"}}],
        }
    }


def search_frames(
    client: OpenSearch,
    names: IndexNames,
    *,
    text: str,
    min_confidence: float = 80,
    max_confidence: float = 100,
    video_id: str | None = None,
    size: int = 50,
    after: str | None = None,
) -> dict:
    """One page of detections matching `text`, grouped by video then frame, with the timeline.

    Returns `{"text", "total" (first page only, else None), "videos": [{"video_id", "video",
    "segments", "passes", "frames": [{"frame_index", "timestamp_ms", "frame_uri", "detections":
    [...]}]}], "next"}`; `next` is None on the last page. A frame can continue on the next page.
    Runner passes of the number (and, on the first page, of a roster name) come with their videos.
    """
    norm = validate(text, min_confidence, max_confidence, size)
    filters: list[dict] = [{"range": {"confidence": {"gte": min_confidence, "lte": max_confidence}}}]
    if video_id:
        filters.append({"term": {"video_id": video_id}})
    body: dict[str, Any] = {
        "size": size,
        "query": {"bool": {"must": [text_query(text, norm)], "filter": filters}},
        "sort": SORT,
        "_source": DETECTION_FIELDS,
        "track_total_hits": after is None,
    }
    if after:
        body["search_after"] = decode_cursor(after)
    response = client.search(index=names.detections, body=body)
    hits = response["hits"]["hits"]
    total = response["hits"]["total"]["value"] if after is None else None
    videos = _group(hits)
    runner_passes = _passes(client, names, text, norm, list(videos), by_name=after is None, video_id=video_id)
    by_name = {p["video_id"] for p in runner_passes} - set(videos)
    for runner_pass in runner_passes:
        video = videos.setdefault(runner_pass["video_id"], _empty_video(runner_pass["video_id"]))
        frames = runner_pass.pop("frames", None) or []
        if runner_pass["video_id"] in by_name:  # a roster name: the runner's frames, no word says it
            video["frames"] += _pass_frames(runner_pass, frames)
        video["passes"].append(runner_pass)
    if videos:
        ids = list(videos)
        for doc in _videos(client, names, ids):
            videos[doc["video_id"]]["video"] = doc
        for seg in _segments(client, names, norm, ids, min_confidence, max_confidence):
            videos[seg["video_id"]]["segments"].append(seg)
        if " " in norm and not bibs_of(norm):  # a phrase inside longer lines has no segment of its own
            bare = [v for v in videos.values() if not v["segments"] and v["video"]]
            if bare:
                from reko.index.segments import phrase_segments

                found = phrase_segments(
                    client,
                    names,
                    text,
                    filters=[*filters, {"terms": {"video_id": [v["video_id"] for v in bare]}}],
                    interval_ms_of={v["video_id"]: v["video"].get("frame_interval_ms") or 1000 for v in bare},
                )
                for video in bare:  # derived from the hits, not segment documents
                    segments = [seg | {"derived": True} for _, seg in found.get(video["video_id"], [])]
                    video["segments"] = segments
    next_cursor = encode_cursor(hits[-1]["sort"]) if len(hits) == size else None
    return {
        "text": text,
        "value_norm": norm,
        "total": total,
        "videos": list(videos.values()),
        "next": next_cursor,
    }


def _group(hits: list[dict]) -> dict[str, dict]:
    videos: dict[str, dict] = {}
    for hit in hits:
        src = hit["_source"]
        video = videos.setdefault(src["video_id"], _empty_video(src["video_id"]))
        frames = video["frames"]
        if not frames or frames[-1]["frame_index"] != src["frame_index"]:
            frames.append(
                {
                    "frame_index": src["frame_index"],
                    "timestamp_ms": src["timestamp_ms"],
                    "frame_uri": src.get("frame_uri"),
                    "detections": [],
                }
            )
        frames[-1]["detections"].append(
            {
                "text": src.get("value", ""),
                "kind": src.get("kind"),
                "text_type": src.get("text_type"),
                "confidence": src.get("confidence"),
                "bbox": src.get("bbox"),
            }
        )
    return videos


def _empty_video(video_id: str) -> dict:
    return {"video_id": video_id, "video": None, "segments": [], "passes": [], "frames": []}


def _passes(
    client: OpenSearch,
    names: IndexNames,
    text: str,
    norm: str,
    ids: list[str],
    *,
    by_name: bool,
    video_id: str | None,
) -> list[dict]:
    """Runner passes of the number in this page's videos and, on the first page, of a roster name.

    The timeline draws one bar per pass: a runner's whole appearance, misreads and hidden frames
    included. A name ("Kim") matches runners whose bib the roster gives that name.
    """
    if not client.indices.exists(index=names.passes):
        return []
    who: list[dict] = []
    if ids:
        who.append(
            {"bool": {"filter": [{"terms": {"number": subjects_of(norm)}}, {"terms": {"video_id": ids}}]}}
        )
    if by_name:
        who.append({"match": {"name": {"query": text, "operator": "and"}}})
    if not who:
        return []
    filters: list[dict] = [{"bool": {"should": who, "minimum_should_match": 1}}]
    if video_id:
        filters.append({"term": {"video_id": video_id}})
    body = {
        "size": MAX_PASSES,
        "query": {"bool": {"filter": filters}},
        "sort": [{"video_id": "asc"}, {"start_ms": "asc"}],
        "_source": [*PASS_FIELDS, "frames"] if by_name else PASS_FIELDS,  # frames serve a name only
    }
    return [hit["_source"] for hit in client.search(index=names.passes, body=body)["hits"]["hits"]]


def _pass_frames(runner_pass: dict, frames: list[dict]) -> list[dict]:
    """A pass's frames as search frames, the bib's box on each, labelled with number and name."""
    label = runner_pass["number"] + (f" {runner_pass['name']}" if runner_pass.get("name") else "")
    return [
        {
            "frame_index": frame["frame_index"],
            "timestamp_ms": frame["timestamp_ms"],
            "frame_uri": frame.get("frame_uri"),
            "detections": [
                {
                    "text": label,
                    "kind": "runner",
                    "text_type": "PASS",
                    "confidence": frame.get("confidence"),
                    "bbox": frame.get("bbox"),
                }
            ],
        }
        for frame in frames
    ]


def _videos(client: OpenSearch, names: IndexNames, ids: list[str]) -> list[dict]:
    body = {"docs": [{"_id": video_id, "_source": VIDEO_FIELDS} for video_id in ids]}
    response = client.mget(index=names.videos, body=body)
    return [{**doc["_source"], "video_id": doc["_id"]} for doc in response["docs"] if doc.get("found")]


def _segments(
    client: OpenSearch, names: IndexNames, norm: str, ids: list[str], min_conf: float, max_conf: float
) -> list[dict]:
    """The timeline: continuous appearances of the exact value in this page's videos."""
    body = {
        "size": MAX_SEGMENTS,
        "query": {
            "bool": {
                "filter": [
                    {"terms": {"value_norm": subjects_of(norm)}},
                    {"terms": {"video_id": ids}},
                    {"range": {"best_confidence": {"gte": min_conf, "lte": max_conf}}},
                ]
            }
        },
        "sort": [{"video_id": "asc"}, {"start_ms": "asc"}],
        "_source": SEGMENT_FIELDS,
    }
    return [hit["_source"] for hit in client.search(index=names.segments, body=body)["hits"]["hits"]]


def list_videos(
    client: OpenSearch, names: IndexNames, *, dag_id: str | None = None, size: int = 200
) -> list[dict]:
    """Every analysed video, newest first (the Videos page)."""
    query: dict = {"bool": {"filter": [{"term": {"dag_id": dag_id}}]}} if dag_id else {"match_all": {}}
    body = {
        "size": size,
        "query": query,
        "sort": [{"processed_at": {"order": "desc", "unmapped_type": "date"}}, {"video_id": "asc"}],
        "_source": {"excludes": ["failed_frames.reason"]},
    }
    return [hit["_source"] for hit in client.search(index=names.videos, body=body)["hits"]["hits"]]


def thumbnail_uri(video: dict) -> str | None:
    """A frame from a third of the way in (the first frame is often a black lead-in)."""
    frames_uri, source, count = video.get("frames_uri"), video.get("source_uri"), video.get("frame_count")
    if not frames_uri or not source or not count:
        return None
    from reko.media import frame_name, frame_stem

    stem = frame_stem(source.rstrip("/").rsplit("/", 1)[-1])
    return f"{frames_uri.rstrip('/')}/{frame_name(stem, count // 3)}"


def list_clips(
    client: OpenSearch,
    names: IndexNames,
    *,
    subject: str | None = None,
    video_id: str | None = None,
    run_id: str | None = None,
) -> list[dict]:
    """Clips already cut, for a subject (normalised like the clip DAG does), a video or a run."""
    filters: list[dict] = []
    if run_id:
        filters.append({"term": {"run_id": run_id}})
    if subject:
        filters.append({"term": {"subject_norm": normalise(subject)}})
    if video_id:
        filters.append({"term": {"video_id": video_id}})
    body = {
        "size": 500,
        "query": {"bool": {"filter": filters}},
        "sort": [{"video_id": "asc"}, {"start_ms": "asc"}],
    }
    return [hit["_source"] for hit in client.search(index=names.clips, body=body)["hits"]["hits"]]


def videos_showing(client: OpenSearch, names: IndexNames, subject_norm: str) -> set[str]:
    """The videos where a subject is seen (a word segment or a runner pass of that number): what a
    clip request without videos covers."""
    found: set[str] = set()
    queries = [(names.segments, {"term": {"value_norm": subject_norm}})]
    if client.indices.exists(index=names.passes):
        queries.append((names.passes, {"term": {"number": subject_norm}}))
    for index, query in queries:
        body = {
            "size": 0,
            "query": query,
            "aggs": {"videos": {"terms": {"field": "video_id", "size": 10_000}}},
        }
        response = client.search(index=index, body=body)
        found |= {b["key"] for b in response["aggregations"]["videos"]["buckets"]}
    return found


MAX_EXPORT = 20_000  # rows per export; more is said (`truncated`), not silently cut
EXPORT_COLUMNS = [
    "video_id",
    "video",
    "time_s",
    "frame_index",
    "frame_url",
    "text",
    "text_type",
    "confidence",
    "box_left",
    "box_top",
    "box_width",
    "box_height",
]


def export_hits(
    client: OpenSearch,
    names: IndexNames,
    *,
    text: str,
    min_confidence: float = 80,
    max_confidence: float = 100,
    video_id: str | None = None,
    limit: int = MAX_EXPORT,
) -> tuple[list[dict], bool]:
    """Every detection a search finds (the page's query and filters), in video and frame order, and
    for a runner's name the frames of their passes (text_type PASS), as the page shows them; flat
    rows for a spreadsheet, and whether `limit` cut them. Frame URIs stay URIs here."""
    norm = validate(text, min_confidence, max_confidence, 1)
    filters: list[dict] = [{"range": {"confidence": {"gte": min_confidence, "lte": max_confidence}}}]
    if video_id:
        filters.append({"term": {"video_id": video_id}})
    body: dict[str, Any] = {
        "size": min(MAX_PAGE_SIZE, limit + 1),
        "query": {"bool": {"must": [text_query(text, norm)], "filter": filters}},
        "sort": SORT,
        "_source": DETECTION_FIELDS,
        "track_total_hits": False,
    }
    rows: list[dict] = []
    while len(rows) <= limit:
        hits = client.search(index=names.detections, body=body)["hits"]["hits"]
        for hit in hits:
            src, box = hit["_source"], hit["_source"].get("bbox") or {}
            rows.append(
                {
                    "video_id": src["video_id"],
                    "time_s": round(src["timestamp_ms"] / 1000, 3),
                    "frame_index": src["frame_index"],
                    "frame_uri": src.get("frame_uri"),
                    "text": src.get("value", ""),
                    "text_type": src.get("text_type"),
                    "confidence": src.get("confidence"),
                    **{f"box_{k}": box.get(k) for k in ("left", "top", "width", "height")},
                }
            )
        if len(hits) < body["size"]:
            break
        body["search_after"] = hits[-1]["sort"]
    found = {r["video_id"] for r in rows}
    for runner_pass in _passes(client, names, text, norm, [], by_name=True, video_id=video_id):
        if runner_pass["video_id"] in found:  # as on the page: a name's frames where no word says it
            continue
        for frame in _pass_frames(runner_pass, runner_pass.get("frames") or []):
            (det,) = frame["detections"]
            box = det.get("bbox") or {}
            rows.append(
                {
                    "video_id": runner_pass["video_id"],
                    "time_s": round(frame["timestamp_ms"] / 1000, 3),
                    "frame_index": frame["frame_index"],
                    "frame_uri": frame.get("frame_uri"),
                    "text": det["text"],
                    "text_type": "PASS",
                    "confidence": det.get("confidence"),
                    **{f"box_{k}": box.get(k) for k in ("left", "top", "width", "height")},
                }
            )
    truncated = len(rows) > limit
    rows = rows[:limit]
    ids = sorted({r["video_id"] for r in rows})
    sources = {doc["video_id"]: doc.get("source_uri") for doc in _videos(client, names, ids)} if ids else {}
    for row in rows:
        source = sources.get(row["video_id"]) or ""
        row["video"] = source.rstrip("/").rsplit("/", 1)[-1] or row["video_id"]
    return rows, truncated


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A cell a spreadsheet will not run: text starting like a formula gets a leading quote (OWASP's
    CSV injection advice); numbers stay numbers."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return "" if value is None else value


def to_csv(rows: list[dict]) -> str:
    """RFC 4180 CSV (commas, quotes and line breaks quoted by the csv module), formula-safe."""
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(EXPORT_COLUMNS)
    for row in rows:
        writer.writerow([csv_cell(row.get(column)) for column in EXPORT_COLUMNS])
    return out.getvalue()


MAX_SUGGESTIONS = 10


def suggest_numbers(
    client: OpenSearch, names: IndexNames, text: str, size: int = MAX_SUGGESTIONS
) -> list[dict]:
    """Bibs that start with a partial number ("417" -> 4172, 4173), the most often read first,
    from the words read and the runner passes; [] for anything but 2 to 9 digits."""
    prefix = normalise(text) if isinstance(text, str) else ""
    if not (prefix.isdigit() and 2 <= len(prefix) <= 9):
        return []
    counts: dict[str, dict] = {}
    words = {
        "size": 0,
        "query": {
            "bool": {
                "filter": [{"prefix": {"value_norm": prefix}}],
                "must_not": [{"term": {"text_type": "LINE"}}, {"term": {"value_norm": prefix}}],
            }
        },
        "aggs": {"values": {"terms": {"field": "value_norm", "size": size * 3, "include": "[0-9]+"}}},
    }
    for bucket in client.search(index=names.detections, body=words)["aggregations"]["values"]["buckets"]:
        counts[bucket["key"]] = {"text": bucket["key"], "frames": bucket["doc_count"], "passes": 0}
    if client.indices.exists(index=names.passes):
        passes = {
            "size": 0,
            "query": {"bool": {"filter": [{"prefix": {"number": prefix}}]}},
            "aggs": {"numbers": {"terms": {"field": "number", "size": size * 3}}},
        }
        for bucket in client.search(index=names.passes, body=passes)["aggregations"]["numbers"]["buckets"]:
            if bucket["key"] != prefix:
                entry = counts.setdefault(bucket["key"], {"text": bucket["key"], "frames": 0, "passes": 0})
                entry["passes"] = bucket["doc_count"]
    ranked = sorted(counts.values(), key=lambda e: (-e["passes"], -e["frames"], e["text"]))
    return ranked[:size]
