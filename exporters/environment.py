"""Environments: a conda file, a Docker build context, or a v2 environment YAML with its files.

A conda file gets a v2 environment YAML on the default base image (recorded in attrs); a
Dockerfile gets one with ``build.path`` pointing at its folder; a v2 YAML found in storage is
exported as it is (rewritten) together with the conda file or build context it names, and
nothing else of its folder. The walk has already folded the files a v2 YAML names into it and
identical conda files into one (``walk/environments.py``): neither becomes an asset of its
own, so each environment is exported, and emitted, once.
"""

from __future__ import annotations

import posixpath

from amlport.errors import AmlportError
from amlport.exporters.base import ExportContext, ExportItem
from amlport.exporters.v2yaml import DEFAULT_BASE_IMAGE, asset_name, dump, relative, yaml_path
from amlport.model.inventory import Environment
from amlport.model.manifest import AssetEntry


class EnvironmentExporter:
    name = "environment"
    kinds = ("environment",)

    def accepts(self, item: ExportItem, ctx: ExportContext) -> bool:
        env = ctx.inventory.environments.get(item.node.removeprefix("environment:"))
        return item.kind == "environment" and env is not None and env.path is not None

    def export(self, item: ExportItem, ctx: ExportContext) -> AssetEntry:
        env = ctx.inventory.environments[item.node.removeprefix("environment:")]
        container, _, blob = str(env.path).partition("/")
        if env.kind == "dockerfile":
            return self._docker(item, ctx, env, container, blob)
        if env.kind == "v2_yaml":
            return self._v2(item, ctx, env, container, blob)
        return self._conda(item, ctx, env, container, blob)

    def _entry(
        self,
        item: ExportItem,
        env: Environment,
        name: str,
        files: list[str],
        spec: str,
        **attrs: object,
    ) -> AssetEntry:
        return AssetEntry(
            kind="environment",
            name=name,
            id=item.node,
            files=sorted(set(files)),
            v2_yaml=spec,
            portable=True,
            requires=[],
            attrs={
                "env_kind": env.kind,
                "pinned": env.pinned,
                "unpinned": env.unpinned,
                "image": env.image,
                **attrs,
            },
        )

    def _conda(
        self, item: ExportItem, ctx: ExportContext, env: Environment, container: str, blob: str
    ) -> AssetEntry:
        path = ctx.files.add_blob(container, blob)
        name = ctx.claim(
            "environment", asset_name(env.name or _stem(blob), _short_id(blob)), item.node
        )
        spec = yaml_path("environment", name)
        body = {
            "name": name,
            "version": "1",
            "image": DEFAULT_BASE_IMAGE,
            "conda_file": relative(spec, path),
            "description": f"Conda environment exported by amlport from {env.env_id}",
        }
        ctx.files.add_generated(spec, dump("environment", body))
        return self._entry(item, env, name, [path], spec, base_image=DEFAULT_BASE_IMAGE)

    def _docker(
        self, item: ExportItem, ctx: ExportContext, env: Environment, container: str, blob: str
    ) -> AssetEntry:
        folder = posixpath.dirname(blob)
        files = (
            ctx.files.add_folder(container, folder)
            if folder
            else [ctx.files.add_blob(container, blob)]
        )
        name = ctx.claim(
            "environment",
            asset_name(posixpath.basename(folder) or "docker", _short_id(blob)),
            item.node,
        )
        spec = yaml_path("environment", name)
        context = (
            ctx.files.bundle_path(container, folder)
            if folder
            else posixpath.dirname(ctx.files.bundle_path(container, blob))
        )
        body = {
            "name": name,
            "version": "1",
            "build": {"path": relative(spec, context), "dockerfile_path": posixpath.basename(blob)},
            "description": f"Docker build context exported by amlport from {env.env_id}",
        }
        ctx.files.add_generated(spec, dump("environment", body))
        return self._entry(item, env, name, files, spec)

    def _v2(
        self, item: ExportItem, ctx: ExportContext, env: Environment, container: str, blob: str
    ) -> AssetEntry:
        """The YAML with what it is built from (walk/environments.py): its conda file and its
        build context, not the rest of the folder it sits in."""
        files = [ctx.files.add_blob(container, blob)]
        for need in env.needs:
            need_container, _, need_blob = need.partition("/")
            try:
                files.append(ctx.files.add_blob(need_container, need_blob))
            except AmlportError as exc:
                ctx.warn(f"environment {env.env_id}: {exc.message}")
        if env.context:
            context_container, _, folder = env.context.partition("/")
            found = ctx.files.add_folder(context_container, folder)
            if not found:
                ctx.warn(f"environment {env.env_id}: build context {env.context}/ holds no files")
            files += found
        spec = ctx.files.bundle_path(container, blob)
        name = ctx.claim("environment", asset_name(env.name or _stem(blob)), item.node)
        return self._entry(item, env, name, files, spec)


def _stem(blob: str) -> str:
    return posixpath.splitext(posixpath.basename(blob))[0]


def _short_id(blob: str) -> str:
    """A run id or upload hash from the path, so same-named files stay distinct."""
    for part in blob.split("/"):
        if part.startswith("dcid."):
            return part[5:13]
        if len(part) == 32 and all(c in "0123456789abcdef" for c in part):
            return part[:8]
    return ""
