"""The steps of `video_clips` as plain functions: find a subject's segments, plan, cut, register.

A subject is a value as the index stores it (a bib number, a caption word); its segments are
continuous appearances in a video. Segments closer than `merge_gap` are joined, then padded and
clamped to the video, so each planned range becomes one clip. Clip ids are deterministic
(video, kind, subject, range): a re-run overwrites the same clip, and a range that changed
replaces the old clip (its document and file are removed).

A face subject (a reference photo or a face id, `reko.faces.person`) is cut where the person's
face tracks and the runner passes linked to them are; its clips are named `face:<face id>`.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reko.config import BACKENDS
from reko.index.client import IndexNames, ensure_templates, search_pages
from reko.index.docs import normalise
from reko.index.segments import DEFAULT_GAP_FACTOR, phrase_segments
from reko.storage import local_copy, local_path, parse_uri

if TYPE_CHECKING:
    from opensearchpy import OpenSearch

log = logging.getLogger(__name__)

CLIP_KINDS = ("text", "faces")  # labels join when their analysis exists
MAX_CLIPS_PER_RUN = 1000  # well under Airflow's max_map_length of 1024


class ClipInputError(ValueError):
    """A run's input names something that does not exist or cannot be cut; retrying will not help."""


@dataclass(frozen=True)
class ClipConfig:
    """A run's validated Params."""

    subjects: list[str]
    kind: str = "text"
    video_ids: list[str] = field(default_factory=list)
    padding_ms: int = 2000
    merge_gap_ms: int = 3000
    min_confidence: float = 80.0
    backend: str = "local"
    face_photo_uri: str = ""
    face_id: str = ""
    face_threshold: float = 83.0

    @classmethod
    def from_params(cls, params: dict[str, Any], watchlist: Iterable[str] = ()) -> ClipConfig:
        """Check every Param and say which one is wrong; no `subject` (and no face) means the
        watch-list. A face (`face_photo_uri` or `face_id`) is its own kind of subject."""
        from reko.faces.person import face_of_subject

        subject = str(params.get("subject") or "").strip()
        photo = str(params.get("face_photo_uri") or "").strip()
        face = str(params.get("face_id") or "").strip()
        if face_of_subject(subject) and not (photo or face):  # the page's and the clips' own name
            subject, face = "", face_of_subject(subject) or ""
        if photo and face:
            raise ClipInputError("give face_photo_uri or face_id, not both: each names the person")
        if subject and (photo or face):
            raise ClipInputError(
                f"give either a text subject ({subject!r}) or a face (face_photo_uri / face_id), not both"
            )
        kind = params.get("kind") or ("faces" if photo or face else "text")
        if kind not in CLIP_KINDS:
            raise ClipInputError(f"kind {kind!r} cannot be clipped yet; expected one of {list(CLIP_KINDS)}")
        if (kind == "faces") != bool(photo or face):
            raise ClipInputError(
                "kind 'faces' needs face_photo_uri or face_id"
                if kind == "faces"
                else f"a face subject is of kind 'faces', not {kind!r}"
            )
        if kind == "faces":
            subjects: list[str] = []
        else:
            subjects = [subject] if subject else [s.strip() for s in watchlist if str(s).strip()]
        threshold = float(params.get("face_threshold", 83.0))
        if not 0 <= threshold <= 100:
            raise ClipInputError(f"face_threshold must be a similarity between 0 and 100, got {threshold}")
        backend = params.get("backend", "local")
        if backend not in BACKENDS:
            raise ClipInputError(f"backend {backend!r} is not one of {list(BACKENDS)}")
        padding = float(params.get("padding_s", 2.0))
        merge_gap = float(params.get("merge_gap_s", 3.0))
        if not 0 <= padding <= 600:
            raise ClipInputError(f"padding_s must be between 0 and 600 s, got {padding}")
        if not 0 <= merge_gap <= 3600:
            raise ClipInputError(f"merge_gap_s must be between 0 and 3600 s, got {merge_gap}")
        confidence = float(params.get("min_confidence", 80.0))
        if not 0 <= confidence <= 100:
            raise ClipInputError(f"min_confidence must be between 0 and 100, got {confidence}")
        video_ids = [str(v).strip() for v in params.get("video_ids") or [] if str(v).strip()]
        return cls(
            subjects=list(dict.fromkeys(subjects)),
            kind=kind,
            video_ids=list(dict.fromkeys(video_ids)),
            padding_ms=round(padding * 1000),
            merge_gap_ms=round(merge_gap * 1000),
            min_confidence=confidence,
            backend=backend,
            face_photo_uri=photo,
            face_id=face,
            face_threshold=threshold,
        )


