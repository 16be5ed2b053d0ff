"""A local HTTPS stand-in for Azure Resource Manager, replaying the official REST API examples.

``ReplayServer`` listens on 127.0.0.1 (a free port) with a throw-away self-signed certificate
made here with ``cryptography``; point an SDK client at it with ``base_url=server.url`` and
trust ``server.ca_file`` (``connection_verify=`` or ``REQUESTS_CA_BUNDLE``). It answers only the
requests a test registered (``serve``), matching method + path (case-insensitive, query and
api-version ignored, as ARM's own routing is); anything else gets an ARM-style 404 and is
recorded in ``unexpected``, which the fixtures assert empty at teardown.

``Deployment`` builds the responses of one healthy workspace deployment from the example files
copied under ``tests/arm-replay/`` (MIT, see its README for what each file answers and which
placeholders are filled here), so a test can flip one fact and serve the result.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import hashlib
import ipaddress
import json
import os
import re
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

EXAMPLES = Path(__file__).resolve().parents[1] / "arm-replay" / "specification"
# The storage suffix of the replayed cloud: ``https://<account>.blob.core.replay.test:<port>``
# (``.test`` is reserved for testing; ``resolve_replay_names`` sends it to 127.0.0.1). Like
# every Azure cloud's suffix it starts with ``core.``: azure-storage-blob finds the account
# name of a shared-key client only in a host ``<account>.blob.core.…``.
STORAGE_DOMAIN = "core.replay.test"
OR_LIST = "StorageAccountListObjectReplicationPolicies.json"
WS_PROVIDER = "Microsoft.MachineLearningServices/workspaces"
ST = "storage/resource-manager/Microsoft.Storage/stable"
AU = "resources/resource-manager/Microsoft.Authorization/stable/2020-05-01/examples"
KV = "keyvault/resource-manager/Microsoft.KeyVault/stable/2023-07-01/examples"
ML = "machinelearningservices/resource-manager/Microsoft.MachineLearningServices"


# --- the server ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    query: str
    body: bytes


Handler = Callable[[Seen], Reply]


def error(status: int, code: str, message: str) -> Reply:
    """An ARM error body, as the SDKs turn it into ``HttpResponseError``."""
    return Reply(status, {"error": {"code": code, "message": message}})


@dataclass
class ReplayServer:
    url: str
    ca_file: Path
    key_file: Path
    routes: dict[tuple[str, str], Handler] = field(default_factory=dict)
    patterns: list[tuple[str, re.Pattern[str], Handler]] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    _httpd: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def serve(self, method: str, path: str, reply: Reply | Handler | Any) -> None:
        """Answer ``method path`` with ``reply`` (a Reply, a handler, or a 200 JSON body)."""
        if callable(reply):
            handler: Handler = reply
        else:
            fixed = reply if isinstance(reply, Reply) else Reply(200, reply)
            handler = lambda _seen: fixed  # noqa: E731
        self.routes[(method.upper(), _norm(path))] = handler

    def serve_pattern(self, method: str, pattern: str, handler: Handler) -> None:
        """Answer ``method`` on every path that fully matches ``pattern`` (case-insensitive)."""
        self.patterns.append((method.upper(), re.compile(pattern, re.IGNORECASE), handler))

    def serve_all(self, bodies: dict[str, Any]) -> None:
        for path, body in bodies.items():
            self.serve("GET", path, body)

    def reset(self) -> None:
        with self._lock:
            self.routes.clear()
            self.patterns.clear()
            self.seen.clear()
            self.unexpected.clear()

    def paths_seen(self, method: str = "GET") -> list[str]:
        return [s.path for s in self.seen if s.method == method]

    def answer(self, seen: Seen) -> Reply:
        with self._lock:
            self.seen.append(seen)
            handler = self.routes.get((seen.method, _norm(seen.path))) or next(
                (h for m, rx, h in self.patterns if m == seen.method and rx.fullmatch(seen.path)),
                None,
            )
            if handler is None:
                self.unexpected.append(f"{seen.method} {seen.path}?{seen.query}")
        if handler is None:
            return error(404, "ReplayUnexpectedRequest", f"no reply for {seen.path}")
        return handler(seen)

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()


def _norm(path: str) -> str:
    return "/" + "/".join(p for p in path.lower().split("/") if p)


def start_replay(folder: Path) -> ReplayServer:
    """Start a replay server whose certificate (and CA file) lives in ``folder``."""
    cert, key = _self_signed(folder)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = ReplayServer(url="", ca_file=cert, key_file=key)

    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _reply(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            reply = server.answer(Seen(self.command, parts.path, parts.query, body))
            data = json.dumps(reply.body).encode() if reply.body is not None else b""
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("x-ms-request-id", "replay")
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = _reply

        def log_message(self, format: str, *args: Any) -> None:
            return None  # quiet: the test reads ``server.seen``

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    server._httpd = httpd
    server.url = f"https://127.0.0.1:{httpd.server_address[1]}"
    threading.Thread(target=httpd.serve_forever, name="arm-replay", daemon=True).start()
    return server


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A one-day self-signed certificate for IP 127.0.0.1, localhost and
    ``*.blob.core.replay.test`` (the replayed cloud's storage, ``start_tls_azurite``), usable as its
    own trust anchor."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "amlport arm replay")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.DNSName("localhost"),
                    x509.DNSName(f"*.blob.{STORAGE_DOMAIN}"),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / "replay-ca.pem", folder / "replay-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class FixedToken:
    """A credential for the real SDK clients: a static, unsigned JWT whose ``aud`` is the
    scope's resource. azure-ai-ml decodes the ``https://ml.azure.com/.default`` token of a job
    submission (without verifying it) and refuses one of another audience; the replay server
    does not look at tokens at all."""

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        return AccessToken(_unsigned_jwt(scopes), int(dt.datetime.now().timestamp()) + 3600)

    def get_token_info(self, *scopes: str, options: Any = None) -> Any:
        from azure.core.credentials import AccessTokenInfo

        return AccessTokenInfo(_unsigned_jwt(scopes), int(dt.datetime.now().timestamp()) + 3600)


def _unsigned_jwt(scopes: tuple[str, ...]) -> str:
    def part(doc: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()

    audience = scopes[0].removesuffix("/.default") if scopes else "replay"
    claims = {"aud": audience, "tid": "00000000-0000-0000-0000-000000000000", "oid": "replay"}
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


# --- one deployment, built from the examples ----------------------------------------------------


def example(relative: str) -> dict[str, Any]:
    """The 200 (or 201) response body of one copied example file."""
    doc = json.loads((EXAMPLES / relative).read_text(encoding="utf-8"))
    responses = doc["responses"]
    return copy.deepcopy((responses.get("200") or responses["201"])["body"])


@dataclass
class Deployment:
    """A healthy workspace deployment as ARM describes it; every fact passes its rule.

    ``bodies()`` maps each request path to the response body; tests change one body (or drop a
    path and serve an error) to flip one fact.
    """

    subscription: str
    resource_group: str
    account: str
    workspace: str
    workspace_guid: str
    containers: tuple[str, ...]
    registered_model_uris: tuple[str, ...] = ()
    sku: str = "Standard_GZRS"  # the example says Standard_GRS

    @property
    def rg_id(self) -> str:
        return f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"

    @property
    def storage_id(self) -> str:
        return f"{self.rg_id}/providers/Microsoft.Storage/storageAccounts/{self.account}"

    @property
    def workspace_id(self) -> str:
        return f"{self.rg_id}/providers/{WS_PROVIDER}/{self.workspace}"

    @property
    def vault_id(self) -> str:
        return f"{self.rg_id}/providers/Microsoft.KeyVault/vaults/kv-{self.workspace}"

    def storage_account(self) -> dict[str, Any]:
        body = example(f"{ST}/2026-09-01/examples/StorageAccountGetProperties.json")
        body["id"], body["name"] = self.storage_id, self.account
        body["sku"] = {"name": self.sku, "tier": "Standard"}
        return body

    def blob_service(self) -> dict[str, Any]:
        body = example(f"{ST}/2025-08-01/examples/BlobServicesGet.json")
        body["id"] = f"{self.storage_id}/blobServices/default"
        props = body["properties"]
        props["deleteRetentionPolicy"]["allowPermanentDelete"] = False
        # No published example carries these two; names from the SDK models (README).
        props["containerDeleteRetentionPolicy"] = {"enabled": True, "days": 14}
        props["restorePolicy"] = {"enabled": True, "days": 6}
        return body

    def permanent_delete_service(self) -> dict[str, Any]:
        """The allowPermanentDelete example, as this account's service properties."""
        body = example(f"{ST}/2026-09-01/examples/BlobServicesPutAllowPermanentDelete.json")
        body["id"] = f"{self.storage_id}/blobServices/default"
        good = self.blob_service()["properties"]
        return {**body, "properties": {**good, **body["properties"]}}

    def policy_ids(self) -> list[str]:
        listed = example(
            f"{ST}/2026-09-01/examples/StorageAccountListObjectReplicationPolicies.json"
        )
        return [p["name"] for p in listed["value"]]

    def policy_list(self) -> dict[str, Any]:
        body = example(f"{ST}/2026-09-01/examples/{OR_LIST}")
        for item in body["value"]:
            item["id"] = f"{self.storage_id}/objectReplicationPolicies/{item['name']}"
            item["properties"]["sourceAccount"] = self.account
        return body

    def policy(self, policy_id: str, containers: tuple[str, ...]) -> dict[str, Any]:
        body = example(f"{ST}/2025-08-01/examples/StorageAccountGetObjectReplicationPolicy.json")
        body["id"] = f"{self.storage_id}/objectReplicationPolicies/{policy_id}"
        body["name"] = body["properties"]["policyId"] = policy_id
        body["properties"]["sourceAccount"] = self.account
        template = body["properties"]["rules"][0]
        body["properties"]["rules"] = [
            {**template, "sourceContainer": c, "destinationContainer": c} for c in containers
        ]
        return body

    def lock(self, scope: str, name: str, level: str) -> dict[str, Any]:
        item = example(f"{AU}/ManagementLocks_GetAtResourceLevel.json")
        item["id"] = f"{scope}/providers/Microsoft.Authorization/locks/{name}"
        item["name"], item["properties"]["level"] = name, level
        return item

    def locks(self) -> dict[str, Any]:
        """Locks at the four scopes: subscription (none here), resource group, workspace and
        storage account. The RG lock alone covers both resources."""
        body = example(f"{AU}/ManagementLocks_ListAtSubscriptionLevel.json")
        body["value"] = [
            self.lock(self.rg_id, "rg-cannot-delete", "CanNotDelete"),
            self.lock(self.workspace_id, "ws-cannot-delete", "CanNotDelete"),
            self.lock(self.storage_id, "st-cannot-delete", "CanNotDelete"),
        ]
        return body

    def workspace_body(self) -> dict[str, Any]:
        body = example(f"{ML}/stable/2024-04-01/examples/Workspace/get.json")
        text = json.dumps(body)
        text = text.replace("00000000-1111-2222-3333-444444444444", self.subscription)
        text = text.replace(
            "/resourceGroups/workspace-1234/", f"/resourceGroups/{self.resource_group}/"
        )
        body = json.loads(text)
        body["id"], body["name"] = self.workspace_id, self.workspace
        props = body["properties"]
        props["storageAccount"] = self.storage_id  # example: another group's account
        props["keyVault"] = self.vault_id
        props["workspaceId"] = self.workspace_guid  # absent from every example
        props["hbiWorkspace"] = True  # example: false
        return body

    def vault(self) -> dict[str, Any]:
        body = example(f"{KV}/getVault.json")
        body["id"], body["name"] = self.vault_id, f"kv-{self.workspace}"
        listed = example(f"{KV}/listVaultByResourceGroup.json")["value"][0]["properties"]
        body["properties"]["enableSoftDelete"] = listed["enableSoftDelete"]
        body["properties"]["softDeleteRetentionInDays"] = 90  # no example carries these two
        body["properties"]["enablePurgeProtection"] = True
        return body

    def model_containers(self) -> dict[str, Any]:
        """No container-list example is published; the container shape is the version list's
        item with its name (documented in tests/arm-replay/README.md)."""
        return {
            "value": [
                {"id": f"{self.workspace_id}/models/{name}", "name": name, "properties": {}}
                for name in self._model_names()
            ]
        }

    def _model_names(self) -> list[str]:
        return [f"model-{i}" for i, _ in enumerate(self.registered_model_uris)]

    def model_versions(self, index: int) -> dict[str, Any]:
        body = example(f"{ML}/preview/2023-08-01-preview/examples/Workspace/ModelVersion/list.json")
        body.pop("nextLink")  # "string": the pager would request GET /string
        item = body["value"][0]
        name = self._model_names()[index]
        item["id"], item["name"] = f"{self.workspace_id}/models/{name}/versions/1", "1"
        item["properties"]["modelUri"] = self.registered_model_uris[index]
        return body

    def bodies(self) -> dict[str, Any]:
        sa, ws = self.storage_id, self.workspace_id
        out: dict[str, Any] = {
            sa: self.storage_account(),
            f"{sa}/blobServices/default": self.blob_service(),
            f"{sa}/objectReplicationPolicies": self.policy_list(),
            f"/subscriptions/{self.subscription}/providers/Microsoft.Authorization/locks": (
                self.locks()
            ),
            ws: self.workspace_body(),
            self.vault_id: self.vault(),
            f"{ws}/models": self.model_containers(),
        }
        for policy_id in self.policy_ids():
            out[f"{sa}/objectReplicationPolicies/{policy_id}"] = self.policy(
                policy_id, self.containers
            )
        for i, name in enumerate(self._model_names()):
            out[f"{ws}/models/{name}/versions"] = self.model_versions(i)
        return out


