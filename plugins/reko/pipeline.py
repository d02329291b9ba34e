"""The steps of `video_analysis` as plain functions, so tests and benchmarks call them directly.

The DAG file only wires these into tasks; nothing here needs a running Airflow.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reko.analysis.base import (
    Analysis,
    RetryableAnalysisError,
    check_available,
    crop_reader,
    get_analysis,
    traits,
)
from reko.config import ANALYSES, near_duplicate_bits, rekognition_price_per_1000
from reko.index.client import IndexNames
from reko.media import (
    InvalidVideoError,
    VideoInfo,
    expected_frame_count,
    extract_frames,
    frame_name,
    frame_timestamp_ms,
    parse_frame_name,
    probe,
)
from reko.runners.passes import PassSettings
from reko.runners.roster import load_roster
from reko.storage import (
    VideoStore,
    local_copy,
    local_path,
    parse_uri,
    presigned_url,
    read_json,
    remove_tree,
    source_fingerprint,
    write_json,
)

if TYPE_CHECKING:
    from opensearchpy import OpenSearch

    from reko.runners.reread import FrameImages

log = logging.getLogger(__name__)

MAX_BATCHES = 500  # well under Airflow's default max_map_length of 1024
MAX_FAILED_FRAMES_IN_DOC = 1000
FRAME_ATTEMPTS = 3
CACHE_CHECK_THREADS = 8  # result-cache checks on object storage are one request each


@dataclass(frozen=True)
class RunConfig:
    """A run's validated Params."""

    video_uri: str
    backend: str
    frame_interval_s: float
    analyses: list[str]
    min_confidence: float
    batch_size: int | None = None
    reprocess_frames: list[int] = field(default_factory=list)
    reanalyse: bool = False
    roster_uri: str | None = None
    track_gap_s: float = 3.0

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> RunConfig:
        """Check every Param and say exactly which one is wrong."""
        uri = params.get("video_uri")
        parse_uri(uri or "")
        interval = float(params.get("frame_interval_s") or 0)
        if not 0.04 <= interval <= 3600:
            raise ValueError(f"frame_interval_s must be between 0.04 and 3600 s, got {interval}")
        analyses = list(params.get("analyses") or [])
        check_available(params.get("backend", ""), analyses)
        confidence = float(params.get("min_confidence", 0))
        if not 0 <= confidence <= 100:
            raise ValueError(f"min_confidence must be between 0 and 100, got {confidence}")
        batch_size = params.get("batch_size")
        if batch_size is not None and int(batch_size) < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        frames = [int(i) for i in params.get("reprocess_frames") or []]
        if any(i < 0 for i in frames):
            raise ValueError(f"reprocess_frames must be frame indexes >= 0, got {frames}")
        roster = str(params.get("roster_uri") or "").strip() or None
        if roster:
            parse_uri(roster, "roster_uri")
        gap = float(params.get("track_gap_s", 3.0))
        if not 0 <= gap <= 60:
            raise ValueError(f"track_gap_s must be between 0 and 60 s, got {gap}")
        return cls(
            video_uri=uri,
            backend=params["backend"],
            frame_interval_s=interval,
            analyses=[a for a in ANALYSES if a in analyses],
            min_confidence=confidence,
            batch_size=int(batch_size) if batch_size is not None else None,
            reprocess_frames=sorted(set(frames)),
            reanalyse=bool(params.get("reanalyse", False)),
            roster_uri=roster,
            track_gap_s=gap,
        )


