"""Find the videos that arrived under a prefix in a data interval, and decide which to analyse.

`video_archive_scan` calls `scan_archive` once per data interval: one recursive listing of the
prefix (on S3 a paginated ListObjectsV2, no request per object), then the objects whose
modification time lies in [start, end), minus those already analysed with the same settings (one
`mget` on the videos index per 1,000 candidates), minus corrupt inputs (checked with ffprobe: the
local file itself, or for S3 a presigned URL that ffprobe reads with HTTP range requests, so no
object is downloaded whole; the run is handed this probe, and reuses it while the video is
unchanged). What is left, oldest first and capped, becomes one `video_analysis`
run each, under a run id fixed by (video, settings, source version), so a second scan of the same
interval, a second backfill, or two scans racing never start a second analysis.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from reko.config import scan_probe_timeout_s
from reko.media import InvalidVideoError, VideoInfo
from reko.pipeline import RunConfig, probed_conf, settings_key
from reko.storage import fingerprint_of, parse_uri, presigned_url, split_s3_uri, video_id_for

if TYPE_CHECKING:
    from opensearchpy import OpenSearch

ANALYSIS_DAG_ID = "video_analysis"
RUN_ID_PREFIX = "archive"
MGET_CHUNK = 1000
DONE_STATUSES = ("complete", "partial")
MAX_LISTED_IN_REPORT = 200  # names per category kept in the report (counts are always exact)
PROBE_WORKERS = 4  # new videos checked at once: 200 local one-second clips took 49 s one by one


@dataclass(frozen=True)
class ScanSettings:
    """The analysis settings a scan passes on to every `video_analysis` run it starts."""

    backend: str
    frame_interval_s: float
    analyses: list[str]
    min_confidence: float

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> ScanSettings:
        """Validated exactly as `video_analysis` validates them, so a bad Param fails the scan, not
        a thousand analysis runs."""
        cfg = RunConfig.from_params({**params, "video_uri": "file:///settings-check.mp4"})
        return cls(cfg.backend, cfg.frame_interval_s, cfg.analyses, cfg.min_confidence)

    def run_config(self, video_uri: str) -> RunConfig:
        return RunConfig(
            video_uri, self.backend, self.frame_interval_s, list(self.analyses), self.min_confidence
        )

    @property
    def key(self) -> str:
        return settings_key(self.run_config("file:///x.mp4"))

    def conf(self, video_uri: str) -> dict[str, Any]:
        """The `video_analysis` run conf (its Params) for one video."""
        return {"video_uri": video_uri, **asdict(self)}


@dataclass
class ArchiveObject:
    """One object under the prefix, from the listing alone."""

    uri: str
    size: int
    modified: datetime
    fingerprint: str

    @property
    def name(self) -> str:
        return PurePosixPath(self.uri.split("://", 1)[-1]).name


@dataclass
class ScanReport:
    """What one scan found; JSON-serialisable (it travels as XCom to the summary)."""

    prefix: str
    interval_start: str
    interval_end: str
    settings_key: str
    listed: int = 0
    ignored_extension: int = 0
    outside_interval: int = 0
    in_interval: int = 0
    already_analysed: list[dict[str, Any]] = field(default_factory=list)  # the first MAX_LISTED_IN_REPORT
    already_analysed_count: int = 0
    rejected: list[dict[str, str]] = field(default_factory=list)
    new: list[dict[str, Any]] = field(default_factory=list)
    overflow: list[str] = field(default_factory=list)
    overflow_count: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def normalise_extensions(extensions: Iterable[str]) -> tuple[str, ...]:
    """`["mp4", ".MOV"]` -> `(".mp4", ".mov")`; an empty list is a mistake, not "everything"."""
    out = tuple(sorted({"." + e.strip().lower().lstrip(".") for e in extensions if e and e.strip(". ")}))
    if not out:
        raise ValueError("extensions is empty: name the video file extensions to scan, e.g. ['mp4']")
    return out


def modified_at(info: dict[str, Any]) -> datetime:
    """Modification time of an fsspec listing entry: S3 `LastModified`, local `mtime` (epoch s)."""
    value = info.get("LastModified") or info.get("last_modified") or info.get("mtime")
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    raise ValueError(f"listing entry {info.get('name')!r} has no modification time")


def list_archive(prefix: str) -> list[ArchiveObject]:
    """Every object under `prefix`, recursively, from one listing (no request per object)."""
    root = parse_uri(prefix, "prefix")
    scheme = prefix.split("://", 1)[0].lower()
    if scheme == "s3":
        conn_id, _, _ = split_s3_uri(prefix, "prefix")
        base = f"s3://{conn_id}@" if conn_id else "s3://"
    else:
        base = "file://"
        if not Path(root.path).is_dir():
            raise InvalidVideoError(f"prefix {prefix!r} is not a folder")
    try:
        entries = root.fs.find(root.path, detail=True)
    except FileNotFoundError as exc:
        raise InvalidVideoError(f"prefix {prefix!r} cannot be listed: {exc}") from exc
    objects = []
    for name, info in sorted(entries.items()):
        if info.get("type", "file") != "file":
            continue
        objects.append(
            ArchiveObject(
                uri=base + name if scheme == "s3" else Path(name).as_uri(),
                size=int(info.get("size") or 0),
                modified=modified_at(info),
                fingerprint=fingerprint_of(info),
            )
        )
    return objects


def analysis_run_id(video_id: str, key: str, fingerprint: str) -> str:
    """The `video_analysis` run id for one (video, settings, source version): the same inputs
    always name the same run, so triggering it twice is refused by Airflow itself."""
    digest = hashlib.sha1(f"{key}|{fingerprint}".encode()).hexdigest()[:10]
    return f"{RUN_ID_PREFIX}__{video_id}__{digest}"


def analysed_already(
    client: OpenSearch, index: str, wanted: dict[str, tuple[str, str]]
) -> dict[str, dict[str, Any]]:
    """The videos (of `wanted`: video_id -> (settings_key, source_fingerprint)) whose document in
    the videos index says they were analysed with these settings from this source version."""
    from opensearchpy.exceptions import NotFoundError

    found: dict[str, dict[str, Any]] = {}
    ids = list(wanted)
    for start in range(0, len(ids), MGET_CHUNK):
        try:
            response = client.mget(
                index=index,
                body={"ids": ids[start : start + MGET_CHUNK]},
                _source_includes=["status", "settings_key", "source_fingerprint", "run_id"],
            )
        except NotFoundError:  # no videos index yet: nothing was analysed
            return {}
        for doc in response["docs"]:
            src = doc.get("_source") or {}
            key, fingerprint = wanted[doc["_id"]]
            if (
                doc.get("found")
                and src.get("status") in DONE_STATUSES
                and src.get("settings_key") == key
                and src.get("source_fingerprint") == fingerprint
            ):
                found[doc["_id"]] = src
    return found


def probe_object(obj: ArchiveObject) -> VideoInfo | str:
    """The video's facts, or why this object cannot be analysed (empty, not a video, truncated)."""
    if obj.size == 0:
        return f"video is empty (0 bytes): {obj.uri}"
    from reko.media import probe

    wait = scan_probe_timeout_s()
    try:
        if obj.uri.startswith("s3://"):
            return probe(presigned_url(obj.uri), obj.uri, size_bytes=obj.size, timeout_s=wait)
        return probe(Path(parse_uri(obj.uri).path), obj.uri, timeout_s=wait)
    except InvalidVideoError as exc:
        return str(exc)