BIKESHARE_SUB = "44da9a8c-1d8c-4090-9656-1d26885f3c81"
BIKESHARE_RG = "rg-bikeshare-dev"
BIKESHARE_WS = "mlw-bikeshare-dev"
BIKESHARE_ACCOUNT = "stbikesharesdk4417"
BIKESHARE_GUID = "ecd26aa2-5440-4e86-8e7f-527cb96ef823"


def bikeshare_deployment(
    account: str = BIKESHARE_ACCOUNT, guid: str = BIKESHARE_GUID, **kw: Any
) -> Deployment:
    """The bikeshare workspace's healthy deployment in storage ``account`` with workspace
    ``guid`` (its containers: the blobstore of ``guid`` and ``azureml``); ``kw`` overrides
    any other field (``sku``, ``registered_model_uris``…)."""
    containers = (f"azureml-blobstore-{guid}", "azureml")
    base: dict[str, Any] = {
        "subscription": BIKESHARE_SUB,
        "resource_group": BIKESHARE_RG,
        "account": account,
        "workspace": BIKESHARE_WS,
        "workspace_guid": guid,
        "containers": containers,
    }
    return Deployment(**{**base, **kw})


def lock_scope_paths(d: Deployment) -> Iterator[str]:
    """The per-scope lock list paths for the resource group, the storage account and the
    workspace (``list_at_resource_group_level``, ``list_at_resource_level`` with an empty
    parent path, hence ``Microsoft.Storage//storageAccounts`` on the wire; the server ignores
    empty segments)."""
    for scope in (d.rg_id, d.storage_id, d.workspace_id):
        yield f"{scope}/providers/Microsoft.Authorization/locks"