def settings_key(cfg: RunConfig) -> str:
    """What makes two analyses of one source interchangeable: backend, interval, analyses, threshold.

    Stored on the video document, so a scan skips a video already analysed this way and a run
    with other settings is not mistaken for one (which frames to re-analyse is not part of it).
    """
    basis = {
        "backend": cfg.backend,
        "interval_ms": round(cfg.frame_interval_s * 1000),
        "analyses": sorted(cfg.analyses),
        "min_confidence": float(cfg.min_confidence),
    }
    return hashlib.sha1(json.dumps(basis, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Job:
    """What every task of one run needs: its Params, its storage layout and the video's facts.

    Passed between tasks as XCom (plain dicts), rebuilt with `from_xcom`.
    """

    cfg: RunConfig
    store: VideoStore
    info: VideoInfo

    def to_xcom(self) -> dict[str, Any]:
        return {"cfg": asdict(self.cfg), "store": asdict(self.store), "info": asdict(self.info)}

    @classmethod
    def from_xcom(cls, data: dict[str, Any]) -> Job:
        return cls(RunConfig(**data["cfg"]), VideoStore(**data["store"]), VideoInfo(**data["info"]))


def probed_conf(info: VideoInfo, fingerprint: str) -> dict[str, Any]:
    """A probe to hand to a run (the `probed` Param): the facts and the version they were read from."""
    return {"fingerprint": fingerprint, "info": info.as_dict()}


def reuse_probe(video_uri: str, probed: dict[str, Any] | None) -> VideoInfo | None:
    """The handed-over probe's facts while the video is the version probed, else None (probe again).

    One stat (a HEAD on S3) instead of ffprobe and a tail decode; a changed, missing or malformed
    hand-over is simply probed again, so it can never make a run read a video it would refuse."""
    if not probed:
        return None
    try:
        if source_fingerprint(parse_uri(video_uri)) != probed.get("fingerprint"):
            return None
        info = VideoInfo(**probed["info"])
    except (OSError, KeyError, TypeError, ValueError):
        return None
    return info if info.duration_s > 0 and info.fps > 0 and info.size_bytes > 0 else None


def probe_video(cfg: RunConfig, work_uri: str, probed: dict[str, Any] | None = None) -> Job:
    """Read the video's facts; a clear error for anything that is not a readable video.

    `probed` is the archive scan's probe of the same video (`probed_conf`), reused while the video
    is unchanged."""
    if traits(cfg.backend).needs_s3 and not (
        cfg.video_uri.startswith("s3://") and work_uri.startswith("s3://")
    ):
        raise ValueError(
            f"backend {cfg.backend!r} needs the video and the work root in S3 (MediaConvert reads and writes"
            f" there): video_uri={cfg.video_uri!r}, REKO_WORK_URI={work_uri!r}"
        )
    if cfg.roster_uri:
        load_roster(cfg.roster_uri)  # a bad roster fails the run here, before anything is written
    store = VideoStore.for_video(work_uri, cfg.video_uri, cfg.frame_interval_s)
    info = reuse_probe(cfg.video_uri, probed)
    if info is None:
        direct = local_path(parse_uri(cfg.video_uri))
        # an S3 video is probed through a presigned URL with range reads, never downloaded
        source = direct if direct is not None else presigned_url(cfg.video_uri)
        info = probe(source, cfg.video_uri)
    return Job(cfg, store, info)


def pass_settings(cfg: RunConfig, interval_ms: int) -> PassSettings:
    """The tracker's settings for this run's frames."""
    return PassSettings(interval_ms=interval_ms, max_gap_s=cfg.track_gap_s, min_confidence=cfg.min_confidence)


def find_runner_passes(
    client: OpenSearch, names: IndexNames, job: Job, *, reread: bool = True
) -> dict[str, Any]:
    """Track this video's indexed bib reads into runner passes (snapped to the roster, if any).

    Where the backend can read a crop of a frame, bibs the detector missed are read again from
    the frame images first (`reko.runners.reread`; `reread=False` measures the tracker alone).
    """
    from reko.index.passes import load_passes

    if "text" not in job.cfg.analyses:
        return {
            "passes": 0,
            "numbers": [],
            "rejected": [],
            "rejected_count": 0,
            "skipped": "no text analysis",
        }
    roster = load_roster(job.cfg.roster_uri) if job.cfg.roster_uri else None
    reader = crop_reader(job.cfg.backend) if reread else None
    return load_passes(
        client,
        names,
        job.store.video_id,
        backend=job.cfg.backend,
        settings=pass_settings(job.cfg, job.store.interval_ms),
        roster=roster,
        frames=frame_images(job) if reader is not None else None,
        read_crop=reader,
    )


def frame_images(job: Job) -> FrameImages | None:
    """The run's sampled frames in the work store (None when its manifest is gone: nothing to re-read)."""
    from reko.runners.reread import FrameImages

    manifest = read_json(job.store.manifest)
    if not manifest:
        return None
    interval_s = job.cfg.frame_interval_s
    return FrameImages(
        count=int(manifest["frame_count"]),
        timestamp_ms=lambda i: frame_timestamp_ms(i, interval_s),
        uri=lambda i: str(job.store.frame(i)),
        load=lambda i: job.store.frame(i).read_bytes(),
    )


def current_frames(cfg: RunConfig, store: VideoStore) -> tuple[dict[str, Any] | None, str]:
    """(manifest or None, source fingerprint): frames are cut once per video and interval.

    A manifest written last marks the frames complete. If the source object changed since (another
    size, ETag or mtime), its old frames and cached results no longer describe it: they are removed.
    """
    fingerprint = source_fingerprint(parse_uri(cfg.video_uri))
    manifest = read_json(store.manifest)
    if manifest and manifest.get("source_fingerprint") == fingerprint:
        log.info("frames already extracted for %s (%d frames)", store.video_id, manifest["frame_count"])
        return manifest, fingerprint
    if manifest:
        log.warning("%s changed since its frames were cut: removing %s", cfg.video_uri, store.base)
        remove_tree(store.base)
    return None, fingerprint


def write_manifest(
    cfg: RunConfig, store: VideoStore, info: VideoInfo, count: int, fingerprint: str, extract_s: float
) -> dict[str, Any]:
    """Record the frames once they are all written; the same for ffmpeg and MediaConvert."""
    expected = expected_frame_count(info.duration_s, cfg.frame_interval_s)
    if count == 0:
        raise InvalidVideoError(f"no frames could be decoded from {cfg.video_uri}")
    if abs(count - expected) > 1:
        log.warning("extracted %d frames, expected %d from the duration", count, expected)
    manifest = {
        "video_id": store.video_id,
        "frame_count": count,
        "frames_uri": str(store.frames_dir),
        "stem": store.stem,
        "interval_ms": store.interval_ms,
        "source_uri": cfg.video_uri,
        "source_fingerprint": fingerprint,
        "extract_s": round(extract_s, 3),
    }
    write_json(store.manifest, manifest)
    return manifest


NO_MEDIACONVERT = {"jobs": 0, "proxy_minutes": 0.0, "price_per_minute": 0.0, "estimated_cost_usd": 0.0}


def this_run(
    manifest: dict[str, Any],
    *,
    extracted: bool,
    extract_s: float = 0.0,
    mediaconvert: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The extract task's result: the manifest plus what this run did. The stored manifest keeps
    the first run's `extract_s`; a re-run that found the frames cut did no extraction and paid for
    no job, and the note and the cost record say so (`this_run`)."""
    return {
        **manifest,
        "this_run": {
            "extracted": extracted,
            "extract_s": round(extract_s, 3) if extracted else 0.0,
            "mediaconvert": mediaconvert or dict(NO_MEDIACONVERT),
        },
    }


def extract(cfg: RunConfig, store: VideoStore, info: VideoInfo) -> dict[str, Any]:
    """Cut frames with ffmpeg (the local backend) unless they are already cut."""
    manifest, fingerprint = current_frames(cfg, store)
    if manifest:
        return this_run(manifest, extracted=False)
    started = time.monotonic()
    with local_copy(parse_uri(cfg.video_uri)) as source:
        frames_dir = local_path(store.frames_dir)
        if frames_dir is not None:
            count = extract_frames(source, frames_dir, store.stem, cfg.frame_interval_s)
        else:
            count = _extract_and_upload(source, store, cfg.frame_interval_s)
    manifest = write_manifest(cfg, store, info, count, fingerprint, time.monotonic() - started)
    return this_run(manifest, extracted=True, extract_s=manifest["extract_s"])


def _extract_and_upload(source: Path, store: VideoStore, interval_s: float) -> int:
    """Remote work roots: ffmpeg writes to a temp folder, each frame is then copied up."""
    with tempfile.TemporaryDirectory(prefix="reko-frames-") as tmp:
        count = extract_frames(source, Path(tmp), store.stem, interval_s)
        for path in sorted(Path(tmp).iterdir()):
            parsed = parse_frame_name(path.name)
            if parsed:
                with path.open("rb") as src, store.frame(parsed[1]).open("wb") as dst:
                    shutil.copyfileobj(src, dst)
    return count


def auto_batch_size(frame_count: int) -> int:
    """25-100 frames a batch (about 8 batches for mid-length videos), never more than MAX_BATCHES.

    Each mapped task pays ~0.1-0.2 s of scheduling plus ~2.4 s of model loading (measured in
    bench/), so one task per frame wastes minutes per video and batches under ~25 frames spend
    more than 10% of their time loading; large batches still spread over workers.
    """
    size = min(100, max(25, math.ceil(frame_count / 8)))
    return max(size, math.ceil(frame_count / MAX_BATCHES))


def plan_batches(frame_count: int, batch_size: int | None) -> list[dict[str, int]]:
    size = batch_size or auto_batch_size(frame_count)
    if math.ceil(frame_count / size) > MAX_BATCHES:
        raise ValueError(
            f"batch_size {size} gives {math.ceil(frame_count / size)} batches for {frame_count} frames;"
            f" the limit is {MAX_BATCHES}: raise batch_size or leave it empty"
        )
    return [{"start": s, "end": min(s + size, frame_count)} for s in range(0, frame_count, size)]


def analyse_batch(
    store: VideoStore,
    start: int,
    end: int,
    *,
    backend: str,
    analyses: list[str],
    interval_s: float,
    reprocess: Iterable[int] = (),
    not_before: str | None = None,
    analysis_factory: Callable[..., Analysis] = get_analysis,
    analysis_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Analyse frames [start, end) that have no stored result; record each failure with its reason.

    `reprocess` frames are analysed again unless their result is newer than `not_before` (the run's
    start), so a retried task does not redo a re-analysis it already finished. `analysis_options`
    (e.g. `min_confidence`) are passed to the factory as `options=` when given. An analysis with
    `concurrency` > 1 (a remote API, paced by its own rate limiter) has that many frames in flight.
    """
    started = time.monotonic()
    again = set(reprocess)
    bound: dict[str, Analysis] = {}
    report: dict[str, Any] = {
        "start": start,
        "end": end,
        "made": 0,
        "skipped": 0,
        "duplicates": 0,
        "near_duplicates": 0,
        "failed": [],
    }
    todo: list[tuple[int, str]] = []
    items = [(index, kind) for index in range(start, end) for kind in analyses]
    for kind in analyses:  # bound before the cache check: a result of another model is not cached
        bound[kind] = (
            analysis_factory(backend, kind)
            if analysis_options is None
            else analysis_factory(backend, kind, options=analysis_options)
        )
    stale: list[tuple[int, str, str]] = []

    def cached(item: tuple[int, str]) -> bool:
        index, kind = item
        path = store.result(backend, kind, index)
        return _is_cached(path, index in again, not_before, bound[kind].model_version, stale)

    if local_path(store.base) is None and len(items) > 1:  # one request per check: overlap them
        with ThreadPoolExecutor(min(CACHE_CHECK_THREADS, len(items))) as pool:
            flags = list(pool.map(cached, items))
    else:
        flags = [cached(item) for item in items]
    for (index, kind), is_cached in zip(items, flags, strict=True):
        if is_cached:
            report["skipped"] += 1
            continue
        todo.append((index, kind))
    if stale:
        report["stale_model"] = len(stale)
        models = sorted({model for _, _, model in stale})
        log.info(
            "%d stored results were made by another model (%s): analysing them again with %s",
            len(stale),
            ", ".join(models),
            ", ".join(sorted({bound[kind].model_version for _, kind, _ in stale})),
        )

    def analyse(item: tuple[int, str]) -> tuple[int, dict[str, Any] | None]:
        index, kind = item
        outcome = _analyse_frame(store, index, bound[kind], interval_s)
        error_path = store.error(backend, kind, index)
        if "error" in outcome:
            failure = {
                "frame_index": index,
                "kind": kind,
                "reason": outcome["error"],
                "retryable": outcome["retryable"],
            }
            write_json(error_path, failure)
            return outcome["calls"], failure
        write_json(store.result(backend, kind, index), outcome["result"])
        if error_path.exists():
            error_path.unlink()
        return outcome["calls"], None

    digests = _frame_digests(store, start, end) if todo else {}
    bits = near_duplicate_bits()
    similar = _near_duplicates(store, start, end, bits) if todo and bits else set()
    originals = [(i, k) for i, k in todo if not _same_as_previous(digests, i) and i not in similar]
    duplicates = [(i, k) for i, k in todo if _same_as_previous(digests, i) or i in similar]
    workers = min(max((a.concurrency for a in bound.values()), default=1), len(originals))
    if workers > 1:
        with ThreadPoolExecutor(workers, thread_name_prefix="reko-analyse") as pool:
            outcomes = list(pool.map(analyse, originals))  # in frame order, like the sequential path
    else:
        outcomes = [analyse(item) for item in originals]
    for index, kind in duplicates:  # ascending, so a run of identical frames copies down the run
        if _copy_previous_result(store, backend, kind, index, interval_s, bound[kind].model_version):
            report["duplicates"] += 1
            report["near_duplicates"] += not _same_as_previous(digests, index)
        else:  # the identical previous frame has no result (it failed): analyse this one
            outcomes.append(analyse((index, kind)))
    for calls, failure in outcomes:
        report["made"] += calls
        if failure:
            report["failed"].append(failure)
    report["failed"].sort(key=lambda f: (f["frame_index"], f["kind"]))
    report["elapsed_s"] = round(time.monotonic() - started, 3)
    return report


def _frame_digests(store: VideoStore, start: int, end: int) -> dict[int, str]:
    """Content ids of frames [start - 1, end): SHA-1 of the bytes locally, the ETag on S3.

    On S3 one listing of the frames folder gives every ETag (MD5 of a single-part object), so
    spotting identical frames costs no download. Frame start - 1 is included so that a run of
    identical frames crossing a batch boundary is still recognised.
    """
    wanted = {frame_name(store.stem, i): i for i in range(max(0, start - 1), end)}
    direct = local_path(store.frames_dir)
    if direct is not None:
        found = {}
        for name, index in wanted.items():
            try:
                found[index] = hashlib.sha1((direct / name).read_bytes()).hexdigest()
            except FileNotFoundError:
                continue
        return found
    listing = store.frames_dir.fs.ls(store.frames_dir.path, detail=True)
    return {
        wanted[name]: str(entry["ETag"]).strip('"')
        for entry in listing
        if (name := str(entry["name"]).rsplit("/", 1)[-1]) in wanted and entry.get("ETag")
    }


DHASH_SIZE = 16  # dHash grid: 16 x 16 = 256 bits, fine enough that a runner crossing a 720p frame flips bits


def frame_dhash(data: bytes) -> int:
    """Perceptual difference hash of a JPEG/PNG frame: grey, shrunk to 17 x 16, one bit per pair
    of horizontal neighbours (left brighter). JPEGs are decoded at 1/8 scale (Pillow's draft mode),
    so a 720p frame costs about a millisecond."""
    import io

    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        img.draft("L", (img.width // 8, img.height // 8))
        small = img.convert("L").resize((DHASH_SIZE + 1, DHASH_SIZE), Image.Resampling.BILINEAR)
        px = list(small.getdata())
    bits = 0
    for row in range(DHASH_SIZE):
        line = px[row * (DHASH_SIZE + 1) : (row + 1) * (DHASH_SIZE + 1)]
        for a, b in zip(line, line[1:], strict=False):
            bits = (bits << 1) | (a > b)
    return bits


def dhash_distance(a: int, b: int) -> int:
    """Bits in which two `frame_dhash` values differ."""
    return (a ^ b).bit_count()


def _near_duplicates(store: VideoStore, start: int, end: int, bits: int) -> set[int]:
    """Frames of [start, end) within `bits` of the last frame before them that was not itself a
    near duplicate (so a slow drift is analysed again once it adds up). Reading each frame costs
    a download on S3, far cheaper than the Rekognition call it can save."""
    found: set[int] = set()
    ref: int | None = None
    for index in range(max(0, start - 1), end):
        try:
            hsh = frame_dhash(store.frame(index).read_bytes())
        except (FileNotFoundError, OSError, ValueError):
            ref = None
            continue
        if index >= start and ref is not None and dhash_distance(hsh, ref) <= bits:
            found.add(index)
        else:
            ref = hsh
    return found


def _same_as_previous(digests: dict[int, str], index: int) -> bool:
    return index > 0 and index in digests and digests[index] == digests.get(index - 1)


def _copy_previous_result(
    store: VideoStore, backend: str, kind: str, index: int, interval_s: float, model: str
) -> bool:
    """Give a frame identical to the one before it that frame's result (no call, no cost), unless
    that result is another model's (the previous batch's, not analysed again yet)."""
    previous = read_json(store.result(backend, kind, index - 1))
    if previous is None or not _made_by(previous, model):
        return False
    frame = store.frame(index)
    write_json(
        store.result(backend, kind, index),
        {
            **previous,
            "frame_index": index,
            "timestamp_ms": frame_timestamp_ms(index, interval_s),
            "frame_uri": str(frame),
            "duplicate_of": previous.get("duplicate_of", index - 1),
            "analysed_at": datetime.now(UTC).isoformat(),
        },
    )
    error_path = store.error(backend, kind, index)
    if error_path.exists():
        error_path.unlink()
    return True


def _made_by(result: dict[str, Any], model: str) -> bool:
    made_by = str(result.get("model") or "")
    return made_by == model or made_by.startswith(model + ":")  # Rekognition adds its version


def _is_cached(
    result_path: Any,
    reprocess: bool,
    not_before: str | None,
    model: str,
    stale: list[tuple[int, str, str]],
) -> bool:
    """Whether a stored result stands: it exists, was made by `model` (a new reader or model
    version is not served an old one's answers; `stale` collects those), and, for a frame to
    re-analyse, is newer than `not_before` (a retry does not redo a re-analysis it finished)."""
    cached = read_json(result_path)
    if not cached:
        return False
    if not _made_by(cached, model):
        made_by = cached.get("model") or "unknown"
        stale.append((cached.get("frame_index", -1), cached.get("kind", ""), made_by))
        return False
    if not reprocess:
        return True
    return not_before is not None and cached.get("analysed_at", "") >= not_before


def _analyse_frame(store: VideoStore, index: int, analysis: Analysis, interval_s: float) -> dict[str, Any]:
    frame = store.frame(index)
    calls = 0
    for attempt in range(1, FRAME_ATTEMPTS + 1):
        calls += 1
        try:
            response = analysis.run(frame)
            break
        except FileNotFoundError:
            return {"calls": calls - 1, "retryable": False, "error": f"frame image missing: {frame}"}
        except RetryableAnalysisError as exc:
            if attempt == FRAME_ATTEMPTS:
                reason = f"{type(exc).__name__} after {attempt} attempts: {exc}"
                return {"calls": calls, "retryable": True, "error": reason}
            time.sleep(2 ** (attempt - 1))
        except Exception as exc:  # noqa: BLE001 - any analyser failure is recorded against its frame
            log.warning("frame %d (%s) failed: %s", index, analysis.kind, exc)
            return {"calls": calls, "retryable": False, "error": f"{type(exc).__name__}: {exc}"}
    return {
        "calls": calls,
        "result": {
            "frame_index": index,
            "timestamp_ms": frame_timestamp_ms(index, interval_s),
            "frame_uri": str(frame),
            "kind": analysis.kind,
            "backend": analysis.backend,
            "model": analysis.model_of(response),
            "analysed_at": datetime.now(UTC).isoformat(),
            "response": response,
        },
    }


def _bulk(client: OpenSearch, actions: Iterable[dict[str, Any]]) -> int:
    """Documents written (indexed or deleted); see `reko.index.bulk` for pacing and failures."""
    from reko.index.bulk import bulk_load

    return bulk_load(client, actions).written


def api_calls(backend: str, reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Calls made and avoided, and what the made ones cost (Rekognition bills each as one image)."""
    made = sum(r["made"] for r in reports)
    cached = sum(r["skipped"] for r in reports)
    duplicates = sum(r.get("duplicates", 0) for r in reports)
    price = rekognition_price_per_1000() if traits(backend).billed_per_image else 0.0
    return {
        "made": made,
        "skipped": cached + duplicates,
        "skipped_cached": cached,
        "skipped_duplicates": duplicates,
        "price_per_1000": price,
        "estimated_cost_usd": round(made * price / 1000, 4),
    }


TOTAL_KEYS = (
    "runs",
    "api_calls_made",
    "api_calls_skipped",
    "mediaconvert_jobs",
    "mediaconvert_proxy_minutes",
    "estimated_cost_usd",
)


def previous_video_document(client: OpenSearch, names: IndexNames, video_id: str) -> dict[str, Any] | None:
    """The video's document as the last run left it (None for a new video): its totals carry on."""
    found = client.get(index=names.videos, id=video_id, params={"ignore": 404})
    return found.get("_source") if found.get("found") else None


def _run_figures(doc: dict[str, Any]) -> dict[str, float]:
    """One run's contribution to the totals, from the document that run wrote."""
    calls = doc.get("api_calls") or {}
    mediaconvert = doc.get("mediaconvert") or NO_MEDIACONVERT
    return {
        "runs": 1,
        "api_calls_made": calls.get("made", 0),
        "api_calls_skipped": calls.get("skipped", 0),
        "mediaconvert_jobs": mediaconvert.get("jobs", 0),
        "mediaconvert_proxy_minutes": mediaconvert.get("proxy_minutes", 0.0),
        "estimated_cost_usd": doc.get("run_cost_usd", calls.get("estimated_cost_usd", 0.0)),
    }


def cumulative_totals(previous: dict[str, Any] | None, run: dict[str, Any], run_id: str) -> dict[str, float]:
    """Every run's calls and cost for this video so far, this run (`run`: its new document) included.

    A retry of the same run replaces its own earlier figures instead of counting them twice; a
    document written before totals existed counts as one run.
    """
    base = dict.fromkeys(TOTAL_KEYS, 0)
    if previous:
        earlier = previous.get("totals") or _run_figures(previous)
        base = {k: earlier.get(k, 0) for k in TOTAL_KEYS}
        if previous.get("run_id") == run_id:
            own = _run_figures(previous)
            base = {k: base[k] - own[k] for k in TOTAL_KEYS}
    figures = _run_figures(run)
    totals = {k: base[k] + figures[k] for k in TOTAL_KEYS}
    totals["mediaconvert_proxy_minutes"] = round(totals["mediaconvert_proxy_minutes"], 4)
    totals["estimated_cost_usd"] = round(totals["estimated_cost_usd"], 6)
    return totals


def video_document(
    *,
    job: Job,
    manifest: dict[str, Any],
    load: dict[str, Any],
    segments: dict[str, Any],
    batch_reports: Iterable[dict[str, Any] | None],
    dag_id: str,
    run_id: str,
    passes: dict[str, Any] | None = None,
    previous: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The per-video summary the search page, Dashboards and the clip DAG read.

    `api_calls`, `mediaconvert` and `run_cost_usd` are this run's; `totals` every run's so far
    (`previous` is the document the last run wrote), so a cached re-run costs 0 without erasing
    what the first run cost.
    """
    cfg, store, info = job.cfg, job.store, job.info
    reports = [r for r in batch_reports if r]
    failed = load["failed_frames"]
    calls = api_calls(cfg.backend, reports)
    mediaconvert = (manifest.get("this_run") or {}).get("mediaconvert") or dict(NO_MEDIACONVERT)
    run_cost = round(calls["estimated_cost_usd"] + mediaconvert["estimated_cost_usd"], 6)
    return {
        "video_id": store.video_id,
        "source_uri": cfg.video_uri,
        "source_fingerprint": manifest.get("source_fingerprint"),
        "settings_key": settings_key(cfg),
        "frames_uri": manifest["frames_uri"],
        "duration_ms": round(info.duration_s * 1000),
        "fps": info.fps,
        "width": info.width,
        "height": info.height,
        "has_audio": info.has_audio,
        "frame_interval_ms": store.interval_ms,
        "frame_count": manifest["frame_count"],
        "status": "complete" if not failed else "partial",
        "backend": cfg.backend,
        "analyses": cfg.analyses,
        "models": load["models"],
        "min_confidence": cfg.min_confidence,
        "roster_uri": cfg.roster_uri,
        "counts": {
            "detections": load["detections"],
            "segments": segments["segments"],
            "passes": (passes or {}).get("passes", 0),
            **({"faces": load["faces"]["faces"]} if "faces" in load else {}),
            "frames_with_results": load["frames_with_results"],
            "failed_frames": len(failed),
        },
        "failed_frames": failed[:MAX_FAILED_FRAMES_IN_DOC],
        "api_calls": calls,
        "mediaconvert": mediaconvert,
        "run_cost_usd": run_cost,
        "totals": cumulative_totals(
            previous, {"api_calls": calls, "mediaconvert": mediaconvert, "run_cost_usd": run_cost}, run_id
        ),
        "dag_id": dag_id,
        "run_id": run_id,
        "processed_at": datetime.now(UTC).isoformat(),
    }


def takes_short_path(job: Job) -> bool:
    """One batch of frames, cut in this process: the whole run fits one task instance.

    Each task instance costs ~0.8 CPU-s of Airflow under the scheduler, more than a one-second
    clip's work, so a short video is not split into extract/map/load/segments/passes tasks.
    """
    from reko.analysis.base import frames_cut_in_process

    expected = expected_frame_count(job.info.duration_s, job.cfg.frame_interval_s)
    size = job.cfg.batch_size or auto_batch_size(expected)
    return frames_cut_in_process(job.cfg.backend) and expected <= size


def analyse_job_batch(job: Job, start: int, end: int, *, not_before: str | None = None) -> dict[str, Any]:
    """`analyse_batch` with the run's settings: what one mapped task (or the short path) analyses."""
    cfg = job.cfg
    return analyse_batch(
        job.store,
        start,
        end,
        backend=cfg.backend,
        analyses=cfg.analyses,
        interval_s=cfg.frame_interval_s,
        reprocess=range(start, end) if cfg.reanalyse else cfg.reprocess_frames,
        not_before=not_before,
        analysis_options={"min_confidence": cfg.min_confidence},
    )


def describe_batch(report: dict[str, Any]) -> list[str]:
    """Log lines for one batch: what was analysed, skipped and failed (with reasons)."""
    lines = [
        f"analysed {report['made']}, skipped {report['skipped']} (cached) and {report['duplicates']}"
        f" (identical to the previous frame), failed {len(report['failed'])}"
    ]
    lines += [f"frame {f['frame_index']} ({f['kind']}): {f['reason']}" for f in report["failed"]]
    return lines


def load_job_detections(client: OpenSearch, names: IndexNames, job: Job, frame_count: int) -> dict[str, Any]:
    """`reko.index.detections.load_detections` with the run's settings, and the faces index
    (`reko.index.faces.load_faces`) when the run asked for faces."""
    from reko.index.detections import load_detections

    cfg = job.cfg
    loaded = load_detections(
        client,
        names,
        job.store,
        frame_count=frame_count,
        backend=cfg.backend,
        analyses=cfg.analyses,
        min_confidence=cfg.min_confidence,
    )
    if "faces" in cfg.analyses:  # opt-in: only runs that ask for faces write the faces index
        from reko.index.faces import load_faces

        loaded["faces"] = load_faces(
            client,
            names,
            job.store,
            frame_count=frame_count,
            backend=cfg.backend,
            min_confidence=cfg.min_confidence,
        )
    return loaded


def load_job_segments(client: OpenSearch, names: IndexNames, job: Job) -> dict[str, Any]:
    """`reko.index.segments.load_segments` with the run's settings."""
    from reko.index.segments import load_segments

    return load_segments(client, names, job.store, backend=job.cfg.backend, analyses=job.cfg.analyses)


VIDEO_RESULT_KEYS = ("video_id", "status", "counts", "api_calls", "mediaconvert", "run_cost_usd", "totals")


def write_video_document(
    client: OpenSearch,
    names: IndexNames,
    job: Job,
    *,
    manifest: dict[str, Any],
    load: dict[str, Any],
    segments: dict[str, Any],
    passes: dict[str, Any],
    reports: Iterable[dict[str, Any] | None],
    dag_id: str,
    run_id: str,
) -> dict[str, Any]:
    """Index the video's document (its totals carried on from the previous one) and return it."""
    doc = video_document(
        previous=previous_video_document(client, names, job.store.video_id),
        job=job,
        manifest=manifest,
        load=load,
        segments=segments,
        batch_reports=reports,
        dag_id=dag_id,
        run_id=run_id,
        passes=passes,
    )
    client.index(index=names.videos, id=doc["video_id"], body=doc, params={"refresh": "true"})
    return doc


def asset_extra(doc: dict[str, Any]) -> dict[str, Any]:
    """The `reko_video_analysed` event's extra: what a consumer needs without reading the index."""
    keys = ("video_id", "source_uri", "status", "frame_count")
    return {**{k: doc[k] for k in keys}, **doc["counts"]}


def describe_video(doc: dict[str, Any], passes: dict[str, Any] | None = None) -> list[str]:
    """Log lines for a written video document: status, counts, runners, calls and cost."""
    calls = doc["api_calls"]
    lines = []
    if passes is not None:
        lines.append(
            f"{passes['passes']} runner passes: {passes['numbers']};"
            f" {passes['rejected_count']} tracks rejected"
        )
        lines += [f"  not a runner: {t['text']!r} ({t['reason']})" for t in passes["rejected"]]
    lines += [
        f"{doc['video_id']}: {doc['status']}, {doc['counts']}",
        f"{doc['backend']} calls: {calls['made']} made, {calls['skipped_cached']} skipped (cached),"
        f" {calls['skipped_duplicates']} skipped (identical to the previous frame);"
        f" estimated cost ${calls['estimated_cost_usd']:.4f}"
        f" at ${calls['price_per_1000']:g} per 1,000 images",
        f"this run ${doc['run_cost_usd']:.4f}; every run of this video so far: {doc['totals']}",
    ]
    return lines


def analyse_video(
    client: OpenSearch,
    names: IndexNames,
    job: Job,
    *,
    dag_id: str,
    run_id: str,
    not_before: str | None = None,
) -> dict[str, Any]:
    """A whole run in one call: frames, analysis, detections, segments, passes, the video document.

    The short path of `video_analysis` and the benchmarks' direct baseline. Frames that fail are
    recorded with their reasons next to the frames and indexed around, as on the mapped path, so a
    second call analyses only frames without a result; the caller decides whether the run failed
    (`report["failed"]`).
    """
    manifest = extract(job.cfg, job.store, job.info)
    report = analyse_job_batch(job, 0, manifest["frame_count"], not_before=not_before)
    load = load_job_detections(client, names, job, manifest["frame_count"])
    segments = load_job_segments(client, names, job)
    passes = find_runner_passes(client, names, job)
    doc = write_video_document(
        client,
        names,
        job,
        manifest=manifest,
        load=load,
        segments=segments,
        passes=passes,
        reports=[report],
        dag_id=dag_id,
        run_id=run_id,
    )
    return {
        "manifest": manifest,
        "report": report,
        "load": load,
        "segments": segments,
        "passes": passes,
        "video": {k: doc[k] for k in VIDEO_RESULT_KEYS},
        "asset_extra": asset_extra(doc),
        "log": describe_batch(report) + describe_video(doc, passes),
    }


def claim_and_probe(params: dict[str, Any], me: Any) -> tuple[dict[str, Any] | None, Any, bool]:
    """(job as XCom, None, short path?) with the video's lease taken by `me`, or (None, the holder,
    False) when another live run holds it. Bad Params or input raise ValueError (or
    NotImplementedError) with the lease released: the teardown that releases it will not run."""
    from reko.config import work_uri
    from reko.index.client import get_client
    from reko.index.lease import airflow_run_is_live, claim, release
    from reko.storage import video_id_for

    started = time.monotonic()
    cfg = RunConfig.from_params(params)
    client, names, video_id = get_client(), IndexNames.current(), video_id_for(cfg.video_uri)
    holder = claim(client, names, video_id, me, airflow_run_is_live)
    if holder is not None:
        return None, holder, False
    try:
        job = probe_video(cfg, work_uri(), params.get("probed"))
    except Exception:
        release(client, names, video_id, me)
        raise
    return {**job.to_xcom(), "probe_s": round(time.monotonic() - started, 3)}, None, takes_short_path(job)
