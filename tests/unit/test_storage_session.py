"""The storage clients' requests session reads proxy and CA settings from the environment once
per host (not before every request) and answers exactly as requests itself would."""

from __future__ import annotations

import pytest
import requests

from amlport.storage.azure_transport import StorageSession

URLS = [
    "https://acct.blob.core.windows.net/azureml/ExperimentRun/x.txt?comp=list",
    "https://acct.blob.core.windows.net/other/y",
    "http://127.0.0.1:10000/devstoreaccount1/c/z",
    "https://other.blob.core.chinacloudapi.cn/c/z",
]
SETTINGS = [
    (None, False, True, None),
    ({}, True, True, None),
    ({"https": "http://p:1"}, True, False, None),
]


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"HTTPS_PROXY": "http://proxy.example:3128", "HTTP_PROXY": "http://proxy.example:3128"},
        {"HTTPS_PROXY": "http://proxy.example:3128", "NO_PROXY": ".core.windows.net,127.0.0.1"},
        {"REQUESTS_CA_BUNDLE": "/etc/ssl/corp-ca.pem"},
        {"CURL_CA_BUNDLE": "/etc/ssl/curl-ca.pem", "no_proxy": "*"},
    ],
    ids=["plain", "proxy", "no-proxy", "ca-bundle", "curl-bundle"],
)
def test_settings_are_what_requests_would_use(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "ALL_PROXY", "REQUESTS_CA_BUNDLE",
                 "CURL_CA_BUNDLE"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    ours, theirs = StorageSession(), requests.Session()
    for _ in range(2):  # the second round is answered from what the first one read
        for url in URLS:
            for proxies, stream, verify, cert in SETTINGS:
                got = ours.merge_environment_settings(url, proxies, stream, verify, cert)
                want = theirs.merge_environment_settings(url, proxies, stream, verify, cert)
                assert got == want, (url, proxies)


def test_the_environment_is_read_once_per_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://first.example:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    session = StorageSession()
    first = session.merge_environment_settings(URLS[0], {}, False, True, None)
    monkeypatch.setenv("HTTPS_PROXY", "http://second.example:3128")
    again = session.merge_environment_settings(URLS[1], {}, False, True, None)  # same host
    other = session.merge_environment_settings(URLS[3], {}, False, True, None)  # a new one
    assert first["proxies"]["https"] == again["proxies"]["https"] == "http://first.example:3128"
    assert other["proxies"]["https"] == "http://second.example:3128"
    again["proxies"]["https"] = "changed by a caller"  # each caller gets its own copy
    assert session.merge_environment_settings(URLS[0], {}, False, True, None) == first
