"""Environments as Azure ML builds them: which files one needs, and which ones are the same.

A v2 environment YAML names what it is built from: ``conda_file`` (a file beside it) and/or
``build.path`` (a Docker build context folder). Those files belong to that environment: they
are carried with it, not as environments of their own, and nothing else of the folder the
YAML sits in is (a YAML at a project root used to bring the whole project, and its conda file
came out a second time as an environment of its own).

Conda files with the same content are one environment: MLflow writes the same ``conda.yaml``
beside every model a run logs, and seven identical environments are one to rebuild and
register. The first by id stands for the others (``same_as``); each model keeps its own file
in its folder and points at the one that stands for it. Dockerfiles are not merged: what a
build gives depends on its whole context.

Pure over the inventory; described in docs/concepts.md (environments).
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from collections import defaultdict
from typing import Any

from amlport.model.inventory import Environment, Inventory

# ``conda_file``/``build.path`` values that name something else than a file of the storage.
NOT_A_FILE = ("azureml:", "http://", "https://", "git+", "git://", "docker://")


def described(env: Environment, doc: dict[str, Any]) -> Environment:
    """Record what a parsed environment document says it is built from (v2 YAML) or its
    content digest (a conda file)."""
    if env.kind == "v2_yaml":
        conda = doc.get("conda_file")
        env.conda_file = conda if isinstance(conda, str) else None
        build = doc.get("build")
        path = build.get("path") if isinstance(build, dict) else None
        env.build_path = path if isinstance(path, str) else None
    elif env.kind == "conda":
        canonical = json.dumps(doc, sort_keys=True, default=str, ensure_ascii=False)
        env.digest = hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()
    return env


def link(inv: Inventory) -> None:
    _parts(inv)
    _same_content(inv)
    _repoint(inv)


def resolve(folder: str, ref: str) -> str | None:
    """``ref`` (relative to ``folder``, a ``container/path``) as ``container/path``; None for a
    URI, an absolute path or one that leaves the container."""
    text = ref.strip()
    if not text or text.startswith(NOT_A_FILE) or text.startswith("/") or "\\" in text:
        return None
    if any(ord(c) < 0x20 for c in text):
        return None
    container = folder.split("/", 1)[0]
    joined = posixpath.normpath(posixpath.join(folder, text))
    if joined == container or not joined.startswith(container + "/"):
        return None  # ``..`` up to or out of the container
    return joined


def _parts(inv: Inventory) -> None:
    by_path = {e.path: e for e in inv.environments.values() if e.path}
    owners = sorted(
        (e for e in inv.environments.values() if e.kind == "v2_yaml" and e.path),
        key=lambda e: e.env_id,
    )
    for env in owners:
        folder = posixpath.dirname(str(env.path))
        if env.conda_file:
            target = resolve(folder, env.conda_file)
            if target is not None and target != env.path:
                env.needs.append(target)
                _claim(by_path.get(target), env)
        if env.build_path:
            context = resolve(folder, env.build_path)
            if context is not None:
                env.context = context
                for path, other in by_path.items():
                    if path.startswith(context + "/") and other is not env:
                        _claim(other, env)


def _claim(member: Environment | None, owner: Environment) -> None:
    if member is not None and member.kind != "v2_yaml" and member.part_of is None:
        member.part_of = owner.env_id


def _same_content(inv: Inventory) -> None:
    groups: dict[str, list[Environment]] = defaultdict(list)
    for env in inv.environments.values():
        if env.kind == "conda" and env.digest and env.part_of is None:
            groups[env.digest].append(env)
    for envs in groups.values():
        first, *rest = sorted(envs, key=lambda e: e.env_id)
        for env in rest:
            env.same_as = first.env_id


def stands_for(inv: Inventory, env_id: str | None) -> str | None:
    """The environment that stands for ``env_id`` (its owner, or the identical one)."""
    env = inv.environments.get(env_id) if env_id else None
    if env is None:
        return env_id
    return env.part_of or env.same_as or env.env_id


def _repoint(inv: Inventory) -> None:
    for model in inv.models.values():
        model.environment = stands_for(inv, model.environment)


def listed(env: Environment) -> bool:
    """Whether an environment is one of its own (a lineage node, an export asset), not a
    file of another or a copy of an identical one."""
    return env.part_of is None and env.same_as is None
