"""The floors amlport is measured against: what a bare client does, with nothing on top.

Run as its own process (like amlport), so start-up and imports count on both sides:

    python bench/floors.py list     --containers A,B [--client obstore]
    python bench/floors.py download --containers A,B --workers 16 [--out DIR] [--only FILE]
                                    [--client obstore]

``--client sdk`` (the default) is azure-storage-blob; ``--client obstore`` is obstore (Rust
``object_store``), the physical floor for Python (docs/design/0005-obstore-data-path.md):
one ``obstore.list`` per container, and each blob one GET streamed in 8 MiB pieces, in
``--workers`` threads; it imports neither the SDK nor requests (a floor carries no import
it does not use: until session 8 it imported both, 0.2-0.25 s of CPU and 30 MB of RSS on
every obstore floor).

The connection string comes from $AZURE_STORAGE_CONNECTION_STRING (never from argv).
``list`` is one bare ``list_blobs`` pass per container (5,000 a page, no metadata).
``download`` lists the same way, then downloads every blob (or only those named in FILE,
one ``container<TAB>name`` a line) with ``--workers`` threads, each blob streamed into its
file (``--out``) or discarded (no ``--out``: only the reading is measured). Blobs larger than
64 MiB are fetched with 4 ranged GETs in parallel, as rclone's multi-thread download does;
empty blobs (size 0 in the listing) are not fetched at all.
Prints one JSON line: blobs, bytes, seconds (inside the process), listed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from azure.storage.blob import BlobServiceClient

LARGE = 64 << 20
PAGE = 5000


def service(workers: int) -> BlobServiceClient:
    # Imported here: the obstore floors load neither the SDK nor requests (a bare listing
    # pays only for what it uses, as amlport does).
    import requests
    from azure.core.pipeline.transport import RequestsTransport
    from azure.storage.blob import BlobServiceClient
    from requests.adapters import HTTPAdapter

    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(workers * 4, 16))
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return BlobServiceClient.from_connection_string(
        os.environ["AZURE_STORAGE_CONNECTION_STRING"],
        transport=RequestsTransport(session=session, session_owner=True),
        max_single_get_size=32 << 20,
        max_chunk_get_size=8 << 20,
    )


class _Sink:
    """A writable that counts and drops (reading only, as scan does)."""

    def __init__(self) -> None:
        self.n = 0

    def write(self, data: Any) -> int:
        self.n += len(data)
        return len(data)

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False


def connection_fields() -> dict[str, str]:
    """The connection string's fields, keys in lower case."""
    fields = {}
    for part in os.environ["AZURE_STORAGE_CONNECTION_STRING"].split(";"):
        key, sep, value = part.partition("=")
        if sep:
            fields[key.strip().lower()] = value.strip()
    return fields


def obstore_store(container: str, workers: int) -> Any:
    from obstore.store import AzureStore

    f = connection_fields()
    account = f["accountname"]
    suffix = f.get("endpointsuffix", "core.windows.net")
    scheme = f.get("defaultendpointsprotocol", "https")
    endpoint = f.get("blobendpoint") or f"{scheme}://{account}.blob.{suffix}"
    return AzureStore(
        container,
        account_name=account,
        account_key=f["accountkey"],
        endpoint=endpoint.rstrip("/"),
        client_options={"allow_http": endpoint.startswith("http:"),
                        "pool_max_idle_per_host": str(max(workers * 4, 16))},
    )  # fmt: skip


def obstore_main(args: argparse.Namespace, began: float) -> int:
    import obstore

    stores = {c: obstore_store(c, args.workers) for c in args.containers.split(",")}
    listed: list[tuple[str, str, int]] = []
    for container, store in stores.items():
        for page in obstore.list(store, chunk_size=PAGE):
            listed.extend((container, meta["path"], int(meta["size"])) for meta in page)
    listed_s = time.perf_counter() - began
    if args.mode == "list":
        total = sum(s for _, _, s in listed)
        print(json.dumps({"blobs": len(listed), "bytes": total, "seconds": listed_s}))
        return 0
    wanted = only(listed, args.only)

    def fetch(item: tuple[str, str, int]) -> int:
        container, name, size = item
        path = None if args.out is None else args.out / container / name
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        if size == 0:
            if path is not None:
                path.touch()
            return 0
        got = 0
        result = obstore.get(stores[container], name)
        if path is None:
            for piece in result.stream(8 << 20):
                got += len(piece)
            return got
        with path.open("wb") as fh:
            for piece in result.stream(8 << 20):
                got += fh.write(piece)
        return got

    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        got = sum(pool.map(fetch, wanted, chunksize=8))
    seconds = time.perf_counter() - began
    print(
        json.dumps({"blobs": len(wanted), "bytes": got, "seconds": seconds, "listed": len(listed)})
    )
    return 0


def only(listed: list[tuple[str, str, int]], path: Path | None) -> list[tuple[str, str, int]]:
    """The listed blobs named in ``path`` (container<TAB>name lines), or all of them."""
    if path is None:
        return listed
    keys = {tuple(line.split("\t", 1)) for line in path.read_text().splitlines() if line}
    return [b for b in listed if (b[0], b[1]) in keys]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("mode", choices=("list", "download"))
    p.add_argument("--client", choices=("sdk", "obstore"), default="sdk")
    p.add_argument("--containers", required=True)
    p.add_argument("--workers", type=int, default=16)
    p.add_argument("--out", type=Path)
    p.add_argument("--metadata", action="store_true", help="list with include=metadata")
    p.add_argument("--only", type=Path, help="download only these (container<TAB>name lines)")
    args = p.parse_args(argv)
    began = time.perf_counter()
    if args.client == "obstore":
        return obstore_main(args, began)
    svc = service(args.workers)
    listed: list[tuple[str, str, int]] = []
    for container in args.containers.split(","):
        client = svc.get_container_client(container)
        include = ["metadata"] if args.metadata else None
        for props in client.list_blobs(include=include, results_per_page=PAGE):
            listed.append((container, props.name, int(props.size or 0)))
    listed_s = time.perf_counter() - began
    if args.mode == "list":
        total = sum(s for _, _, s in listed)
        print(json.dumps({"blobs": len(listed), "bytes": total, "seconds": listed_s}))
        return 0
    wanted = only(listed, args.only)
    made: set[Path] = set()

    def fetch(item: tuple[str, str, int]) -> int:
        container, name, size = item
        blob = svc.get_blob_client(container, name)
        if size == 0:  # the listing already says it is empty: nothing to fetch
            if args.out is not None:
                path = args.out / container / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch()
            return 0
        if args.out is None:
            stream = blob.download_blob(max_concurrency=1)
            sink = _Sink()
            stream.readinto(sink)
            return sink.n
        stream = blob.download_blob(max_concurrency=4 if size > LARGE else 1)
        path = args.out / container / name
        if path.parent not in made:
            path.parent.mkdir(parents=True, exist_ok=True)
            made.add(path.parent)
        with path.open("wb") as fh:
            return stream.readinto(fh)

    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        got = sum(pool.map(fetch, wanted, chunksize=8))
    seconds = time.perf_counter() - began
    print(
        json.dumps({"blobs": len(wanted), "bytes": got, "seconds": seconds, "listed": len(listed)})
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
