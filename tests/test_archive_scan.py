"""`video_archive_scan` without a scheduler: the listing by data interval (file:// and moto S3), the
skip of analysed videos (real OpenSearch), corrupt inputs (real ffprobe), run ids, and dag.test()."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from reko.archive import (
    ScanSettings,
    analysis_run_id,
    list_archive,
    scan_archive,
    summarise,
    summary_counts,
    trigger_kwargs,
)
from reko.localdev.moto_s3 import moto_s3
from reko.storage import parse_uri, source_fingerprint, video_id_for
from tests.support.short_videos import empty_file, make_video, not_a_video, set_mtime, truncated_copy

DAG_ID = "video_archive_scan"
SETTINGS = ScanSettings(backend="local", frame_interval_s=1.0, analyses=["text"], min_confidence=50.0)
T0 = datetime(2025, 3, 1, 10, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
BUCKET = "reko-archive"


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    """One good video made once, copied by the tests that need more."""
    root = tmp_path_factory.mktemp("clips")
    good = make_video(root / "good.mp4", "1042")
    return {
        "good": good,
        "other": make_video(root / "other.mp4", "3318"),
        "truncated": truncated_copy(good, root / "truncated.mp4", fraction=0.4),
    }


def archive(root: Path, clips: dict[str, Path], layout: dict[str, tuple[str, datetime]]) -> Path:
    """Files under `root` (name -> (kind, mtime)); kinds: good, other, truncated, empty, text."""
    for name, (kind, when) in layout.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if kind == "empty":
            empty_file(path)
        elif kind == "text":
            not_a_video(path)
        else:
            path.write_bytes(clips[kind].read_bytes())
        set_mtime(path, when)
    return root


def scan(prefix: str, start: datetime, end: datetime, os_client, index_names, **kwargs):
    args = {
        "extensions": ["mp4", "mov"],
        "settings": SETTINGS,
        "max_videos": 100,
        "client": os_client,
        "videos_index": index_names.videos,
        "scan_run_id": "scheduled__test",
    } | kwargs
    return scan_archive(prefix=prefix, interval_start=start, interval_end=end, **args)


def names(entries: list[dict]) -> list[str]:
    return [e["uri"].rsplit("/", 1)[-1] for e in entries]


def test_local_listing_keeps_the_interval_start_and_leaves_its_end(
    tmp_path, clips, opensearch_url, os_client, index_names
):
    root = archive(
        tmp_path / "archive",
        clips,
        {
            "before.mp4": ("good", T0 - timedelta(seconds=1)),
            "at_start.mp4": ("good", T0),
            "deep/inside.MOV": ("other", T0 + timedelta(minutes=30)),
            "notes.txt": ("text", T0 + timedelta(minutes=5)),
            "at_end.mp4": ("good", T0 + HOUR),
        },
    )
    report = scan(root.as_uri(), T0, T0 + HOUR, os_client, index_names)
    assert names(report.new) == ["at_start.mp4", "inside.MOV"]  # oldest first; extensions ignore case
    assert (report.listed, report.ignored_extension, report.outside_interval, report.in_interval) == (
        5,
        1,
        2,
        2,
    )
    report = scan(root.as_uri(), T0 + HOUR, T0 + 2 * HOUR, os_client, index_names)
    assert names(report.new) == ["at_end.mp4"]


def test_listing_fingerprint_equals_the_one_the_analysis_records(tmp_path, clips):
    root = archive(tmp_path / "fp", clips, {"a/b.mp4": ("good", T0)})
    (obj,) = list_archive(root.as_uri())
    assert obj.uri == (root / "a" / "b.mp4").as_uri()
    assert obj.fingerprint == source_fingerprint(parse_uri(obj.uri))
    assert obj.modified == T0 and obj.size == clips["good"].stat().st_size


def test_a_run_reuses_the_scans_probe_while_the_video_is_unchanged(
    tmp_path, clips, opensearch_url, os_client, index_names, monkeypatch
):
    from reko import media
    from reko.pipeline import RunConfig, probe_video

    root = archive(tmp_path / "handed", clips, {"a.mp4": ("good", T0)})
    (new,) = scan(root.as_uri(), T0, T0 + HOUR, os_client, index_names).new
    video, probed = root / "a.mp4", new["conf"]["probed"]
    assert probed == {"fingerprint": source_fingerprint(parse_uri(new["uri"])), "info": probe_info(video)}
    ran: list[str] = []
    real_run = media._run

    def counted(cmd: list[str], timeout_s: float | None = None):
        ran.append(cmd[0])
        return real_run(cmd, timeout_s)

    monkeypatch.setattr(media, "_run", counted)
    cfg, work = RunConfig.from_params(new["conf"]), (tmp_path / "work").as_uri()
    assert probe_video(cfg, work, probed).info.as_dict() == probed["info"]
    assert ran == []  # neither ffprobe nor the tail decode ran again
    # a hand-over that does not fit is not trusted: the run reads the video itself
    malformed = {**probed, "info": {**probed["info"], "fps": 0}}
    assert probe_video(cfg, work, malformed).info.as_dict() == probed["info"]
    assert ran == ["ffprobe", "ffmpeg"]
    set_mtime(video, T0 + timedelta(seconds=5))  # the video changed after the scan
    assert probe_video(cfg, work, probed).info.as_dict() == probed["info"]
    assert ran == ["ffprobe", "ffmpeg"] * 2
    video.unlink()
    with pytest.raises(media.InvalidVideoError, match="video not found"):
        probe_video(cfg, work, probed)


def probe_info(video: Path) -> dict:
    from reko.media import probe

    return probe(video, video.as_uri()).as_dict()


def test_runs_ids_are_fixed_by_video_settings_and_source_version():
    video_id = video_id_for("s3://bucket/races/2024/race.mp4")
    run_id = analysis_run_id(video_id, SETTINGS.key, "100:etag1")
    assert run_id == analysis_run_id(video_id, SETTINGS.key, "100:etag1")
    assert run_id.startswith(f"archive__{video_id}__") and len(run_id.rsplit("__", 1)[1]) == 10
    assert re.fullmatch(r"[A-Za-z0-9_.~:+-]+", run_id)  # Airflow's allowed_run_id_pattern
    other = ScanSettings("local", 2.0, ["text"], 50.0)
    assert (
        len(
            {
                run_id,
                analysis_run_id(video_id, other.key, "100:etag1"),
                analysis_run_id(video_id, SETTINGS.key, "100:etag2"),
            }
        )
        == 3
    )
    assert SETTINGS.conf("file:///v.mp4") == {
        "video_uri": "file:///v.mp4",
        "backend": "local",
        "frame_interval_s": 1.0,
        "analyses": ["text"],
        "min_confidence": 50.0,
    }
    with pytest.raises(ValueError, match="frame_interval_s"):
        ScanSettings.from_params({"backend": "local", "frame_interval_s": 0, "analyses": ["text"]})


def test_corrupt_inputs_are_rejected_with_their_reason_and_the_rest_kept(
    tmp_path, clips, opensearch_url, os_client, index_names
):
    root = archive(
        tmp_path / "corrupt",
        clips,
        {
            "empty.mp4": ("empty", T0 + timedelta(minutes=1)),
            "list.mp4": ("text", T0 + timedelta(minutes=2)),
            "cut.mp4": ("truncated", T0 + timedelta(minutes=3)),
            "good.mp4": ("good", T0 + timedelta(minutes=4)),
        },
    )
    report = scan(root.as_uri(), T0, T0 + HOUR, os_client, index_names)
    assert names(report.new) == ["good.mp4"]
    reasons = {r["uri"].rsplit("/", 1)[-1]: r["reason"] for r in report.rejected}
    assert set(reasons) == {"empty.mp4", "list.mp4", "cut.mp4"}
    assert "empty (0 bytes)" in reasons["empty.mp4"]
    assert "not a readable video" in reasons["list.mp4"]
    assert "truncated" in reasons["cut.mp4"]
    text, failing = summarise(report.as_dict(), {0: "success"}, {})
    assert not failing and "rejected: 3" in text and "cut.mp4: video is truncated" in text


def index_video(os_client, index: str, uri: str, **fields) -> None:
    doc = {"video_id": video_id_for(uri), "source_uri": uri, "run_id": "manual__x"}
    os_client.index(index=index, id=doc["video_id"], body=doc | fields, params={"refresh": "true"})


def test_videos_analysed_with_the_same_settings_and_source_are_skipped(
    tmp_path, clips, opensearch_url, os_client, index_names, monkeypatch
):
    from reko.index.client import ensure_templates

    ensure_templates(os_client, index_names)
    cases = {  # name -> (settings the document records, its status)
        "same.mp4": (SETTINGS, "complete"),
        "partial.mp4": (SETTINGS, "partial"),  # its run exists: clearing its failed tasks is the retry
        "other_settings.mp4": (ScanSettings("local", 0.5, ["text"], 50.0), "complete"),
        "changed.mp4": (SETTINGS, "complete"),
        "failed.mp4": (SETTINGS, "failed"),
    }
    layout = {name: ("good", T0 + timedelta(minutes=i)) for i, name in enumerate(cases)}
    root = archive(tmp_path / "seen", clips, layout)
    objects = {o.uri.rsplit("/", 1)[-1]: o for o in list_archive(root.as_uri())}
    for name, (settings, status) in cases.items():
        fields = {
            "settings_key": settings.key,
            "source_fingerprint": objects[name].fingerprint,
            "status": status,
        }
        index_video(os_client, index_names.videos, objects[name].uri, **fields)
    set_mtime(root / "changed.mp4", T0 + timedelta(minutes=3, seconds=30))  # a new version of the source

    report = scan(root.as_uri(), T0, T0 + HOUR, os_client, index_names)
    assert names(report.already_analysed) == ["same.mp4", "partial.mp4"]
    assert [a["status"] for a in report.already_analysed] == ["complete", "partial"]
    assert report.already_analysed_count == 2
    assert names(report.new) == ["other_settings.mp4", "changed.mp4", "failed.mp4"]

    # a re-scan of a big archive lists a few skipped videos by name, counts them all (its XCom
    # was 1.8 MB for 10,000: bench/results/archive-scale.md)
    monkeypatch.setattr("reko.archive.MAX_LISTED_IN_REPORT", 1)
    report = scan(root.as_uri(), T0, T0 + HOUR, os_client, index_names)
    assert names(report.already_analysed) == ["same.mp4"] and report.already_analysed_count == 2
    text, _ = summarise(report.as_dict(), {}, {})
    assert "already analysed with these settings (skipped): 2" in text
    assert summary_counts(report.as_dict(), {})["already_analysed"] == 2
    monkeypatch.undo()
    report = scan(
        root.as_uri(), T0, T0 + HOUR, os_client, index_names, settings=cases["other_settings.mp4"][0]
    )
    assert names(report.already_analysed) == ["other_settings.mp4"]


def test_max_videos_keeps_the_oldest_and_reports_the_rest_as_overflow(
    tmp_path, clips, opensearch_url, os_client, index_names
):
    layout = {f"v{i}.mp4": ("good", T0 + timedelta(minutes=10 - i)) for i in range(4)}
    root = archive(tmp_path / "many", clips, layout)
    report = scan(root.as_uri(), T0, T0 + HOUR, os_client, index_names, max_videos=2)
    assert names(report.new) == ["v3.mp4", "v2.mp4"] and report.overflow_count == 2
    assert [k["trigger_run_id"] for k in trigger_kwargs(report.as_dict())] == [
        v["trigger_run_id"] for v in report.new
    ]
    text, failing = summarise(
        report.as_dict(), {0: "success", 1: "skipped"}, {report.new[1]["trigger_run_id"]: "success"}
    )
    assert failing and "clear this scan run to continue" in text and "already existed (success)" in text
    with pytest.raises(ValueError, match="max_videos"):
        scan(root.as_uri(), T0, T0 + HOUR, os_client, index_names, max_videos=1001)
    with pytest.raises(ValueError, match="needs a real interval"):
        scan(root.as_uri(), T0, T0, os_client, index_names)


# ---------------------------------------------------------------- S3 (moto server on loopback)


class RangeCountingProxy(BaseHTTPRequestHandler):
    """Streams GETs from moto and counts the bytes the client actually took before it hung up
    (ffmpeg opens `bytes=0-` and closes the connection once it has what it needs)."""

    upstream = ""
    served: list[int] = []

    def do_GET(self):
        headers = {k: v for k, v in self.headers.items() if k.lower() in ("range", "host")}
        req = urllib.request.Request(self.upstream + self.path, headers=headers)
        try:
            resp = urllib.request.urlopen(req, timeout=10)
        except urllib.error.HTTPError as exc:
            resp = exc
        self.send_response(resp.status)
        for key in ("Content-Type", "Content-Length", "Content-Range", "Accept-Ranges", "ETag"):
            if resp.headers.get(key):
                self.send_header(key, resp.headers[key])
        self.end_headers()
        self.connection.setsockopt(
            socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024
        )  # like a WAN: no MB buffers
        sent = 0
        try:
            while chunk := resp.read(16 * 1024):
                self.wfile.write(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            resp.close()
            self.served.append(sent)

    def do_HEAD(self):
        """Answered from moto; serves no body (so it counts nothing)."""
        headers = {k: v for k, v in self.headers.items() if k.lower() == "host"}
        req = urllib.request.Request(self.upstream + self.path, headers=headers, method="HEAD")
        try:
            resp = urllib.request.urlopen(req, timeout=10)
        except urllib.error.HTTPError as exc:
            resp = exc
        self.send_response(resp.status)
        for key, value in resp.headers.items():
            if key.lower() not in ("server", "date", "transfer-encoding", "connection"):
                self.send_header(key, value)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def s3(tmp_path_factory, clips):
    """moto on loopback, behind a byte-counting proxy that the `aws_default` connection points at."""
    with pytest.MonkeyPatch.context() as mp, moto_s3(BUCKET) as (endpoint, client):
        RangeCountingProxy.upstream = endpoint
        proxy = ThreadingHTTPServer(("127.0.0.1", 0), RangeCountingProxy)
        threading.Thread(target=proxy.serve_forever, daemon=True).start()
        conn = {
            "conn_type": "aws",
            "login": "testing",
            "password": "testing",
            "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"},
        }
        mp.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(conn))
        conn["extra"]["endpoint_url"] = f"http://127.0.0.1:{proxy.server_port}"
        mp.setenv("AIRFLOW_CONN_AWS_COUNTED", json.dumps(conn))
        big = tmp_path_factory.mktemp("big") / "long.mp4"
        make_video(big, "777", seconds=30, noise=True)
        uploads = [("races/a.mp4", clips["good"]), ("races/2024/b.mp4", clips["other"])]
        uploads += [("races/c.mp4", clips["good"]), ("races/readme.txt", clips["good"])]
        for i, (key, path) in enumerate(uploads):
            if i:
                time.sleep(1.1)  # distinct LastModified seconds
            client.upload_file(str(path), BUCKET, key)
        client.put_object(Bucket=BUCKET, Key="bad/empty.mp4", Body=b"")
        client.put_object(
            Bucket=BUCKET, Key="bad/list.mp4", Body=not_a_video(big.parent / "l.mp4").read_bytes()
        )
        client.upload_file(str(clips["truncated"]), BUCKET, "bad/cut.mp4")
        client.upload_file(str(big), BUCKET, "bad/long.mp4")
        yield client, big
        proxy.shutdown()


def test_s3_listing_by_interval_and_fingerprints(s3, opensearch_url, os_client, index_names):
    client, _ = s3
    prefix = f"s3://aws_default@{BUCKET}/races/"
    objects = {o.uri.rsplit("/", 1)[-1]: o for o in list_archive(prefix)}
    assert sorted(objects) == ["a.mp4", "b.mp4", "c.mp4", "readme.txt"]
    assert objects["b.mp4"].uri == f"s3://aws_default@{BUCKET}/races/2024/b.mp4"
    for obj in objects.values():
        assert obj.fingerprint == source_fingerprint(parse_uri(obj.uri))
        key = obj.uri.split(f"{BUCKET}/", 1)[1]
        assert obj.fingerprint == f"{obj.size}:{client.head_object(Bucket=BUCKET, Key=key)['ETag']}"
    a, b, c = (objects[n].modified for n in ("a.mp4", "b.mp4", "c.mp4"))
    assert a < b < c
    assert names(scan(prefix, b, c, os_client, index_names).new) == ["b.mp4"]
    report = scan(prefix, a, c + timedelta(seconds=1), os_client, index_names)
    assert names(report.new) == ["a.mp4", "b.mp4", "c.mp4"] and report.ignored_extension == 1
    assert report.new[0]["conf"]["video_uri"] == f"s3://aws_default@{BUCKET}/races/a.mp4"


def test_s3_corrupt_inputs_are_checked_with_range_reads_not_downloads(
    s3, opensearch_url, os_client, index_names
):
    _, big = s3
    RangeCountingProxy.served.clear()
    start = datetime.now(UTC) - timedelta(hours=1)
    report = scan(f"s3://aws_counted@{BUCKET}/bad/", start, start + 2 * HOUR, os_client, index_names)
    assert names(report.new) == ["long.mp4"]
    reasons = {r["uri"].rsplit("/", 1)[-1]: r["reason"] for r in report.rejected}
    assert "empty (0 bytes)" in reasons["empty.mp4"]
    assert "not a readable video: s3://aws_counted@reko-archive/bad/list.mp4" in reasons["list.mp4"]
    assert "truncated" in reasons["cut.mp4"]
    assert not any("X-Amz" in r or "http" in r for r in reasons.values())  # no signed URL in a message
    big_size = big.stat().st_size
    assert big_size > 5_000_000
    # ffprobe and the tail check read the 30 s video with range requests: far less than its size
    print(f"served {RangeCountingProxy.served} ({sum(RangeCountingProxy.served)}) of {big_size} bytes")
    assert RangeCountingProxy.served and sum(RangeCountingProxy.served) < big_size / 4


def test_probe_reads_an_s3_video_with_range_reads_like_the_scan(s3, tmp_path):
    """`probe` (the analysis DAG's first step) probes an S3 video through a presigned URL with
    range reads, as the scan does, and finds what probing the same file locally finds."""
    from reko.media import probe
    from reko.pipeline import RunConfig, probe_video

    _, big = s3
    RangeCountingProxy.served.clear()
    uri = f"s3://aws_counted@{BUCKET}/bad/long.mp4"
    cfg = RunConfig.from_params(
        {
            "video_uri": uri,
            "backend": "local",
            "frame_interval_s": 1.0,
            "analyses": ["text"],
            "min_confidence": 50,
        }
    )
    job = probe_video(cfg, tmp_path.as_uri())
    assert job.info == probe(big, str(big))
    print(
        f"served {RangeCountingProxy.served} ({sum(RangeCountingProxy.served)}) of {big.stat().st_size} bytes"
    )
    assert RangeCountingProxy.served and sum(RangeCountingProxy.served) < big.stat().st_size / 4
    missing = f"s3://aws_counted@{BUCKET}/bad/nope.mp4"
    with pytest.raises(ValueError, match=f"video not found: {re.escape(missing)}$"):
        probe_video(RunConfig.from_params({**cfg.__dict__, "video_uri": missing}), tmp_path.as_uri())


def test_reko_runs_ffprobe_through_one_wrapper():
    """reko.media.ffprobe is the only place that runs ffprobe (probe, the scan and clips use it)."""
    plugins = Path(__file__).parents[1] / "plugins" / "reko"
    callers = [
        f"{path.relative_to(plugins)}:{n}"
        for path in sorted(plugins.rglob("*.py"))
        if path.name != "media.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if '"ffprobe"' in line and "shutil.which" not in line
    ]
    assert callers == []


# ---------------------------------------------------------------- the DAG


@pytest.fixture(scope="module")
def scan_dag(airflow_db, opensearch_url):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REKO_SCAN_POKE_S", "1")
        from airflow.dag_processing.dagbag import DagBag

        from tests.conftest import REPO

        bag = DagBag(dag_folder=str(REPO / "dags" / "video_archive_scan.py"))
        assert bag.import_errors == {}
        yield bag.dags[DAG_ID]


def test_dag_shape_and_params(scan_dag):
    from airflow.sdk import CronDataIntervalTimetable

    assert isinstance(scan_dag.timetable, CronDataIntervalTimetable)
    assert not scan_dag.catchup and scan_dag.max_active_runs == 1 and "Backfill an archive" in scan_dag.doc_md
    assert set(scan_dag.params) == {
        "prefix",
        "extensions",
        "backend",
        "frame_interval_s",
        "analyses",
        "min_confidence",
        "max_videos",
    }
    for name in scan_dag.params:
        param = scan_dag.params.get_param(name)
        assert param.schema.get("title") and param.description, name
    assert scan_dag.params.get_param("max_videos").schema["maximum"] == 1000
    trigger = scan_dag.get_task("analyse_video")
    kwargs = trigger.partial_kwargs
    assert kwargs["wait_for_completion"] is False and kwargs["retries"] == 0  # one wait for all
    assert scan_dag.get_task("wait_for_analyses").upstream_task_ids == {"analyse_video", "list_new_videos"}
    assert trigger.map_index_template == "{{ task.conf['video_uri'] }}"
    assert scan_dag.get_task("summarise_scan").trigger_rule == "all_done"


def manual_interval(dag, logical: datetime) -> tuple[datetime, datetime]:
    """The data interval dag.test() gives a run at `logical` (as the core timetable infers it)."""
    from airflow.sdk import timezone
    from airflow.serialization.encoders import coerce_to_core_timetable

    timetable = coerce_to_core_timetable(dag.timetable)
    interval = timetable.infer_manual_data_interval(run_after=timezone.coerce_datetime(logical))
    return interval.start, interval.end


def finish_analysis_runs(stop: threading.Event, state: str = "success") -> None:
    """Stand-in for the scheduler: mark every queued video_analysis run finished, so the scan's
    deferred waits (run inline by dag.test) see their runs end."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    while not stop.is_set():
        with create_session() as session:
            for run in session.query(DagRun).filter(DagRun.dag_id == "video_analysis", DagRun.state != state):
                run.state = state
        time.sleep(0.3)


def analysis_runs(prefix: str) -> dict[str, dict]:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        runs = session.query(DagRun).filter(
            DagRun.dag_id == "video_analysis", DagRun.run_id.like(f"{prefix}%")
        )
        return {r.run_id: {"conf": r.conf, "note": r.note, "run_type": str(r.run_type)} for r in runs}


def ti_states(dr) -> dict[tuple[str, int], str]:
    return {(ti.task_id, ti.map_index): ti.state for ti in dr.get_task_instances()}


def test_dag_test_triggers_each_new_video_once(scan_dag, tmp_path, clips, os_client, index_names):
    from airflow.utils.state import DagRunState

    logical = datetime(2025, 4, 2, 12, 0, tzinfo=UTC)
    start, end = manual_interval(scan_dag, logical)
    root = archive(
        tmp_path / "dagtest",
        clips,
        {
            "old.mp4": ("good", start - timedelta(minutes=5)),
            "first.mp4": ("good", start),
            "second.mp4": ("other", start + timedelta(minutes=10)),
            "empty.mp4": ("empty", start + timedelta(minutes=20)),
        },
    )
    conf = {"prefix": root.as_uri(), "max_videos": 5}
    stop = threading.Event()
    helper = threading.Thread(target=finish_analysis_runs, args=(stop,), daemon=True)
    helper.start()
    try:
        dr = scan_dag.test(logical_date=logical, run_conf=conf)
        assert dr.state == DagRunState.SUCCESS
        states = ti_states(dr)
        assert states[("analyse_video", 0)] == states[("analyse_video", 1)] == "success"
        assert ("analyse_video", 2) not in states
        ids = {video_id_for((root / n).as_uri()): n for n in ("first.mp4", "second.mp4")}
        runs = {r: v for r, v in analysis_runs("archive__").items() if r.split("__")[1] in ids}
        assert sorted(ids[r.split("__")[1]] for r in runs) == ["first.mp4", "second.mp4"]
        for run in runs.values():
            assert run["conf"]["backend"] == "local" and run["conf"]["analyses"] == ["text"]
            assert run["run_type"].endswith("operator_triggered") or "OPERATOR" in run["run_type"].upper()
            assert run["note"].startswith(f"Started by video_archive_scan run {dr.run_id}")
        summary = dr.get_task_instance("summarise_scan").xcom_pull(task_ids="summarise_scan")
        assert summary["triggered"] == summary["analysed"] == 2 and summary["already_existed"] == 0
        assert summary["rejected"] == {
            (root / "empty.mp4").as_uri(): f"video is empty (0 bytes): {(root / 'empty.mp4').as_uri()}"
        }

        # the same interval again (a second backfill, a cleared run): no second run is started
        dr = scan_dag.test(logical_date=logical, run_conf=conf)
        assert dr.state == DagRunState.SUCCESS
        assert ti_states(dr)[("analyse_video", 0)] == "skipped"
        summary = dr.get_task_instance("summarise_scan").xcom_pull(task_ids="summarise_scan")
        assert summary["triggered"] == 0 and summary["already_existed"] == 2
        assert {r: v for r, v in analysis_runs("archive__").items() if r.split("__")[1] in ids} == runs
    finally:
        stop.set()
        helper.join()


def test_dag_test_fails_the_run_on_overflow_only(scan_dag, tmp_path, clips):
    from airflow.utils.state import DagRunState

    logical = datetime(2025, 4, 3, 12, 0, tzinfo=UTC)
    start, _ = manual_interval(scan_dag, logical)
    layout = {f"o{i}.mp4": ("good", start + timedelta(minutes=i)) for i in range(2)}
    root = archive(tmp_path / "overflow", clips, layout | {"bad.mp4": ("text", start)})
    stop = threading.Event()
    helper = threading.Thread(target=finish_analysis_runs, args=(stop,), daemon=True)
    helper.start()
    try:
        dr = scan_dag.test(logical_date=logical, run_conf={"prefix": root.as_uri(), "max_videos": 1})
    finally:
        stop.set()
        helper.join()
    assert dr.state == DagRunState.FAILED
    states = ti_states(dr)
    assert states[("analyse_video", 0)] == "success" and states[("summarise_scan", -1)] == "failed"


def test_analysis_runs_at_once_are_a_deployment_setting_with_the_old_name_still_read(monkeypatch):
    from reko.config import max_active_analyses

    monkeypatch.delenv("REKO_MAX_ACTIVE_ANALYSES", raising=False)
    monkeypatch.delenv("REKO_SCAN_MAX_IN_FLIGHT", raising=False)
    assert max_active_analyses() == 8
    monkeypatch.setenv("REKO_SCAN_MAX_IN_FLIGHT", "3")  # a deployment set up before the rename
    assert max_active_analyses() == 3
    monkeypatch.setenv("REKO_MAX_ACTIVE_ANALYSES", "12")  # the new name wins
    assert max_active_analyses() == 12
    monkeypatch.setenv("REKO_MAX_ACTIVE_ANALYSES", "0")
    with pytest.raises(ValueError, match="REKO_MAX_ACTIVE_ANALYSES must be greater than 0"):
        max_active_analyses()