# --- the workspace's asset registry (live registration) ----------------------------------------

_WS_EXAMPLES = f"{ML}/{{}}/examples/Workspace/{{}}/createOrUpdate.json"
ASSET_EXAMPLES = {
    "models": _WS_EXAMPLES.format("preview/2023-08-01-preview", "ModelVersion"),
    "environments": _WS_EXAMPLES.format("preview/2023-04-01-preview", "EnvironmentVersion"),
    "data": _WS_EXAMPLES.format("preview/2023-04-01-preview", "DataVersionBase"),
    "codes": _WS_EXAMPLES.format("stable/2023-04-01", "CodeVersion"),
    "components": _WS_EXAMPLES.format("stable/2025-12-01", "ComponentVersion"),
}
PENDING_UPLOAD = f"{ML}/stable/2023-04-01/examples/Workspace/CodeVersion/" + (
    "createOrGetStartPendingUpload.json"
)

VERSION_LIST = f"{ML}/stable/2023-04-01/examples/Workspace/CodeVersion/list.json"
DATASTORE = f"{ML}/preview/2024-10-01-preview/examples/Datastore/{{}}.json"
PIPELINE_JOB = f"{ML}/preview/2024-01-01-preview/examples/Job/PipelineJob/createOrUpdate.json"


@dataclass(frozen=True)
class UploadStore:
    """Where ``startPendingUpload`` sends code: a blob account (Azurite in the tests), given
    by its path-style URL, name and key. Each pending upload gets a container of its own
    and a container SAS for it, as the service hands out a temporary blob reference."""

    account_url: str
    account_name: str
    account_key: str

    def pending_upload(self, name: str, version: str) -> tuple[str, str]:
        """(SAS URI, blob URI) of a fresh container for ``name``/``version``."""
        from azure.storage.blob import (
            BlobServiceClient,
            ContainerSasPermissions,
            generate_container_sas,
        )

        digest = hashlib.sha256(f"{name}/{version}".encode()).hexdigest()[:24]
        container = f"code-{digest}"
        service = BlobServiceClient(self.account_url, credential=self.account_key)
        if not service.get_container_client(container).exists():
            service.create_container(container)
        sas = generate_container_sas(
            self.account_name,
            container,
            account_key=self.account_key,
            permission=ContainerSasPermissions(read=True, write=True, list=True, create=True),
            expiry=dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1),
        )
        blob_uri = f"{self.account_url}/{container}"
        return f"{blob_uri}?{sas}", blob_uri


