"""Where a video's frames and per-frame results live, for `file://` and `s3://` alike.

Layout under the work root (one folder per video and capture interval, so a new interval never
mixes with old frames):

    <root>/<video_id>/i<interval_ms>ms/frames/<stem>.NNNNNNN.jpg
    <root>/<video_id>/i<interval_ms>ms/frames/manifest.json        written last: frames complete
    <root>/<video_id>/i<interval_ms>ms/results/<backend>/<kind>/<stem>.NNNNNNN.json
    <root>/<video_id>/i<interval_ms>ms/results/<backend>/<kind>/<stem>.NNNNNNN.error.json

A result object is the cache that makes a retried batch skip the frames it already analysed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reko.media import InvalidVideoError, frame_name, frame_stem

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

SUPPORTED_SCHEMES = ("file", "s3")


def parse_uri(uri: str, what: str = "video_uri") -> ObjectStoragePath:
    """An ObjectStoragePath for a `file://` or `s3://` URI, or a clear error naming the problem."""
    from airflow.sdk import ObjectStoragePath

    if not uri or not isinstance(uri, str):
        raise InvalidVideoError(f"{what} is empty: give a file:// or s3:// URI")
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
    if scheme not in SUPPORTED_SCHEMES:
        raise InvalidVideoError(
            f"{what} {uri!r} has unsupported scheme {scheme or '(none)'!r}: use file:// or s3://"
        )
    if scheme == "s3" and split_s3_uri(uri, what)[0] is None:
        return ObjectStoragePath(uri, conn_id=s3_conn_id(uri, what))
    if scheme == "file":
        _attach_local_filesystem()
    return ObjectStoragePath(uri)


@cache
def _attach_local_filesystem() -> None:
    """Gives `file://` paths Airflow's built-in local filesystem directly. Found by scheme, it
    comes after every provider's filesystem module is imported (the amazon provider's imports
    boto3): about 0.25 CPU-s in each task process that reads a local path and nothing else."""
    from airflow.sdk.io import attach
    from fsspec.implementations.local import LocalFileSystem

    attach("file", fs=LocalFileSystem())


def s3_conn_id(uri: str, what: str = "uri") -> str:
    """The Airflow connection for an S3 URI: its own (`s3://conn_id@bucket/key`), else the
    configured default `REKO_AWS_CONN_ID`; never the worker's ambient credentials. Every stage
    (the wait, probe, frames, MediaConvert, presigned URLs) follows this one rule."""
    from reko.config import aws_conn_id

    return split_s3_uri(uri, what)[0] or aws_conn_id()


def local_path(path: ObjectStoragePath) -> Path | None:
    """The filesystem path behind a `file://` ObjectStoragePath, else None."""
    return Path(path.path) if path.protocol in ("file", "local") else None


@contextmanager
def local_copy(path: ObjectStoragePath) -> Iterator[Path]:
    """A local file with the object's bytes: the file itself when local, else a streamed copy."""
    direct = local_path(path)
    if direct is not None:
        yield direct
        return
    with tempfile.TemporaryDirectory(prefix="reko-") as tmp:
        target = Path(tmp) / (path.name or "video")
        if not path.exists():
            raise InvalidVideoError(f"video not found: {path}")
        with path.open("rb") as src, target.open("wb") as dst:
            shutil.copyfileobj(src, dst, length=8 * 1024 * 1024)
        yield target


PRESIGNED_URL_TTL_S = 900


