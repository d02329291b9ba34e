"""OpenSearch signed with AWS SigV4: Amazon OpenSearch Service (`es`) and Serverless (`aoss`).

The opensearch provider's hook only knows basic auth. This hook keeps its connection type and
extras (host, port, `use_ssl`, `verify_certs`, `timeout`, ...) and adds SigV4 request signing with
credentials from an AWS connection, resolved by the amazon provider's `AwsBaseHook` (keys, role
assumption, web identity, instance profile...). The credentials object stays refreshable: the
signer freezes it per request, so assumed-role credentials renew during a long load.

Select it with the OpenSearch connection's extras (`reko.index.client.get_client` does so):

    {"auth": "sigv4", "aws_conn_id": "aws_default", "region_name": "eu-west-1", "service": "es",
     "use_ssl": true, "verify_certs": true}

`service` is `es` (managed domains, the default) or `aoss` (Serverless collections);
`region_name` defaults to the AWS connection's region; `aws_conn_id` defaults to `aws_default`
(`null` uses boto3's default credential chain).
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.opensearch.hooks.opensearch import OpenSearchHook
from opensearchpy import OpenSearch, RequestsHttpConnection, Urllib3HttpConnection

from reko.index.client import auth_mode

if TYPE_CHECKING:
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
    from botocore.credentials import Credentials
    from opensearchpy import Connection

SIGV4_SERVICES = ("es", "aoss")
DEFAULT_AWS_CONN_ID = "aws_default"


class AwsOpenSearchHook(OpenSearchHook):
    """
    An OpenSearch hook whose client signs every request with AWS SigV4.

    :param open_search_conn_id: OpenSearch connection (host = domain or collection endpoint).
    :param log_query: Whether to log queries (as the provider's hook).
    :param aws_conn_id: AWS connection for credentials; default: extra `aws_conn_id`, else `aws_default`.
    :param region_name: signing region; default: extra `region_name`, else the AWS connection's.
    :param service: `es` or `aoss`; default: extra `service`, else `es`.
    """

    hook_name = "OpenSearch (AWS SigV4)"

    def __init__(
        self,
        open_search_conn_id: str = OpenSearchHook.default_conn_name,
        log_query: bool = False,
        open_search_conn_class: type[Connection] | None = RequestsHttpConnection,
        *,
        aws_conn_id: str | None = None,
        region_name: str | None = None,
        service: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            open_search_conn_id=open_search_conn_id,
            log_query=log_query,
            open_search_conn_class=open_search_conn_class or RequestsHttpConnection,
            **kwargs,
        )
        extra = self.conn.extra_dejson
        if auth_mode(extra) != "sigv4":
            raise ValueError(
                f"connection {open_search_conn_id!r} does not ask for SigV4: set extra"
                ' "auth": "sigv4" (AwsOpenSearchHook signs every request)'
            )
        if self.conn.login or self.conn.password:
            raise ValueError(
                f"connection {open_search_conn_id!r} has both SigV4 and a login/password:"
                " remove the login and password (AWS credentials come from the AWS connection)"
            )
        # extra "aws_conn_id": null means boto3's default chain (environment, instance profile...)
        self.aws_conn_id = aws_conn_id or extra.get("aws_conn_id", DEFAULT_AWS_CONN_ID)
        self.service = str(service or extra.get("service") or "es")
        if self.service not in SIGV4_SERVICES:
            raise ValueError(
                f"connection {open_search_conn_id!r}: service {self.service!r} is not one of"
                f" {SIGV4_SERVICES} (es = OpenSearch Service domain, aoss = Serverless collection)"
            )
        self._region_name = region_name or extra.get("region_name")
        self.signer_class = _signer_class(self.connection_class)

    @cached_property
    def aws_hook(self) -> AwsBaseHook:
        from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

        return AwsBaseHook(aws_conn_id=self.aws_conn_id, region_name=self._region_name)

    @property
    def region_name(self) -> str:
        region = self._region_name or self.aws_hook.region_name
        if not region:
            raise ValueError(
                f"no AWS region for connection {self.conn_id!r}: set extra region_name on it"
                f" or region_name on the AWS connection {self.aws_conn_id!r}"
            )
        return region

    def get_credentials(self) -> Credentials:
        """Refreshable credentials of the AWS connection; their secrets are masked in task logs."""
        from airflow.sdk.log import mask_secret

        credentials = self.aws_hook.get_session(region_name=self.region_name).get_credentials()
        if credentials is None:
            raise ValueError(
                f"no AWS credentials found for connection {self.aws_conn_id!r}"
                " (nor in the environment, config files or instance metadata)"
            )
        frozen = credentials.get_frozen_credentials()
        mask_secret(frozen.secret_key)
        if frozen.token:
            mask_secret(frozen.token)
        return credentials

    def signer(self) -> Any:
        """The `http_auth` object for the client: signs with service and region on every request."""
        return self.signer_class(self.get_credentials(), self.region_name, self.service)

    @cached_property
    def client(self) -> OpenSearch:
        """The provider's client arguments, with SigV4 in place of basic auth."""
        args: dict[str, Any] = {
            "hosts": [{"host": self.conn.host, "port": self.conn.port or 443}],
            "use_ssl": self.use_ssl,
            "verify_certs": self.verify_certs,
            "connection_class": self.connection_class,
            "http_auth": self.signer(),
        }
        optional = {
            "scheme": self.scheme,
            "url_prefix": self.url_prefix,
            "timeout": self.timeout,
            "headers": self.headers,
            "http_compress": self.http_compress,
            "opaque_id": self.opaque_id,
        }
        args.update({key: value for key, value in optional.items() if value is not None and value != ""})
        return OpenSearch(**args)

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        behaviour = super().get_ui_field_behaviour()
        behaviour["hidden_fields"] = [*behaviour.get("hidden_fields", []), "login", "password"]
        behaviour["placeholders"]["extra"] = (
            '{"auth": "sigv4", "aws_conn_id": "aws_default", "region_name": "eu-west-1",'
            ' "service": "es", "use_ssl": true, "verify_certs": true}'
        )
        return behaviour


def _signer_class(connection_class: type[Connection]) -> type:
    """The signer matching the HTTP library: requests and urllib3 take different auth objects."""
    from opensearchpy import RequestsAWSV4SignerAuth, Urllib3AWSV4SignerAuth

    if issubclass(connection_class, RequestsHttpConnection):
        return RequestsAWSV4SignerAuth
    if issubclass(connection_class, Urllib3HttpConnection):
        return Urllib3AWSV4SignerAuth
    raise TypeError(
        f"SigV4 needs RequestsHttpConnection or Urllib3HttpConnection, not {connection_class.__name__}"
    )
