"""A loopback stand-in for AWS Elemental MediaConvert, for control-flow and integration tests.

It speaks MediaConvert's REST-JSON (CreateJob `POST /2017-08-29/jobs`, GetJob
`GET /2017-08-29/jobs/{id}`), translating wire names with botocore's own model, parsers and
serialisers, and moves each job SUBMITTED -> PROGRESSING -> COMPLETE, or ERROR with an error
code and message. Jobs do real work against S3 (moto, through boto3 on the same endpoint):

* a FRAME_CAPTURE output downloads the input, runs `reko.media.extract_frames` at the job's
  FramerateNumerator/Denominator and uploads `<destination>.NNNNNNN.jpg` (at most MaxCaptures),
  as MediaConvert names them;
* an output of a job whose input has InputClippings is cut with `reko.clips.cut_clip` ("smart")
  for the frames the ZEROBASED timecodes name (both ends inclusive) and uploaded as
  `<destination><NameModifier>.<Extension>`;
* any other output (e.g. the frame-capture job's proxy) gets the input's bytes, unchanged.

Not modelled: queues, billing, job templates, transcoding settings beyond the above.
"""

from __future__ import annotations

import json
import re
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

_JOBS = "/2017-08-29/jobs"
_TOKEN_WINDOW_S = 60  # how long MediaConvert answers a repeated ClientRequestToken with the same job


