"""Planning an export builds each map over the whole inventory once, not once per item
(issue 18: the pipeline exporters rebuilt the map of all outputs per pipeline run and
``ExportContext.model`` scanned every model per call: quadratic at 100k blobs). Counted, not
timed; and the assets are those of a context that builds every map afresh for every item."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

import pytest
from helpers.exportsink import PathSink as Sink
from helpers.walkfacts import scanned

import amlport.exporters.base as base
import amlport.exporters.run_graph as run_graph
from amlport.export.engine import plan_assets
from amlport.export.selection import INCLUDE_KINDS, select
from amlport.exporters.base import AssetUnsupported, ExportContext
from amlport.model.inventory import Loc

T = TypeVar("T")


def _counting(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> list[int]:
    calls: list[int] = []
    real = getattr(module, name)

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls


def _plan(name: str) -> tuple[list[Any], list[tuple[str, str]]]:
    inv, lg = scanned(name)
    chosen = select(inv, lg, [], frozenset(INCLUDE_KINDS))
    return plan_assets(inv, lg, chosen, Sink())


def test_the_maps_of_all_outputs_are_built_once_per_export(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    inv, _ = scanned("designer-history")
    pipelines = [r for r in inv.runs.values() if r.children]
    assert len(pipelines) >= 4  # several pipelines: a map per pipeline would count 4
    producers = _counting(monkeypatch, run_graph, "producers_of")
    outputs = _counting(monkeypatch, run_graph, "outputs_by_owner")
    models = _counting(monkeypatch, base, "_models_by_node")
    assets, _ = _plan("designer-history")
    assert sum(a.kind == "pipeline" for a in assets) == len(pipelines)
    assert sum(a.kind == "model" for a in assets) >= 2
    assert (len(producers), len(outputs), len(models)) == (1, 1, 1)


@pytest.mark.parametrize("name", ["designer-history", "designer-autoprice", "sdk-bikeshare"])
def test_the_assets_are_those_of_maps_built_per_item(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    shared = _plan(name)

    def afresh(self: ExportContext, key: Hashable, build: Callable[[], T]) -> T:
        return build()

    monkeypatch.setattr(ExportContext, "memo", afresh)
    assert _plan(name) == shared


def test_a_model_is_found_by_its_node_and_an_unknown_node_is_unsupported() -> None:
    inv, lg = scanned("designer-history")
    ctx = ExportContext(inv, lg, Sink(), warn=lambda _: None)
    assert len(inv.models) >= 2
    for loc, model in inv.models.items():
        assert ctx.model(f"model:{loc}") is model
    for hostile in ["model:", "model:[x]/../..", "run:" + "x" * 1024, "model:\x1b[2J"]:
        with pytest.raises(AssetUnsupported, match="is not a model of this workspace"):
            ctx.model(hostile)


def test_a_model_added_after_the_first_lookup_is_found() -> None:
    inv, lg = scanned("designer-history")
    own = dataclasses.replace(inv, models=dict(inv.models))  # the cached scan stays as it is
    ctx = ExportContext(own, lg, Sink(), warn=lambda _: None)
    loc, model = next(iter(own.models.items()))
    assert ctx.model(f"model:{loc}") is model
    extra = Loc(loc.datastore, loc.path + "-copy")
    own.models[extra] = model
    assert ctx.model(f"model:{extra}") is model
