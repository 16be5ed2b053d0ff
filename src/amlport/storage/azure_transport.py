"""The SDK's side of amlport's storage clients: transport, session and pipeline retry.

Kept apart from ``azure_location`` (locations and credentials) and ``retry`` (the rules and
the count) so that those two import neither azure-core, azure-storage-blob nor requests:
amlport's own listing client (``azure_list``) sends the first request of a keyed, SAS or
anonymous source before the SDK is loaded (docs/design/0005, "Own listing client (A,
session 10)"). Everything here is loaded by the first SDK client a command builds.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import requests
from azure.core.exceptions import AzureError, ServiceRequestError, ServiceResponseError
from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.transport import RequestsTransport
from azure.storage.blob import ExponentialRetry
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from amlport.storage.retry import (
    READ_METHODS,
    RETRIED_STATUSES,
    CountingRetry,
    is_dns_failure,
    retry_after_seconds,
)

READ_BLOCK_SIZE = 1 << 20


class PipelineRetry(ExponentialRetry):
    """``ExponentialRetry`` that also retries 429, honours ``Retry-After`` and counts in its
    ``CountingRetry`` (``rules``), with the rules' backoff."""

    def __init__(self, rules: CountingRetry) -> None:
        cfg = rules.config
        super().__init__(
            initial_backoff=cfg.initial_backoff,  # type: ignore[arg-type]  # floats work
            increment_base=cfg.increment_base,  # type: ignore[arg-type]
            retry_total=cfg.total,
            random_jitter_range=cfg.jitter,  # type: ignore[arg-type]
            retry_connect=min(cfg.connect_total, cfg.total),
            retry_read=cfg.total,
            retry_status=cfg.total,
        )
        self.rules = rules

    def get_backoff_time(self, settings: dict[str, Any]) -> float:
        return self.rules.backoff(int(settings["count"]))

    def send(self, request: PipelineRequest) -> PipelineResponse:
        settings: dict[str, Any] = self.configure_retries(request)
        transport = request.context.transport
        write = str(request.http_request.method).upper() not in READ_METHODS
        while True:
            try:
                response: PipelineResponse = self.next.send(request)
            except AzureError as err:
                if not _is_transient(err) or not self._may_retry(settings, request, err=err):
                    raise
                self.rules.note(None, write=write)
                self.sleep(settings, transport)
                continue
            status = response.http_response.status_code
            if status in RETRIED_STATUSES and self._may_retry(settings, request, response=response):
                self.rules.note(status, write=write)
                self._sleep_after(settings, transport, response)
                continue
            break
        if settings["history"]:
            response.context["history"] = settings["history"]
        response.http_response.location_mode = settings["mode"]
        return response

    def _may_retry(
        self,
        settings: dict[str, Any],
        request: PipelineRequest,
        *,
        response: PipelineResponse | None = None,
        err: AzureError | None = None,
    ) -> bool:
        return bool(
            self.increment(
                settings,
                request=request.http_request,
                response=response.http_response if response else None,
                error=err,
            )
        )

    def _sleep_after(
        self, settings: dict[str, Any], transport: Any, response: PipelineResponse
    ) -> None:
        retry_after = retry_after_seconds(response.http_response.headers)
        backoff = self.rules.delay(int(settings["count"]), retry_after)
        if backoff > 0:
            transport.sleep(backoff)


def _is_transient(err: AzureError) -> bool:
    """Connection trouble is worth a retry; a bad credential or a DNS failure is not."""
    return isinstance(err, (ServiceRequestError, ServiceResponseError)) and not is_dns_failure(err)


class SdkAuth(requests.auth.AuthBase):
    """Leaves requests as the SDK signed them (and so keeps requests away from ~/.netrc)."""

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        return r


class StorageSession(requests.Session):
    """A session that reads the environment's proxy and CA settings once per host.

    Requests reads them before every request (``merge_environment_settings``: it walks the
    whole of ``os.environ`` for ``*_proxy`` names and matches ``NO_PROXY``): 7 % of the CPU
    amlport held the GIL for in an export of 10k small blobs. A storage client talks to one
    or two hosts, so the answer is kept per (scheme, host, and the request's own settings);
    the environment is read when the first request to a host is sent, as before.
    """

    def __init__(self) -> None:
        super().__init__()
        self._merged: dict[tuple[Any, ...], dict[str, Any]] = {}

    def merge_environment_settings(
        self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> dict[str, Any]:
        scheme, netloc = urlsplit(url)[:2]
        key = (scheme, netloc, _frozen(proxies), stream, verify, _frozen(cert))
        merged = self._merged.get(key)
        if merged is None:
            merged = super().merge_environment_settings(url, proxies, stream, verify, cert)
            self._merged[key] = merged
        return {k: dict(v) if isinstance(v, dict) else v for k, v in merged.items()}


def _frozen(value: Any) -> Any:
    """A hashable form of a per-request setting (a dict of proxies, a cert pair)."""
    if isinstance(value, dict):
        return tuple(sorted(value.items()))
    if isinstance(value, list):
        return tuple(value)
    return value


def client_options(
    policy: CountingRetry, max_connections: int, connect_timeout: float, read_timeout: float
) -> dict[str, Any]:
    """Transport and retry options every amlport client shares (callers add their own);
    ``azure_location.client_options`` gives the timeouts (this module imports nothing of
    amlport's storage but ``retry``: no import circle)."""
    session = StorageSession()
    # Retries belong to the storage policy, not urllib3; the pool must cover the workers.
    adapter = HTTPAdapter(
        pool_connections=4,
        pool_maxsize=max_connections,
        max_retries=Retry(total=False, redirect=False, raise_on_status=False),
    )
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    # Requests would look up ~/.netrc before every request (and send what it finds there as
    # Basic auth) unless the session has an auth of its own; storage auth is the SDK's. Proxy
    # settings from the environment still apply.
    session.auth = SdkAuth()
    transport = RequestsTransport(
        session=session,
        session_owner=True,
        connection_timeout=connect_timeout,
        read_timeout=read_timeout,
        # Response bodies in 1 MiB reads instead of azure-core's 4 KiB: a third less CPU on
        # large blobs (docs/benchmarks.md); a stream holds one range (CHUNK_SIZE) anyway.
        connection_data_block_size=READ_BLOCK_SIZE,
    )
    return {"retry_policy": PipelineRetry(policy), "transport": transport}