class FakeMediaConvert:
    """Job store and worker; `endpoint` is the URL to put in the connection's service_config."""

    def __init__(self, s3_endpoint: str | None, region: str = "us-east-1", step_s: float = 0.05):
        import botocore.session

        self.s3_endpoint = s3_endpoint
        self.region = region
        self.step_s = step_s
        self.jobs: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []
        self._tokens: dict[str, tuple[str, float]] = {}
        self._fail_next: tuple[int, str] | None = None
        self._running = threading.Event()
        self._running.set()
        self._lock = threading.Lock()
        self._model = botocore.session.get_session().get_service_model("mediaconvert")
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"

    # ------------------------------------------------------------ test controls

    def fail_next(self, code: int, message: str) -> None:
        """The next job created ends in ERROR with this code and message."""
        self._fail_next = (code, message)

    @contextmanager
    def held(self) -> Iterator[None]:
        """Jobs started while held stay PROGRESSING until the block exits."""
        self._running.clear()
        try:
            yield
        finally:
            self._running.set()

    def wait_until_done(self, job_id: str, timeout_s: float = 120) -> dict:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.jobs[job_id]["Status"] in ("COMPLETE", "ERROR", "CANCELED"):
                return self.jobs[job_id]
            time.sleep(0.02)
        raise TimeoutError(f"fake MediaConvert job {job_id} still {self.jobs[job_id]['Status']}")

    def start(self) -> FakeMediaConvert:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._running.set()
        self._server.shutdown()
        self._server.server_close()

    # ------------------------------------------------------------ API

    def create_job(self, params: dict[str, Any]) -> dict[str, Any]:
        token = params.get("ClientRequestToken")
        with self._lock:
            if token and token in self._tokens and time.time() - self._tokens[token][1] < _TOKEN_WINDOW_S:
                return self.jobs[self._tokens[token][0]]
            job_id = f"{int(time.time() * 1000)}-{uuid.uuid4().hex[:6]}"
            job = {
                "Id": job_id,
                "Arn": f"arn:aws:mediaconvert:{self.region}:111122223333:jobs/{job_id}",
                "Role": params["Role"],
                "Settings": params["Settings"],
                "Queue": params.get("Queue")
                or f"arn:aws:mediaconvert:{self.region}:111122223333:queues/Default",
                "UserMetadata": params.get("UserMetadata") or {},
                "Status": "SUBMITTED",
                "CreatedAt": datetime.now(UTC),
            }
            self.jobs[job_id] = job
            if token:
                self._tokens[token] = (job_id, time.time())
            failure, self._fail_next = self._fail_next, None
        threading.Thread(target=self._process, args=(job, failure), daemon=True).start()
        return job

    def _process(self, job: dict[str, Any], failure: tuple[int, str] | None) -> None:
        time.sleep(self.step_s)
        job["Status"] = "PROGRESSING"
        job["JobPercentComplete"] = 0
        self._running.wait()
        time.sleep(self.step_s)
        if failure is None:
            try:
                self._perform(job["Settings"])
            except Exception as error:  # noqa: BLE001 - any failure is the job's ERROR, as in the service
                failure = (1999, f"{type(error).__name__}: {error}")
        if failure:
            job["ErrorCode"], job["ErrorMessage"] = failure
            job["Status"] = "ERROR"
        else:
            job["JobPercentComplete"] = 100
            job["Status"] = "COMPLETE"

    # ------------------------------------------------------------ the work

    def _s3(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.s3_endpoint,
            region_name=self.region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    @staticmethod
    def _split(uri: str) -> tuple[str, str]:
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        return bucket, key

    def _perform(self, settings: dict[str, Any]) -> None:
        from reko.aws.mediaconvert_jobs import normalize_fps, timecode_to_frame
        from reko.clips import cut_clip
        from reko.media import extract_frames, probe

        (spec,) = settings["Inputs"]
        s3 = self._s3()
        with tempfile.TemporaryDirectory(prefix="fake-mediaconvert-") as tmp:
            source = Path(tmp) / spec["FileInput"].rsplit("/", 1)[-1]
            try:
                s3.download_file(*self._split(spec["FileInput"]), str(source))
            except Exception as error:  # noqa: BLE001
                raise RuntimeError(f"Failed to open input file {spec['FileInput']}: {error}") from None
            for group in settings["OutputGroups"]:
                destination = group["OutputGroupSettings"]["FileGroupSettings"]["Destination"]
                bucket, base = self._split(destination)
                for output in group["Outputs"]:
                    codec = output["VideoDescription"]["CodecSettings"]
                    if codec["Codec"] == "FRAME_CAPTURE":
                        fc = codec["FrameCaptureSettings"]
                        interval = Fraction(fc["FramerateDenominator"], fc["FramerateNumerator"])
                        out_dir = Path(tmp) / f"frames-{uuid.uuid4().hex[:6]}"
                        stem = base.rsplit("/", 1)[-1] + output.get("NameModifier", "")
                        q = round(31 - (fc.get("Quality", 80) - 1) * 29 / 99)
                        extract_frames(source, out_dir, stem, float(interval), jpeg_quality=q)
                        frames = sorted(out_dir.iterdir())[: fc.get("MaxCaptures", 10_000_000)]
                        prefix = base.rsplit("/", 1)[0]
                        for frame in frames:
                            s3.upload_file(str(frame), bucket, f"{prefix}/{frame.name}")
                        continue
                    key = f"{base}{output.get('NameModifier', '')}.{output.get('Extension', 'mp4')}"
                    clippings = spec.get("InputClippings")
                    if not clippings:
                        s3.upload_file(str(source), bucket, key)
                        continue
                    (clip,) = clippings
                    fps = normalize_fps(probe(source, spec["FileInput"]).fps)
                    first = timecode_to_frame(clip["StartTimecode"], fps)
                    last = timecode_to_frame(clip["EndTimecode"], fps)
                    out = Path(tmp) / f"clip-{uuid.uuid4().hex[:6]}.mp4"
                    cut_clip(source, round(first * 1000 / fps), round((last + 1) * 1000 / fps), out, "smart")
                    s3.upload_file(str(out), bucket, key)

    # ------------------------------------------------------------ HTTP

    def _handler(self):
        from botocore.parsers import RestJSONParser
        from botocore.serialize import RestJSONSerializer

        fake = self
        create = self._model.operation_model("CreateJob")
        get = self._model.operation_model("GetJob")

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def _reply(self, status: int, body: str | bytes, error_type: str | None = None) -> None:
                data = body.encode() if isinstance(body, str) else body
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if error_type:
                    self.send_header("x-amzn-ErrorType", error_type)
                self.end_headers()
                self.wfile.write(data)

            def _job(self, shape, job: dict) -> bytes:
                return RestJSONSerializer()._serialize_body_params({"Job": job}, shape)

            def do_POST(self) -> None:
                fake.requests.append(("POST", self.path))
                if self.path.rstrip("/") != _JOBS:
                    return self._reply(
                        404, json.dumps({"message": f"no route {self.path}"}), "NotFoundException"
                    )
                raw = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                params = RestJSONParser()._parse_shape(create.input_shape, raw)
                if not params.get("Role") or not params.get("Settings"):
                    return self._reply(
                        400, json.dumps({"message": "Role and Settings are required"}), "BadRequestException"
                    )
                job = fake.create_job(params)
                self._reply(201, self._job(create.output_shape, job))

            def do_GET(self) -> None:
                fake.requests.append(("GET", self.path))
                match = re.fullmatch(rf"{_JOBS}/([^/?]+)", self.path)
                job = fake.jobs.get(match[1]) if match else None
                if job is None:
                    return self._reply(404, json.dumps({"message": "Job not found"}), "NotFoundException")
                self._reply(200, self._job(get.output_shape, job))

        return Handler


@contextmanager
def fake_mediaconvert(
    s3_endpoint: str | None = None, region: str = "us-east-1"
) -> Iterator[FakeMediaConvert]:
    """Run a FakeMediaConvert on a free loopback port for the duration of the block."""
    server = FakeMediaConvert(s3_endpoint, region).start()
    try:
        yield server
    finally:
        server.stop()


def connection_json(mediaconvert_endpoint: str, s3_endpoint: str | None = None, **extra: Any) -> str:
    """An AIRFLOW_CONN_* value: S3 (and all else) at `s3_endpoint`, MediaConvert at its override.

    The service-specific `service_config.mediaconvert.endpoint_url` wins over the global
    `endpoint_url`, which is how an account-specific MediaConvert endpoint is configured.
    """
    extras: dict[str, Any] = {
        "region_name": "us-east-1",
        "service_config": {"mediaconvert": {"endpoint_url": mediaconvert_endpoint}},
        "mediaconvert_role_arn": "arn:aws:iam::111122223333:role/MediaConvertRole",
        **extra,
    }
    if s3_endpoint:
        extras["endpoint_url"] = s3_endpoint
    return json.dumps({"conn_type": "aws", "login": "testing", "password": "testing", "extra": extras})