def scan_archive(
    *,
    prefix: str,
    extensions: Sequence[str],
    settings: ScanSettings,
    interval_start: datetime,
    interval_end: datetime,
    max_videos: int,
    client: OpenSearch,
    videos_index: str,
    scan_run_id: str = "",
) -> ScanReport:
    """The scan of one data interval: see the module docstring. Each `new` entry carries the
    kwargs of its trigger (`trigger_run_id`, `conf`, `note`)."""
    if interval_end <= interval_start:
        raise ValueError(
            f"empty data interval [{interval_start}, {interval_end}): the scan needs a real interval"
        )
    if not 1 <= max_videos <= 1000:
        raise ValueError(f"max_videos must be between 1 and 1000 ([core] max_map_length), got {max_videos}")
    suffixes = normalise_extensions(extensions)
    key = settings.key
    report = ScanReport(prefix, interval_start.isoformat(), interval_end.isoformat(), key)

    candidates: list[ArchiveObject] = []
    for obj in list_archive(prefix):
        report.listed += 1
        if PurePosixPath(obj.name).suffix.lower() not in suffixes:
            report.ignored_extension += 1
        elif not interval_start <= obj.modified < interval_end:
            report.outside_interval += 1
        else:
            candidates.append(obj)
    report.in_interval = len(candidates)
    candidates.sort(key=lambda o: (o.modified, o.uri))  # oldest first: an archive is worked in order

    wanted = {video_id_for(o.uri): (key, o.fingerprint) for o in candidates if o.size > 0}
    done = analysed_already(client, videos_index, wanted) if wanted else {}
    note = (
        f"Started by video_archive_scan run {scan_run_id}" if scan_run_id else "Started by video_archive_scan"
    )
    pending: list[ArchiveObject] = []
    for obj in candidates:
        video_id = video_id_for(obj.uri)
        if video_id in done:
            report.already_analysed_count += 1
            if len(report.already_analysed) < MAX_LISTED_IN_REPORT:  # a re-scan of 10,000: 1.8 MB of XCom
                report.already_analysed.append(
                    {
                        "uri": obj.uri,
                        "video_id": video_id,
                        "status": done[video_id].get("status"),
                        "run_id": done[video_id].get("run_id"),
                    }
                )
        else:
            pending.append(obj)
    # probe only as many as can still start, several at once (ffprobe waits on the disk or on S3)
    with ThreadPoolExecutor(max_workers=PROBE_WORKERS) as pool:
        while pending and len(report.new) < max_videos:
            room = max_videos - len(report.new)
            chunk, pending = pending[:room], pending[room:]
            for obj, probed in zip(chunk, pool.map(probe_object, chunk), strict=True):
                if isinstance(probed, str):
                    report.rejected.append({"uri": obj.uri, "reason": probed})
                    continue
                video_id = video_id_for(obj.uri)
                report.new.append(
                    {
                        "uri": obj.uri,
                        "video_id": video_id,
                        "modified": obj.modified.isoformat(),
                        "size": obj.size,
                        "fingerprint": obj.fingerprint,
                        "trigger_run_id": analysis_run_id(video_id, key, obj.fingerprint),
                        # the run reuses this probe while the video is unchanged: read once, not twice
                        "conf": {**settings.conf(obj.uri), "probed": probed_conf(probed, obj.fingerprint)},
                        "note": f"{note}, interval {report.interval_start} to {report.interval_end}",
                    }
                )
    report.overflow_count = len(pending)
    report.overflow = [obj.uri for obj in pending[:MAX_LISTED_IN_REPORT]]
    return report


