"""moto's S3 server on a free loopback port: real HTTP for boto3, s3fs and ObjectStoragePath."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1"}


@contextmanager
def moto_s3(*buckets: str) -> Iterator[tuple[str, Any]]:
    """(endpoint, boto3 S3 client) of a fresh moto server with `buckets` created.

    ObjectStoragePath caches one filesystem per connection id, bound to the endpoint it first saw;
    the cache is cleared on entry and exit so a connection re-pointed at this server is honoured.
    """
    import boto3
    from airflow.sdk.io.store import _STORE_CACHE

    from reko.localdev.opensearch import free_port

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    _STORE_CACHE.clear()
    try:
        for _ in range(150):
            try:
                urllib.request.urlopen(endpoint, timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        client = boto3.client("s3", endpoint_url=endpoint, **CREDENTIALS)
        for bucket in buckets:
            client.create_bucket(Bucket=bucket)
        yield endpoint, client
    finally:
        _STORE_CACHE.clear()
        proc.terminate()
        proc.wait(timeout=10)


def aws_connection(s3_endpoint: str, rekognition_endpoint: str | None = None) -> str:
    """`aws_default` connection JSON for the moto server (and a loopback Rekognition, if given)."""
    import json

    extra: dict[str, Any] = {"endpoint_url": s3_endpoint, "region_name": CREDENTIALS["region_name"]}
    if rekognition_endpoint:
        extra["service_config"] = {"rekognition": {"endpoint_url": rekognition_endpoint}}
    login, password = CREDENTIALS["aws_access_key_id"], CREDENTIALS["aws_secret_access_key"]
    return json.dumps({"conn_type": "aws", "login": login, "password": password, "extra": extra})