def presigned_url(uri: str, expires_s: int = PRESIGNED_URL_TTL_S) -> str:
    """A short-lived GET URL for an `s3://[conn@]bucket/key` object, signed by the provider's hook
    with the connection ObjectStoragePath uses (its endpoint too, e.g. a local S3): what ffprobe
    reads with range requests instead of downloading the object."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    _, bucket, key = split_s3_uri(uri, "video")
    url = S3Hook(aws_conn_id=s3_conn_id(uri, "video")).generate_presigned_url(
        "get_object", {"Bucket": bucket, "Key": key}, expires_in=expires_s
    )
    if not url:
        raise InvalidVideoError(f"cannot sign a URL to read {uri}")
    return url


def source_fingerprint(path: ObjectStoragePath) -> str:
    """What identifies this version of an object: size plus ETag (S3) or modification time."""
    return fingerprint_of(dict(path.stat()))


def fingerprint_of(info: dict[str, Any]) -> str:
    """`source_fingerprint` from an fsspec info/listing entry (a listing needs no extra request)."""
    version = info.get("ETag") or info.get("etag") or info.get("mtime") or info.get("LastModified")
    return f"{info.get('size')}:{version}"


def remove_tree(path: ObjectStoragePath) -> None:
    """Delete a folder and everything under it (a no-op when it does not exist)."""
    if path.exists():
        path.fs.rm(path.path, recursive=True)


_S3_URI = re.compile(r"^s3://(?:(?P<conn>[^@/]+)@)?(?P<bucket>[^@/]+)/(?P<key>.*)$")


def split_s3_uri(uri: str, what: str = "uri") -> tuple[str | None, str, str]:
    """(connection id or None, bucket, key) of `s3://[conn_id@]bucket/key`, the form
    ObjectStoragePath reads; the key may be a prefix, or empty for the bucket itself."""
    match = _S3_URI.match(uri or "")
    if not match:
        raise ValueError(f"{what} must be an s3://[conn_id@]bucket/key URI, got {uri!r}")
    return match["conn"], match["bucket"], match["key"]


def video_id_for(uri: str) -> str:
    """Stable, readable id: the file's stem plus a hash of the URI (same name, other folder).

    The connection id in `s3://conn_id@bucket/key` is not part of the identity: the same object
    read through another connection is the same video.
    """
    identity = re.sub(r"^(s3://)[^@/]+@", r"\1", uri)
    stem = re.sub(r"[^a-z0-9]+", "-", Path(uri.split("?", 1)[0]).stem.lower()).strip("-")[:48]
    digest = hashlib.sha1(identity.encode()).hexdigest()[:10]
    return f"{stem or 'video'}-{digest}"


def write_json(path: ObjectStoragePath, obj: Any) -> None:
    """Write JSON so a reader never sees half an object (rename locally; S3 PUTs are atomic)."""
    data = json.dumps(obj, ensure_ascii=False, sort_keys=True).encode()
    direct = local_path(path)
    if direct is None:
        path.write_bytes(data)
        return
    direct.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=direct.parent, prefix=".tmp-", suffix=".json")
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, direct)


def read_json(path: ObjectStoragePath) -> Any | None:
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        return None


@dataclass(frozen=True)
class VideoStore:
    """Paths of one video's frames and results for one capture interval."""

    root_uri: str
    video_id: str
    interval_ms: int
    stem: str

    @classmethod
    def for_video(cls, root_uri: str, video_uri: str, interval_s: float) -> VideoStore:
        name = video_uri.rstrip("/").rsplit("/", 1)[-1]
        return cls(root_uri, video_id_for(video_uri), round(interval_s * 1000), frame_stem(name))

    # Building an ObjectStoragePath parses the URI and looks up its filesystem: about a third of a
    # cheap analyser's time per frame went on rebuilding the same paths, so each is built once.
    @cached_property
    def base(self) -> ObjectStoragePath:
        return parse_uri(self.root_uri, "REKO_WORK_URI") / self.video_id / f"i{self.interval_ms}ms"

    @cached_property
    def frames_dir(self) -> ObjectStoragePath:
        return self.base / "frames"

    @cached_property
    def manifest(self) -> ObjectStoragePath:
        return self.frames_dir / "manifest.json"

    @cached_property
    def _paths(self) -> dict[tuple[str, ...] | int, ObjectStoragePath]:
        return {}

    def frame(self, index: int) -> ObjectStoragePath:
        if (path := self._paths.get(index)) is None:
            path = self._paths[index] = self.frames_dir / frame_name(self.stem, index)
        return path

    def results_dir(self, backend: str, kind: str) -> ObjectStoragePath:
        key = (backend, kind)
        if (path := self._paths.get(key)) is None:
            path = self._paths[key] = self.base / "results" / backend / kind
        return path

    def result(self, backend: str, kind: str, index: int) -> ObjectStoragePath:
        return self._child(backend, kind, f"{self.stem}.{index:07d}.json")

    def error(self, backend: str, kind: str, index: int) -> ObjectStoragePath:
        return self._child(backend, kind, f"{self.stem}.{index:07d}.error.json")

    def _child(self, backend: str, kind: str, name: str) -> ObjectStoragePath:
        key = (backend, kind, name)
        if (path := self._paths.get(key)) is None:
            path = self._paths[key] = self.results_dir(backend, kind) / name
        return path