@dataclass(frozen=True)
class BlobDatastore:
    """A workspace datastore on a blob account that azure-ai-ml reaches by name only:
    ``https://<account>.blob.<suffix>`` (the cloud's storage suffix), with the account key
    ``listSecrets`` returns (a TLS Azurite in the tests, ``start_tls_azurite``)."""

    name: str
    account: str
    container: str
    suffix: str
    key: str


@dataclass
class AssetRegistry:
    """A stateful stand-in for ``{WS}/{models|environments|data|codes|components}/{name}/
    versions/{version}``: PUT stores the version (answered with the published createOrUpdate
    example, its placeholders replaced by the request: id = the path, name = the version,
    properties as sent, so a component's ``componentSpec`` is echoed), GET returns it or an ARM
    404, the version list answers newest first and, for code, only the versions whose
    ``hash_sha256`` is the query's ``hash`` (how azure-ai-ml looks up an upload it already
    made). ``POST …/codes/{name}/versions/{v}/startPendingUpload`` answers the published
    example with a SAS URI from ``uploads`` (required for code). ``puts`` counts the
    registrations."""

    workspace_id: str
    uploads: UploadStore | None = None
    datastore: BlobDatastore | None = None
    versions: dict[str, dict[str, Any]] = field(default_factory=dict)
    puts: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    secrets_listed: list[str] = field(default_factory=list)

    def install(self, server: ReplayServer) -> None:
        ws = re.escape(self.workspace_id)
        kinds = "|".join(ASSET_EXAMPLES)
        one = rf"{ws}/(?P<kind>{kinds})/(?P<name>[^/]+)/versions/(?P<version>[^/]+)"
        server.serve_pattern("PUT", one, self._put)
        server.serve_pattern("GET", one, self._get)
        server.serve_pattern("GET", rf"{ws}/(?P<kind>{kinds})/(?P<name>[^/]+)/versions", self._list)
        server.serve_pattern(
            "POST", rf"{ws}/codes/[^/]+/versions/[^/]+/startPendingUpload", self._start_upload
        )
        server.serve_pattern("PUT", rf"{ws}/jobs/[^/]+", self._put_job)
        server.serve_pattern("GET", rf"{ws}/jobs/[^/]+", self._get)
        if self.datastore is not None:  # only then: any other datastore call is unexpected
            ds = f"{self.workspace_id}/datastores/{self.datastore.name}"
            server.serve("GET", ds, self._get_datastore)
            server.serve("POST", f"{ds}/listSecrets", self._list_secrets)

    def seed(self, kind: str, name: str, version: str, properties: dict[str, Any]) -> None:
        """A version the workspace already has (no PUT counted), shaped like a PUT's answer."""
        path = f"{self.workspace_id}/{kind}/{name}/versions/{version}"
        body = example(ASSET_EXAMPLES[kind])
        body["id"], body["name"] = path, version
        body["type"] = f"Microsoft.MachineLearningServices/workspaces/{kind}/versions"
        body["properties"] = properties
        self.versions[self._key(path)] = body

    def _key(self, path: str) -> str:
        return _norm(path)

    def _kind(self, path: str) -> str:
        return path[len(self.workspace_id) + 1 :].split("/", 1)[0].lower()

    def _put(self, seen: Seen) -> Reply:
        request = json.loads(seen.body or b"{}")
        kind = self._kind(seen.path)
        body = example(ASSET_EXAMPLES[kind])
        body["id"], body["name"] = seen.path, seen.path.rsplit("/", 1)[-1]
        body["type"] = f"Microsoft.MachineLearningServices/workspaces/{kind}/versions"
        body["properties"] = dict(request.get("properties") or {})
        if kind == "models":
            body["properties"].setdefault("flavors", {})  # azure-ai-ml reads it as a mapping
        created = self._key(seen.path) not in self.versions
        self.versions[self._key(seen.path)] = body
        self.puts.append(seen.path)
        return Reply(201 if created else 200, body)

    def _get(self, seen: Seen) -> Reply:
        body = self.versions.get(self._key(seen.path))
        if body is None:
            return error(404, "UserError", f"{seen.path} not found")
        return Reply(200, body)

    def _list(self, seen: Seen) -> Reply:
        prefix = self._key(seen.path) + "/"
        query = parse_qs(seen.query)
        if "hash" in query:  # across names: azure-ai-ml reads the name back from the id
            codes = self._key(f"{self.workspace_id}/codes/")
            wanted = query["hash"][0]
            found = [
                b
                for k, b in reversed(self.versions.items())
                if k.startswith(codes) and _inner(b).get("hash_sha256") == wanted
            ]
        else:
            found = [b for k, b in reversed(self.versions.items()) if k.startswith(prefix)]
        if "$top" in query:
            found = found[: int(query["$top"][0])]
        body = example(VERSION_LIST)
        body.pop("nextLink", None)  # "string": the pager would request GET /string
        body["value"] = found
        return Reply(200, body)

    def _put_job(self, seen: Seen) -> Reply:
        """A submitted job: the published example's status (``NotStarted``) over the request's
        properties (its ``services`` placeholders dropped: the SDK would read them as real)."""
        request = json.loads(seen.body or b"{}")
        body = example(PIPELINE_JOB)
        body["id"], body["name"] = seen.path, seen.path.rsplit("/", 1)[-1]
        body["type"] = "Microsoft.MachineLearningServices/workspaces/jobs"
        status = body["properties"]["status"]
        body["properties"] = {**(request.get("properties") or {}), "status": status}
        created = self._key(seen.path) not in self.versions
        self.versions[self._key(seen.path)] = body
        self.puts.append(seen.path)
        return Reply(201 if created else 200, body)

    def _start_upload(self, seen: Seen) -> Reply:
        if self.uploads is None:
            return error(400, "ReplayNoUploadStore", "this test gave the registry no blob store")
        *_, name, _, version, _ = seen.path.split("/")
        sas_uri, blob_uri = self.uploads.pending_upload(name, version)
        body = example(PENDING_UPLOAD)
        request = json.loads(seen.body or b"{}")
        body["pendingUploadType"] = request.get("pendingUploadType", body["pendingUploadType"])
        body["pendingUploadId"] = f"{name}-{version}"
        ref = body["blobReferenceForConsumption"]
        ref["blobUri"], ref["credential"]["sasUri"] = blob_uri, sas_uri
        ref["storageAccountArmId"] = (
            self.workspace_id.split("/providers/")[0]
            + f"/providers/Microsoft.Storage/storageAccounts/{self.uploads.account_name}"
        )
        self.pending.append(seen.path)
        return Reply(200, body)

    def _get_datastore(self, seen: Seen) -> Reply:
        """``Datastore/get.json`` with this datastore's account, container and suffix."""
        ds = self.datastore
        assert ds is not None
        body = example(DATASTORE.format("get"))
        body["id"], body["name"] = seen.path, ds.name
        body["type"] = "Microsoft.MachineLearningServices/workspaces/datastores"
        props = body["properties"]
        props.update(accountName=ds.account, containerName=ds.container, endpoint=ds.suffix)
        props["isDefault"] = ds.name == "workspaceblobstore"
        return Reply(200, body)

    def _list_secrets(self, seen: Seen) -> Reply:
        """``Datastore/listSecrets.json`` with the account's real key (the example's
        ``"string"`` is no base64 key: azure-storage-blob could not sign with it)."""
        assert self.datastore is not None
        body = example(DATASTORE.format("listSecrets"))
        body["key"] = self.datastore.key
        self.secrets_listed.append(seen.path)
        return Reply(200, body)


