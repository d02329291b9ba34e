"""Scan a prefix per data interval and start one `video_analysis` run per new video."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import CronDataIntervalTimetable, Param, dag, get_current_context, task

from reko.config import VIDEO_EXTENSIONS, archive_uri, scan_poke_s, scan_schedule, scan_start_date
from reko.operators import WaitForRunsOperator
from reko.params import analysis_settings_params

ANALYSIS_DAG_ID = "video_analysis"
TRIGGER_TASK_ID = "analyse_video"

DOC_MD = """
### video_archive_scan
Finds the videos that arrived under a prefix (`file://` or `s3://[conn_id@]bucket/prefix`) during
the run's **data interval** (object modification time in [start, end)) and starts one
`video_analysis` run per new video. The schedule (`REKO_SCAN_SCHEDULE`, default `@hourly`, UTC)
gives real intervals (`CronDataIntervalTimetable`), so every object belongs to exactly one run.

**Backfill an archive** with Airflow's own tool (the scan never catches up by itself):

    airflow backfill create --dag-id video_archive_scan \\
        --from-date 2024-01-01 --to-date 2024-12-31 --max-active-runs 2 \\
        --dag-run-conf '{"prefix": "s3://aws_archive@footage/races/"}'

Running it again (`--reprocess-behavior completed` re-runs finished scans) analyses nothing twice:
a video whose document in the videos index has the same settings key and source fingerprint is
skipped, and every analysis run has a fixed id, `archive__<video_id>__<hash of settings and source
version>`, which Airflow refuses to create twice (the trigger is then *skipped*: "run already existed").
A video that changed (new ETag/mtime) or new settings get a new run id and are analysed again. A
video analysed with failed frames (status `partial`) is skipped too: its run exists, so clear that
run's failed tasks to retry them.

**Tasks**: `list_new_videos` lists the prefix once (one paginated listing on S3), skips videos already
analysed (one `mget`), rejects corrupt inputs with a reason (zero bytes, not a video, truncated; checked
by ffprobe on the file, or on a presigned S3 URL with range reads, never a full download; each run is
handed that probe and reuses it while the video is unchanged, so no video is probed twice) and caps the
run at `max_videos`, oldest first. `analyse_video` (mapped, one per video, named by its URI) triggers
`video_analysis` and returns; `wait_for_analyses` waits, deferred, for all of those runs at once
(one trigger, not one task resumed per video). `summarise_scan` writes the report (listed, in interval,
skipped, rejected with reasons, triggered, already existing, overflow) and fails the run only on
overflow: then clear the scan run to continue with the rest.

**Concurrency**: `video_analysis` runs at most `REKO_MAX_ACTIVE_ANALYSES` (default 8) runs at once
(its `max_active_runs`, which the runs a scan triggers follow, backfills included); the others wait
queued for a slot, in the order they were created. Its Rekognition calls go through the
`rekognition` pool and the rate limiter, and MediaConvert jobs are bounded by the same cap.

