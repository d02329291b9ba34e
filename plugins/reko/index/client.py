"""OpenSearch access through an Airflow connection, and the index names of the contract."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from reko.config import REPO_ROOT, index_prefix, opensearch_conn_id

if TYPE_CHECKING:
    from airflow.providers.opensearch.hooks.opensearch import OpenSearchHook
    from opensearchpy import OpenSearch

log = logging.getLogger(__name__)
TEMPLATE_DIR = REPO_ROOT / "include" / "index_templates"
INDEX_KINDS = ("detections", "segments", "passes", "videos", "clips", "faces")
AUTH_MODES = ("basic", "sigv4")


@dataclass(frozen=True)
class IndexNames:
    """The indices of the contract, under one prefix."""

    prefix: str

    @property
    def detections(self) -> str:
        return f"{self.prefix}-detections"

    @property
    def segments(self) -> str:
        return f"{self.prefix}-segments"

    @property
    def passes(self) -> str:
        return f"{self.prefix}-passes"

    @property
    def videos(self) -> str:
        return f"{self.prefix}-videos"

    @property
    def clips(self) -> str:
        return f"{self.prefix}-clips"

    @property
    def faces(self) -> str:
        """One document per face (biometric data: only runs that ask for faces write here)."""
        return f"{self.prefix}-faces"

    @property
    def leases(self) -> str:
        """Internal: which run is working on which video (`reko.index.lease`)."""
        return f"{self.prefix}-leases"

    @classmethod
    def current(cls) -> IndexNames:
        return cls(index_prefix())


def auth_mode(extra: dict) -> str:
    """How an OpenSearch connection authenticates: extra `auth` = `basic` (default) or `sigv4`."""
    mode = str(extra.get("auth") or "basic").strip().lower()
    if mode not in AUTH_MODES:
        raise ValueError(f"OpenSearch connection extra auth={extra.get('auth')!r} is not one of {AUTH_MODES}")
    return mode


def import_opensearch_sync_only() -> None:
    """Import opensearch-py without its asyncio client, which reko never uses.

    opensearch-py imports `AsyncOpenSearch`, and with it aiohttp, whenever aiohttp is installed
    (Airflow installs it). In a task process (forked from a frozen scheduler heap) that is ~0.13
    of the ~0.21 CPU-s the import costs. opensearch-py's own fallback for a missing aiohttp is
    taken for the one import, and aiohttp stays importable afterwards. Nothing changes where
    either is already imported.
    """
    if "opensearchpy" in sys.modules or "aiohttp" in sys.modules:
        return
    sys.modules["aiohttp"] = None  # type: ignore[assignment]  # `import aiohttp` -> ImportError
    try:
        import opensearchpy  # noqa: F401
    finally:
        del sys.modules["aiohttp"]


def get_hook(conn_id: str | None = None) -> OpenSearchHook:
    """The hook the connection asks for: the provider's (basic auth/TLS), or SigV4 for AWS.

    A connection with extra `"auth": "sigv4"` gets `reko.aws.opensearch.AwsOpenSearchHook`.
    """
    import_opensearch_sync_only()
    from airflow.providers.opensearch.hooks.opensearch import OpenSearchHook

    conn_id = conn_id or opensearch_conn_id()
    hook = OpenSearchHook(open_search_conn_id=conn_id, log_query=False)
    if auth_mode(hook.conn.extra_dejson) == "sigv4":
        from reko.aws.opensearch import AwsOpenSearchHook

        return AwsOpenSearchHook(open_search_conn_id=conn_id, log_query=False)
    return hook


def get_client(conn_id: str | None = None) -> OpenSearch:
    """A client from the Airflow connection: host, port, TLS, and basic auth or AWS SigV4."""
    return get_hook(conn_id).client


@cache
def _template_text(kind: str) -> str:
    return (TEMPLATE_DIR / f"{kind}.json").read_text()


def index_template(kind: str, prefix: str) -> dict:
    """The shipped template for `kind`, its patterns bound to `prefix`."""
    return json.loads(_template_text(kind).replace("{{prefix}}", prefix))


def ensure_templates(client: OpenSearch, names: IndexNames) -> None:
    """Install the templates and create the indices (idempotent), so mappings are never guessed.

    An index created by an older release gets the template's new fields added to its mapping
    (additive changes only; OpenSearch refuses a changed field type, and so does this).
    """
    for kind in INDEX_KINDS:
        template = index_template(kind, names.prefix)
        try:
            client.indices.put_index_template(name=f"{names.prefix}-{kind}", body=template)
        except Exception as exc:  # only a cluster without k-NN is let through
            if kind != "faces" or "knn" not in str(exc).lower():
                raise
            log.warning("no faces index: this cluster has no k-NN plugin (%s)", type(exc).__name__)
            continue
        index = getattr(names, kind)
        if not client.indices.exists(index=index):
            client.indices.create(index=index, params={"ignore": 400})
        else:
            client.indices.put_mapping(index=index, body=template["template"]["mappings"])


def search_pages(client: OpenSearch, index: str, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every hit of a sorted search, page by page with search_after (page 1,000 costs what page 1 does).

    `body` needs `size` and a `sort` that is unique per document; it is not modified.
    """
    body = dict(body)
    while True:
        hits = client.search(index=index, body=body)["hits"]["hits"]
        yield from hits
        if len(hits) < body["size"]:
            return
        body["search_after"] = hits[-1]["sort"]