def _inner(version: dict[str, Any]) -> dict[str, Any]:
    """A version's own ``properties.properties`` (the free-form key/value map)."""
    inner = (version.get("properties") or {}).get("properties")
    return inner if isinstance(inner, dict) else {}


@dataclass(frozen=True)
class TargetWorkspace:
    """The workspace a registration test imports into: its ARM identity and the map file
    that binds a fixture's two datastores to its containers."""

    sub: str
    rg: str
    ws: str
    account: str
    blobstore: str
    artifacts: str
    endpoint: str = "core.windows.net"  # the storage suffix (the map's target.endpoint)

    @property
    def workspace(self) -> str:
        """``--workspace SUB/RG/NAME``."""
        return f"{self.sub}/{self.rg}/{self.ws}"

    @property
    def ws_id(self) -> str:
        return (
            f"/subscriptions/{self.sub}/resourceGroups/{self.rg}/providers/{WS_PROVIDER}/{self.ws}"
        )

    @property
    def target(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "endpoint": self.endpoint,
            "subscription_id": self.sub,
            "resource_group": self.rg,
            "workspace": self.ws,
            "containers": {"blobstore": self.blobstore, "artifacts": self.artifacts},
            "datastores": {"qablob": self.blobstore, "qaartifacts": self.artifacts},
        }

    def write_map(self, path: Path) -> Path:
        import yaml

        doc = {
            "target": self.target,
            "datastores": {"workspaceblobstore": "qablob", "workspaceartifactstore": "qaartifacts"},
        }
        path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
        return path

    def import_assets(
        self, repo: Path, map_file: Path, tmp: Path, *extra: str, live: bool = True
    ) -> tuple[int, str]:
        """``amlport import REPO --to TMP/target --map MAP --emit-assets TMP/emitted`` in this
        process, registering into this workspace (``--workspace``) when ``live``:
        (exit code, stderr)."""
        from typer.testing import CliRunner

        from amlport.cli.app import app

        args = ["import", str(repo), "--to", str(tmp / "target"), "--map", str(map_file)]
        args += ["--emit-assets", str(tmp / "emitted"), *extra]
        args += ["--workspace", self.workspace] if live else []
        res = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
        return res.exit_code, res.stderr


