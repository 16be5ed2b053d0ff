"""A sink for ``ExportContext`` in unit tests of exporters: it names the bundle paths an
export would store, and stores nothing."""

from __future__ import annotations


class PathSink:
    def add_folder(self, container: str, prefix: str) -> list[str]:
        return [f"files/{container}/{prefix}/MLmodel"]

    def add_blob(self, container: str, name: str) -> str:
        return f"files/{container}/{name}"

    def add_generated(self, bundle_path: str, data: bytes) -> str:
        return bundle_path

    def bundle_path(self, container: str, name: str) -> str:
        return f"files/{container}/{name}"
