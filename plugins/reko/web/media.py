"""Frames and clips for the browser without a public bucket: files streamed, S3 presigned.

The page only ever names a key *relative to the storage root* (`reko.config.work_uri()`): a URI
stored in the index becomes `/reko/media/<key>`, and the route maps the key back under the root.
Anything that would leave the root (`..`, absolute paths, symlinks pointing out, other buckets)
is refused, and only media suffixes are served.
"""

from __future__ import annotations

import logging
import posixpath
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from urllib.parse import unquote, urlsplit

from reko.config import aws_conn_id

log = logging.getLogger(__name__)
MEDIA_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".mp4": "video/mp4"}
PRESIGN_EXPIRES_S = 900


class MediaPathError(ValueError):
    """The requested media key is not a media file under the storage root."""


@dataclass(frozen=True)
class StorageRoot:
    """The storage root as scheme, S3 connection id, bucket and path (a folder)."""

    scheme: str
    conn_id: str | None
    bucket: str
    path: str

    @classmethod
    def parse(cls, uri: str) -> StorageRoot:
        parts = urlsplit(uri)
        scheme = parts.scheme.lower()
        if scheme == "file":
            return cls("file", None, "", unquote(parts.path).rstrip("/") or "/")
        if scheme == "s3":
            conn_id, _, bucket = parts.netloc.rpartition("@")
            return cls("s3", conn_id or None, bucket, parts.path.strip("/"))
        raise MediaPathError(f"storage URI {uri!r} is neither file:// nor s3://")

    def key_of(self, uri: object) -> str | None:
        """The key of an object URI relative to this root, or None when it lies elsewhere or is
        not a servable media path: an index document's URI is data, and one bad URI must cost
        its frame's image, not the whole search."""
        if not uri or not isinstance(uri, str):
            return None
        try:
            other = StorageRoot.parse(uri)
        except ValueError:  # MediaPathError, or urlsplit's "Invalid IPv6 URL"
            return None
        if other.scheme != self.scheme or other.bucket != self.bucket:
            return None
        base = self.path.rstrip("/")
        prefix = base + "/" if base else ("/" if self.scheme == "file" else "")
        if not other.path.startswith(prefix):
            return None
        key = other.path[len(prefix) :]
        try:
            return key if _safe_key(key) == key else None
        except MediaPathError:
            return None


def _safe_key(key: str) -> str:
    """The key if it is a plain relative path to a media file, else MediaPathError."""
    if not key or key.startswith("/") or "\\" in key or "\x00" in key:
        raise MediaPathError("not a media path under the storage root")
    parts = key.split("/")
    if any(part in ("", ".", "..") for part in parts) or posixpath.normpath(key) != key:
        raise MediaPathError("not a media path under the storage root")
    if posixpath.splitext(key)[1].lower() not in MEDIA_TYPES:
        raise MediaPathError("only frames and clips (.jpg, .png, .mp4) are served")
    return key


def media_type(key: str) -> str:
    return MEDIA_TYPES[posixpath.splitext(key)[1].lower()]


def local_file(root: StorageRoot, key: str) -> Path:
    """The file behind `key`, resolved (symlinks too) and checked to be inside the root."""
    key = _safe_key(key)
    base = Path(root.path).resolve()
    target = (base / key).resolve()
    if not target.is_relative_to(base):
        raise MediaPathError("not a media path under the storage root")
    if not target.is_file():
        raise FileNotFoundError(key)
    return target


@cache
def _s3_hook(conn_id: str):
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    return S3Hook(aws_conn_id=conn_id)


@cache
def media_origins(root: StorageRoot) -> tuple[str, ...]:
    """The origins the browser fetches frames and clips from, for the page's CSP.

    A file:// root is streamed by the app itself ('self'). An S3 root redirects to presigned URLs,
    whose origin (endpoint, bucket host, region) is whatever the root's connection signs: so a
    probe key is presigned (no network call) and its origin taken. Nothing when it cannot be
    signed (media would fail anyway); never any https: origin.
    """
    if root.scheme != "s3":
        return ()
    from airflow.sdk.exceptions import AirflowException
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        url = presigned_url(root, "csp-probe.jpg", expires_s=60)
    except (AirflowException, BotoCoreError, ClientError, RuntimeError):  # no connection or credentials
        log.warning("cannot presign for the storage root s3://%s: no media origin in the CSP", root.bucket)
        return ()
    parts = urlsplit(url)
    return (f"{parts.scheme}://{parts.netloc}",) if parts.scheme in ("http", "https") else ()


def presigned_url(root: StorageRoot, key: str, expires_s: int = PRESIGN_EXPIRES_S) -> str:
    """A time-limited GET URL for `key` under an S3 root, signed with the root's connection."""
    key = _safe_key(key)
    object_key = f"{root.path}/{key}" if root.path else key
    hook = _s3_hook(root.conn_id or aws_conn_id())
    url = hook.generate_presigned_url(
        client_method="get_object",
        params={"Bucket": root.bucket, "Key": object_key},
        expires_in=expires_s,
    )
    if not url:
        raise RuntimeError(f"could not presign s3://{root.bucket}/{object_key}")
    return url


VIDEO_TYPES = {".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/quicktime", ".webm": "video/webm"}


@dataclass(frozen=True)
class SourceVideo:
    """Where a video's playable file is: a local path (streamed with ranges) or a presigned URL."""

    path: Path | None = None
    url: str | None = None
    media_type: str = "video/mp4"


def source_video(uri: object) -> SourceVideo:
    """The playable file behind a video document's URI (its source, or a proxy the document names).

    The URI is the index's, never the request's; still only a video file is served: a file:// path
    to an existing regular file with a video suffix, or an s3:// object presigned with the URI's own
    connection id (else the default AWS connection).
    """
    if not uri or not isinstance(uri, str):
        raise MediaPathError("the video has no source URI")
    try:
        parts = urlsplit(uri)
    except ValueError:
        raise MediaPathError("the video's source URI is malformed") from None
    scheme = parts.scheme.lower()
    suffix = posixpath.splitext(unquote(parts.path))[1].lower()
    if suffix not in VIDEO_TYPES:
        raise MediaPathError("only video files (.mp4, .m4v, .mov, .webm) are played")
    kind = VIDEO_TYPES[suffix]
    if scheme == "file":
        path = Path(unquote(parts.path)).resolve()
        if not path.is_file():
            raise FileNotFoundError(uri)
        return SourceVideo(path=path, media_type=kind)
    if scheme == "s3":
        conn_id, _, bucket = parts.netloc.rpartition("@")
        key = parts.path.lstrip("/")
        if not bucket or not key:
            raise MediaPathError("the video's source URI names no object")
        hook = _s3_hook(conn_id or aws_conn_id())
        url = hook.generate_presigned_url(
            client_method="get_object",
            params={"Bucket": bucket, "Key": key},
            expires_in=PRESIGN_EXPIRES_S,
        )
        if not url:
            raise RuntimeError(f"could not presign s3://{bucket}/{key}")
        return SourceVideo(url=url, media_type=kind)
    raise MediaPathError(f"a {scheme or 'schemeless'} source URI cannot be played")