# --- the replayed cloud's storage: Azurite over TLS at <account>.blob.core.replay.test ----------


def start_tls_azurite(folder: Path, server: ReplayServer, accounts: dict[str, str]) -> Any:
    """An Azurite of its own (``helpers.azurite.Azurite``) serving ``accounts`` (name -> key)
    over HTTPS with the replay's certificate, whose names include ``*.blob.core.replay.test``.
    azure-ai-ml reaches a datastore's account only as ``https://<account>.blob.<cloud
    storage suffix>``; with the suffix ``core.replay.test:<port>`` and ``resolve_replay_names``
    that is this emulator, which reads the account from the host name's first label
    (production-style URLs). The accounts' ``url`` is the path-style admin address."""
    from helpers import azurite as az

    node, script = az.find_azurite()
    port = az.free_port()
    folder.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["AZURITE_ACCOUNTS"] = ";".join(f"{name}:{key}" for name, key in accounts.items())
    args = [
        node, str(script),
        "--blobHost", "127.0.0.1",
        "--blobPort", str(port),
        "--location", str(folder),
        "--cert", str(server.ca_file),
        "--key", str(server.key_file),
        "--silent", "--loose", "--skipApiVersionCheck", "--disableTelemetry",
    ]  # fmt: skip
    with (folder / "azurite.log").open("wb") as log:
        process = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        )
    https = f"https://127.0.0.1:{port}"
    emulator = az.Azurite(
        "127.0.0.1",
        port,
        folder,
        process,
        {name: az.AzuriteAccount(name, key, https) for name, key in accounts.items()},
    )
    deadline = time.monotonic() + az.START_TIMEOUT_S
    while process.poll() is None and time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return emulator
        except OSError:
            time.sleep(0.05)
    emulator.stop()
    raise RuntimeError(f"TLS Azurite did not start:\n{emulator.log_tail()}")


def storage_suffix(emulator: Any) -> str:
    """The replayed cloud's storage suffix for ``emulator`` (``core.replay.test:<port>``)."""
    return f"{STORAGE_DOMAIN}:{emulator.port}"


def resolve_replay_names(monkeypatch: Any) -> None:
    """Resolve ``*.blob.core.replay.test`` to 127.0.0.1 in this process (the name a real cloud's
    DNS would give its storage accounts); every other name resolves as before. The TLS
    handshake still checks the certificate against the name."""
    real = socket.getaddrinfo
    tail = f".blob.{STORAGE_DOMAIN}"

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if isinstance(name, str) and name.lower().endswith(tail):
            host = "127.0.0.1"
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