**Event-driven start (optional)**: instead of (or next to) the schedule, start `video_analysis` when
an object lands. Either wait for one key with the deferrable sensor `reko.aws.sensors.VideoObjectSensor`
(the amazon provider's `S3KeySensor`), or schedule a DAG on an `Asset` watched on an SQS queue that
receives the bucket's `s3:ObjectCreated:*` notifications. The installed amazon provider's
`SqsSensorTrigger` is a `BaseEventTrigger`, so it can watch an asset directly (the common messaging
provider's `MessageQueueTrigger(scheme="sqs", ...)` wraps the same trigger, but is not installed here):

    from airflow.providers.amazon.aws.triggers.sqs import SqsSensorTrigger
    from airflow.sdk import Asset, AssetWatcher
    queue = "https://sqs.eu-west-1.amazonaws.com/123456789012/reko-new-videos"
    trigger = SqsSensorTrigger(sqs_queue=queue, aws_conn_id="aws_default")
    new_videos = Asset("reko_new_videos", watchers=[AssetWatcher(name="s3_events", trigger=trigger)])
    # @dag(schedule=[new_videos]): read the S3 keys from the triggering asset events' extra, then
    # trigger video_analysis per key as analyse_video does here (same run ids: never a double analysis).
"""


@dag(
    dag_id="video_archive_scan",
    schedule=CronDataIntervalTimetable(scan_schedule(), timezone="UTC"),
    start_date=pendulum.parse(scan_start_date()).in_timezone("UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["reko", "video", "archive"],
    doc_md=DOC_MD,
    default_args={"owner": "reko", "retries": 1, "retry_delay": timedelta(seconds=30)},
    params={
        "prefix": Param(
            archive_uri(),
            type="string",
            minLength=8,
            title="Archive prefix",
            description="Where the videos are, listed recursively: file:///folder/ or s3://[conn_id@]bucket/prefix/.",
        ),
        "extensions": Param(
            list(VIDEO_EXTENSIONS),
            type="array",
            items={"type": "string", "pattern": "^\\.?[A-Za-z0-9]{1,8}$"},
            minItems=1,
            uniqueItems=True,
            title="Video extensions",
            description="File extensions that count as videos; other objects are ignored (and counted).",
        ),
        **analysis_settings_params("Passed to video_analysis. "),
        "max_videos": Param(
            500,
            type="integer",
            minimum=1,
            maximum=1000,
            title="Videos per run",
            description="Most analysis runs one scan run starts; the rest is reported as overflow.",
        ),
    },
)
def video_archive_scan() -> None:
    @task
    def list_new_videos(params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Returns the mapped trigger's kwargs; the whole report goes to XCom key `report`."""
        from airflow.sdk.exceptions import AirflowFailException

        from reko.archive import ScanSettings, scan_archive, trigger_kwargs
        from reko.index.client import IndexNames, get_client

        context = get_current_context()
        params = params or {}
        try:
            report = scan_archive(
                prefix=params["prefix"],
                extensions=params["extensions"],
                settings=ScanSettings.from_params(params),
                interval_start=context["data_interval_start"],
                interval_end=context["data_interval_end"],
                max_videos=int(params["max_videos"]),
                client=get_client(),
                videos_index=IndexNames.current().videos,
                scan_run_id=context["run_id"],
            ).as_dict()
        except ValueError as exc:  # bad Params or prefix: retrying will not help
            raise AirflowFailException(str(exc)) from exc
        print(
            f"{report['listed']} objects listed, {report['in_interval']} in the interval,"
            f" {report['already_analysed_count']} already analysed, {len(report['rejected'])} rejected,"
            f" {len(report['new'])} to analyse, {report['overflow_count']} over max_videos"
        )
        for rejected in report["rejected"]:
            print(f"rejected {rejected['uri']}: {rejected['reason']}")
        context["ti"].xcom_push(key="report", value=report)
        return trigger_kwargs(report)

    @task(trigger_rule="all_done", retries=0)
    def summarise_scan(report: dict[str, Any]) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        from reko.archive import analysis_outcomes, summarise, summary_counts

        ti = get_current_context()["ti"]
        outcomes, existing = analysis_outcomes(ti, report, TRIGGER_TASK_ID, ANALYSIS_DAG_ID)
        text, failing = summarise(report, outcomes, existing)
        print(text)
        if failing:
            raise AirflowFailException(
                f"{report['overflow_count']} new videos were left for later (max_videos):"
                " clear this run to continue with the rest"
            )
        return summary_counts(report, outcomes)

    requests = list_new_videos()
    analysed = TriggerDagRunOperator.partial(
        task_id=TRIGGER_TASK_ID,
        trigger_dag_id=ANALYSIS_DAG_ID,
        logical_date=None,  # run ids, not dates, identify these runs; no collisions on a date
        wait_for_completion=False,  # wait_for_analyses waits for all of them, in one trigger
        skip_when_already_exists=True,
        retries=0,  # a retry would only find its own run and be skipped
        map_index_template="{{ task.conf['video_uri'] }}",
    ).expand_kwargs(requests)
    waited = WaitForRunsOperator(
        task_id="wait_for_analyses",
        trigger_task_id=TRIGGER_TASK_ID,
        requests=requests,
        waited_dag_id=ANALYSIS_DAG_ID,
        poll_interval=scan_poke_s(),
        trigger_rule="all_done",
        retries=0,
    )
    analysed >> waited >> summarise_scan(requests["report"])


video_archive_scan()