def trigger_kwargs(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The mapped TriggerDagRunOperator's `expand_kwargs` input, one dict per new video."""
    return [{k: v[k] for k in ("trigger_run_id", "conf", "note")} for v in report["new"]]


TRIGGER_OUTCOMES = {
    "success": "analysed",
    "failed": "analysis failed",
    "skipped": "run already existed",
    "upstream_failed": "not started",
    "trigger_failed": "could not be started",
}


def summarise(report: dict[str, Any], outcomes: dict[int, str], existing: dict[str, str]) -> tuple[str, bool]:
    """The human report of one scan, and whether it must fail the run (only on overflow).

    `outcomes`: map index -> the analysis run's end state, or what kept it from running (see
    `analysis_outcomes`); `existing`: run id -> state of an analysis run that already existed when
    the scan tried to start it.
    """
    new = report["new"]
    counts: dict[str, int] = {}
    for i in range(len(new)):
        label = TRIGGER_OUTCOMES.get(outcomes.get(i, ""), f"trigger {outcomes.get(i, 'not run')}")
        counts[label] = counts.get(label, 0) + 1
    lines = [
        f"Scan of {report['prefix']} for [{report['interval_start']}, {report['interval_end']}):",
        f"  listed {report['listed']} objects, {report['ignored_extension']} ignored (other extensions),"
        f" {report['outside_interval']} outside the interval, {report['in_interval']} in the interval",
        f"  already analysed with these settings (skipped): {report['already_analysed_count']}",
        f"  rejected: {len(report['rejected'])}",
        *[f"    {r['uri']}: {r['reason']}" for r in report["rejected"][:MAX_LISTED_IN_REPORT]],
        f"  new videos: {len(new)}"
        + (" (" + ", ".join(f"{n} {label}" for label, n in sorted(counts.items())) + ")" if new else ""),
    ]
    triggered = sum(1 for i in range(len(new)) if outcomes.get(i) in ("success", "failed"))
    lines.append(
        f"  triggered: {triggered}, runs that already existed: {counts.get('run already existed', 0)}"
    )
    for i, video in enumerate(new):
        state = outcomes.get(i)
        if state == "skipped":
            run_state = existing.get(video["trigger_run_id"], "unknown")
            lines.append(f"    {video['uri']}: run {video['trigger_run_id']} already existed ({run_state})")
        elif state != "success":
            lines.append(
                f"    {video['uri']}: {TRIGGER_OUTCOMES.get(state or '', state)} ({video['trigger_run_id']})"
            )
    failing = report["overflow_count"] > 0
    if failing:
        lines.append(
            f"  overflow: {report['overflow_count']} more new videos than max_videos ({len(new)}) in this"
            " interval; clear this scan run to continue with the rest (or raise max_videos), oldest first:"
        )
        lines.extend(f"    {uri}" for uri in report["overflow"][:20])
    return "\n".join(lines), failing


def summary_counts(report: dict[str, Any], outcomes: dict[int, str]) -> dict[str, Any]:
    """The summary as numbers (the summary task's return value)."""
    new = report["new"]
    return {
        "listed": report["listed"],
        "ignored_extension": report["ignored_extension"],
        "in_interval": report["in_interval"],
        "already_analysed": report["already_analysed_count"],
        "rejected": {r["uri"]: r["reason"] for r in report["rejected"]},
        "new": len(new),
        "triggered": sum(1 for i in range(len(new)) if outcomes.get(i) in ("success", "failed")),
        "analysed": sum(1 for i in range(len(new)) if outcomes.get(i) == "success"),
        "analysis_failed": sum(1 for i in range(len(new)) if outcomes.get(i) == "failed"),
        "already_existed": sum(1 for i in range(len(new)) if outcomes.get(i) == "skipped"),
        "overflow": report["overflow_count"],
    }


def map_outcomes(task_states: dict[str, Any], run_id: str, task_id: str) -> dict[int, str]:
    """`{map index: state}` from `RuntimeTaskInstance.get_task_states` (keys `<task_id>_<index>`)."""
    prefix = f"{task_id}_"
    states = task_states.get(run_id, {})
    return {
        int(k[len(prefix) :]): str(v)
        for k, v in states.items()
        if k.startswith(prefix) and k[len(prefix) :].isdigit() and v is not None
    }


def trigger_states(ti: Any, trigger_task_id: str) -> dict[int, str]:
    """`{map index: state}` of this scan run's trigger tasks (the task instance `ti` asks for them)."""
    states = ti.get_task_states(dag_id=ti.dag_id, task_ids=[trigger_task_id], run_ids=[ti.run_id])
    return map_outcomes(states, ti.run_id, trigger_task_id)


def _state_name(state: Any) -> str:
    """ "success" for DagRunState.SUCCESS and for "success" alike."""
    return str(getattr(state, "value", state))


def analysis_outcomes(
    ti: Any, report: dict[str, Any], trigger_task_id: str, analysis_dag_id: str
) -> tuple[dict[int, str], dict[str, str]]:
    """`({map index: outcome}, {run id: state of a run that already existed})` for a scan's videos.

    A trigger task that succeeded created its run: the outcome is that run's state (success or
    failed once `wait_for_analyses` is done). A skipped trigger found its run already there; a
    failed one created nothing (`trigger_failed`); upstream_failed never ran.
    """
    if not report["new"]:
        return {}, {}
    triggers = trigger_states(ti, trigger_task_id)
    outcomes: dict[int, str] = {}
    existing: dict[str, str] = {}
    for i, video in enumerate(report["new"]):
        state, run_id = triggers.get(i), video["trigger_run_id"]
        if state == "success":
            outcomes[i] = _state_name(ti.get_dagrun_state(analysis_dag_id, run_id))
        elif state == "skipped":
            outcomes[i] = state
            existing[run_id] = _state_name(ti.get_dagrun_state(analysis_dag_id, run_id))
        elif state == "failed":
            outcomes[i] = "trigger_failed"
        elif state is not None:
            outcomes[i] = state
    return outcomes, existing