def _subject_key(subject_norm: str) -> str:
    """A file- and id-safe form of a subject: readable slug plus a hash (Korean, spaces, slashes)."""
    slug = re.sub(r"[^a-z0-9]+", "-", subject_norm.lower()).strip("-")[:32]
    digest = hashlib.sha1(subject_norm.encode()).hexdigest()[:10]
    return f"{slug}-{digest}" if slug else digest


def clip_id(video_id: str, kind: str, subject_norm: str, start_ms: int, end_ms: int) -> str:
    return f"{video_id}:{kind}:{_subject_key(subject_norm)}:{start_ms:09d}-{end_ms:09d}"


def videos_by_id(client: OpenSearch, names: IndexNames, video_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The video documents for `video_ids`; an id the index does not know is a clear error."""
    if not video_ids:
        return {}
    found = client.mget(index=names.videos, body={"ids": video_ids})["docs"]
    videos = {d["_id"]: d["_source"] for d in found if d.get("found")}
    unknown = [v for v in video_ids if v not in videos]
    if unknown:
        raise ClipInputError(f"unknown video ids {unknown}: not in index {names.videos} (analyse them first)")
    return videos


def find_segments(
    client: OpenSearch,
    names: IndexNames,
    *,
    subject_norm: str,
    kind: str,
    min_confidence: float,
    video_ids: list[str],
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(id, segment) of the subject, sorted by video then time, paged with search_after."""
    filters: list[dict[str, Any]] = [
        {"term": {"kind": kind}},
        {"term": {"value_norm": subject_norm}},
        {"range": {"best_confidence": {"gte": min_confidence}}},
    ]
    if video_ids:
        filters.append({"terms": {"video_id": video_ids}})
    body: dict[str, Any] = {
        "size": 1000,
        "query": {"bool": {"filter": filters}},
        "sort": [{"video_id": "asc"}, {"start_ms": "asc"}, {"_id": "asc"}],
    }
    for hit in search_pages(client, names.segments, body):
        yield hit["_id"], hit["_source"]


def _phrase_filters(cfg: ClipConfig) -> list[dict[str, Any]]:
    filters: list[dict[str, Any]] = [{"range": {"confidence": {"gte": cfg.min_confidence}}}]
    if cfg.video_ids:
        filters.append({"terms": {"video_id": cfg.video_ids}})
    return filters


def find_passes_of(
    client: OpenSearch, names: IndexNames, *, subject: str, video_ids: list[str]
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(id, runner pass) whose number is the subject or whose roster name matches it, by video and time.

    A pass is one runner's whole appearance (a track voted to one number), so it is clipped as one
    range whatever the confidence of its single reads.
    """
    if not client.indices.exists(index=names.passes):
        return
    who: dict[str, Any] = {
        "bool": {
            "should": [
                {"term": {"number": normalise(subject)}},
                {"match": {"name": {"query": subject, "operator": "and"}}},
            ],
            "minimum_should_match": 1,
        }
    }
    filters: list[dict[str, Any]] = [who]
    if video_ids:
        filters.append({"terms": {"video_id": video_ids}})
    body: dict[str, Any] = {
        "size": 1000,
        "query": {"bool": {"filter": filters}},
        "sort": [{"video_id": "asc"}, {"start_ms": "asc"}, {"_id": "asc"}],
        "_source": {"excludes": ["frames"]},
    }
    for hit in search_pages(client, names.passes, body):
        yield hit["_id"], hit["_source"]


@dataclass
class _Range:
    start_ms: int
    end_ms: int
    segment_ids: list[str]


def plan_ranges(
    segments: Iterable[tuple[str, dict[str, Any]]],
    *,
    interval_ms: int,
    duration_ms: int,
    padding_ms: int,
    merge_gap_ms: int,
) -> list[_Range]:
    """Cut ranges [start, end) for one video's segments of one subject.

    A segment's last sighting stands for its whole capture interval (the subject was seen at
    `end_ms` and no longer one interval later), so its range ends at `end_ms + interval`.
    Segments at most `merge_gap_ms` apart are joined; padding is added, ranges that then
    overlap are joined too, and everything is clamped to the video.
    """
    merged: list[_Range] = []
    for seg_id, seg in sorted(segments, key=lambda s: s[1]["start_ms"]):
        start, end = seg["start_ms"], seg["end_ms"] + interval_ms
        if merged and start - merged[-1].end_ms <= merge_gap_ms:
            merged[-1].end_ms = max(merged[-1].end_ms, end)
            merged[-1].segment_ids.append(seg_id)
        else:
            merged.append(_Range(start, end, [seg_id]))
    padded: list[_Range] = []
    for rng in merged:
        if rng.start_ms >= duration_ms:
            raise ClipInputError(
                f"segment {rng.segment_ids[0]} starts at {rng.start_ms / 1000:.3f} s, past the end of its"
                f" video ({duration_ms / 1000:.3f} s): the index is out of date, re-analyse the video"
            )
        start, end = max(0, rng.start_ms - padding_ms), min(duration_ms, rng.end_ms + padding_ms)
        if padded and start <= padded[-1].end_ms:
            padded[-1].end_ms = max(padded[-1].end_ms, end)
            padded[-1].segment_ids.extend(rng.segment_ids)
        else:
            padded.append(_Range(start, end, list(rng.segment_ids)))
    return padded


def clip_uri(root_uri: str, video_id: str, kind: str, subject_norm: str, start_ms: int, end_ms: int) -> str:
    base = parse_uri(root_uri, "REKO_WORK_URI") / video_id / "clips" / kind / _subject_key(subject_norm)
    return str(base / f"{video_id}.{start_ms:09d}-{end_ms:09d}.mp4")


Segments = dict[str, list[tuple[str, dict[str, Any]]]]  # video id -> (id, segment) in time order


def _text_segments(client: OpenSearch, names: IndexNames, cfg: ClipConfig, subject: str) -> Segments:
    """A text subject's segments by video; a runner's passes replace its loose word segments, and
    a phrase with no segment documents of its own is found in the lines that hold it."""
    subject_norm = normalise(subject)
    by_video: Segments = {}
    for seg_id, seg in find_segments(
        client,
        names,
        subject_norm=subject_norm,
        kind=cfg.kind,
        min_confidence=cfg.min_confidence,
        video_ids=cfg.video_ids,
    ):
        by_video.setdefault(seg["video_id"], []).append((seg_id, seg))
    passes: Segments = {}
    for pass_id, runner_pass in find_passes_of(client, names, subject=subject, video_ids=cfg.video_ids):
        passes.setdefault(runner_pass["video_id"], []).append((pass_id, runner_pass))
    by_video.update(passes)
    if not by_video and " " in subject_norm:
        by_video = phrase_segments(client, names, subject, filters=_phrase_filters(cfg))
    return by_video


def person_of(client: OpenSearch, names: IndexNames, cfg: ClipConfig) -> tuple[str | None, Segments]:
    """The face id that names the person of a face subject, and where they are seen, by video.

    A reference photo is read into memory and embedded (`reko.faces.person`); a photo without a
    face, a missing photo or an unknown face id is a ClipInputError naming it."""
    from reko.faces.person import PersonInputError, match_by_face, match_by_photo, person_segments, read_photo
    from reko.faces.search import MAX_PHOTO_BYTES

    video_ids = cfg.video_ids or None
    try:
        if cfg.face_id:
            match = match_by_face(
                client, names, cfg.face_id, threshold=cfg.face_threshold, video_ids=video_ids
            )
        else:
            photo = read_photo(cfg.face_photo_uri, MAX_PHOTO_BYTES)
            try:
                match = match_by_photo(
                    client, names, photo, threshold=cfg.face_threshold, video_ids=video_ids
                )
            finally:
                del photo
    except PersonInputError as exc:
        raise ClipInputError(str(exc)) from None
    except ValueError as exc:  # the photo is not an image, or holds no face
        raise ClipInputError(f"face_photo_uri {cfg.face_photo_uri!r}: {exc}") from None
    seen_in = sorted({face["video_id"] for face in match.faces.values()})
    intervals = {v: doc["frame_interval_ms"] for v, doc in videos_by_id(client, names, seen_in).items()}
    return match.anchor_face, person_segments(client, names, match, intervals, DEFAULT_GAP_FACTOR)


def _subjects_seen(
    client: OpenSearch, names: IndexNames, cfg: ClipConfig, messages: list[str]
) -> Iterator[tuple[str, str, Segments]]:
    """(subject, its normalised form, its segments by video) for every subject of the run."""
    from reko.faces.person import face_subject

    if cfg.kind == "faces":
        anchor, by_video = person_of(client, names, cfg)
        if anchor is None:
            messages.append(
                f"nobody in the index matches the reference photo at similarity >= {cfg.face_threshold:g}:"
                " nothing to cut"
            )
            return
        subject = face_subject(anchor)
        yield subject, normalise(subject), by_video
        return
    for subject in cfg.subjects:
        yield subject, normalise(subject), _text_segments(client, names, cfg, subject)


def plan_clips(client: OpenSearch, names: IndexNames, cfg: ClipConfig, root_uri: str) -> dict[str, Any]:
    """Everything to cut for the run, and its scope (the (video, subject) pairs it owns).

    The scope is what `register_clips` replaces: a pair's clips that this plan did not produce
    (a changed range, a subject no longer seen) are deleted there.
    """
    ensure_templates(client, names)
    requested = videos_by_id(client, names, cfg.video_ids)
    items: list[dict[str, Any]] = []
    scope: list[dict[str, str]] = []
    messages: list[str] = []
    if not cfg.subjects and cfg.kind != "faces":
        messages.append("no subject given and the watch-list is empty: nothing to cut")
    subjects: list[str] = []
    videos: dict[str, dict[str, Any]] = dict(requested)
    for subject, subject_norm, by_video in _subjects_seen(client, names, cfg, messages):
        subjects.append(subject)
        missing = [v for v in by_video if v not in videos]
        videos.update(videos_by_id(client, names, missing))
        for video_id in cfg.video_ids or sorted(by_video):
            scope.append({"video_id": video_id, "subject_norm": subject_norm})
        if not by_video:
            where = f" in videos {cfg.video_ids}" if cfg.video_ids else ""
            at = (
                f"similarity >= {cfg.face_threshold:g}"
                if cfg.kind == "faces"
                else f"confidence >= {cfg.min_confidence:g}"
            )
            messages.append(f"no segments for {subject!r}{where} at {at}: nothing to cut")
            continue
        for video_id, segments in sorted(by_video.items()):
            video = videos[video_id]
            source = parse_uri(video["source_uri"], "source_uri")
            if not source.exists():
                raise ClipInputError(f"the source of video {video_id} was deleted: {video['source_uri']}")
            for rng in plan_ranges(
                segments,
                interval_ms=video["frame_interval_ms"],
                duration_ms=video["duration_ms"],
                padding_ms=cfg.padding_ms,
                merge_gap_ms=cfg.merge_gap_ms,
            ):
                items.append(
                    {
                        "clip_id": clip_id(video_id, cfg.kind, subject_norm, rng.start_ms, rng.end_ms),
                        "clip_uri": clip_uri(
                            root_uri, video_id, cfg.kind, subject_norm, rng.start_ms, rng.end_ms
                        ),
                        "video_id": video_id,
                        "source_uri": video["source_uri"],
                        "kind": cfg.kind,
                        "subject": subject,
                        "subject_norm": subject_norm,
                        "start_ms": rng.start_ms,
                        "end_ms": rng.end_ms,
                        "segment_ids": rng.segment_ids,
                        "backend": cfg.backend,
                        "fps": video["fps"],
                        "duration_ms": video["duration_ms"],
                        "has_audio": video.get("has_audio", True),
                        "label": f"{subject} @ {video_id} {rng.start_ms / 1000:.1f}-{rng.end_ms / 1000:.1f}s",
                    }
                )
    if len(items) > MAX_CLIPS_PER_RUN:
        raise ClipInputError(
            f"{len(items)} clips planned; the limit per run is {MAX_CLIPS_PER_RUN}:"
            " narrow the subjects or video_ids, or raise merge_gap_s"
        )
    for message in messages:
        log.info(message)
    return {"items": items, "scope": scope, "messages": messages, "subjects": subjects, "cfg": asdict(cfg)}


def cut_local(item: dict[str, Any]) -> dict[str, Any]:
    """Cut one planned clip with ffmpeg (frame-exact smart cut) and store it at its URI.

    The clip appears complete or not at all: it is cut to a temp file, then moved or uploaded.
    """
    from reko.clips import cut_clip

    source = parse_uri(item["source_uri"], "source_uri")
    if not source.exists():
        raise ClipInputError(f"the source of video {item['video_id']} was deleted: {item['source_uri']}")
    target = parse_uri(item["clip_uri"], "clip_uri")
    direct = local_path(target)
    with local_copy(source) as path, tempfile.TemporaryDirectory(prefix="reko-clip-") as tmp:
        out = Path(tmp) / "clip.mp4"
        result = cut_clip(path, item["start_ms"], item["end_ms"], out)
        if direct is not None:
            direct.parent.mkdir(parents=True, exist_ok=True)
            staged = direct.with_name(f".{direct.name}.tmp")
            shutil.copyfile(out, staged)
            staged.replace(direct)
        else:
            with out.open("rb") as src, target.open("wb") as dst:
                shutil.copyfileobj(src, dst)
    return {
        "start_ms": result.start_ms,
        "end_ms": result.end_ms,
        "duration_s": result.duration_s,
        "size_bytes": result.size_bytes,
        "method": result.method,
    }


def clip_document(item: dict[str, Any], cut: dict[str, Any], cfg: ClipConfig, **run: str) -> dict[str, Any]:
    return {
        "video_id": item["video_id"],
        "kind": item["kind"],
        "subject": item["subject"],
        "subject_norm": item["subject_norm"],
        "clip_uri": item["clip_uri"],
        "source_uri": item["source_uri"],
        "requested_start_ms": item["start_ms"],
        "requested_end_ms": item["end_ms"],
        **{k: cut[k] for k in ("start_ms", "end_ms", "duration_s", "size_bytes", "method")},
        "backend": cfg.backend,
        "segment_ids": item["segment_ids"],
        "padding_ms": cfg.padding_ms,
        "merge_gap_ms": cfg.merge_gap_ms,
        "created_at": datetime.now(UTC).isoformat(),
        **run,
    }


def register_clips(
    client: OpenSearch,
    names: IndexNames,
    plan: dict[str, Any],
    cuts: dict[str, dict[str, Any]],
    **run: str,
) -> dict[str, Any]:
    """Index every cut clip, then remove the scope's clips this plan did not produce (and their files).

    `plan_clips` has installed the templates; documents go through the bulk loader.

    A planned clip without a cut (its task failed) keeps any document it had; only clips outside
    the plan are removed, so a partial run never deletes what it did not replace.
    """
    from reko.index.bulk import bulk_load

    cfg = ClipConfig(**plan["cfg"])
    cut_items = [item for item in plan["items"] if item["clip_id"] in cuts]
    bulk_load(
        client,
        (
            {
                "_index": names.clips,
                "_id": item["clip_id"],
                "_source": clip_document(item, cuts[item["clip_id"]], cfg, **run),
            }
            for item in cut_items
        ),
    )
    planned = {item["clip_id"] for item in plan["items"]}
    removed: list[str] = []
    client.indices.refresh(index=names.clips)
    for pair in plan["scope"]:
        query = {
            "bool": {
                "filter": [
                    {"term": {"video_id": pair["video_id"]}},
                    {"term": {"kind": cfg.kind}},
                    {"term": {"subject_norm": pair["subject_norm"]}},
                ]
            }
        }
        hits = client.search(
            index=names.clips, body={"size": MAX_CLIPS_PER_RUN, "query": query, "_source": ["clip_uri"]}
        )["hits"]["hits"]
        for hit in hits:
            if hit["_id"] not in planned:
                _remove_file(hit["_source"]["clip_uri"])
                removed.append(hit["_id"])
    bulk_load(client, ({"_op_type": "delete", "_index": names.clips, "_id": i} for i in removed))
    client.indices.refresh(index=names.clips)
    return {"registered": [item["clip_id"] for item in cut_items], "removed": removed}


def _remove_file(uri: str) -> None:
    path = parse_uri(uri, "clip_uri")
    try:
        path.unlink()
    except FileNotFoundError:
        pass
