"""Exporters: one module per asset kind, registered by name in ``EXPORTERS`` (no reinstall
needed for the built-ins).

Third-party exporters are added through the ``amlport.exporters.v1`` entry point group; each
entry point names a class with the ``Exporter`` shape (``exporters/base.py``), instantiated
without arguments. A plugin that fails to load, or whose name a built-in has, is left out with
a warning naming it (``amlport.plugins.Registry``); the export goes on with the others.
``amlport plugins`` lists them all.
"""

from __future__ import annotations

from collections.abc import Callable

from amlport.exporters.base import Exporter
from amlport.exporters.component import ComponentExporter
from amlport.exporters.data import DataExporter
from amlport.exporters.designer_model import DesignerModelExporter
from amlport.exporters.environment import EnvironmentExporter
from amlport.exporters.mlflow_model import MlflowModelExporter
from amlport.exporters.pipeline import PipelineExporter
from amlport.exporters.run_graph import RunGraphExporter
from amlport.exporters.run_records import RunRecordExporter
from amlport.plugins import Registry

ENTRY_POINT_GROUP = "amlport.exporters.v1"


def _instance(loaded: object) -> Exporter:
    return loaded() if isinstance(loaded, type) else loaded  # type: ignore[return-value]


def _is_exporter(value: object) -> bool:
    return all(callable(getattr(value, m, None)) for m in ("accepts", "export")) and isinstance(
        getattr(value, "name", None), str
    )


EXPORTERS: Registry[Exporter] = Registry(
    "exporter", group=ENTRY_POINT_GROUP, make=_instance, check=_is_exporter
)
# Order matters: the first exporter that accepts an item exports it.
for _exporter in (
    MlflowModelExporter(),
    DesignerModelExporter(),
    EnvironmentExporter(),
    PipelineExporter(),
    ComponentExporter(),
    RunGraphExporter(),
    RunRecordExporter(),
    DataExporter(),
):
    EXPORTERS.add(_exporter.name, _exporter)
BUILTIN: tuple[Exporter, ...] = tuple(EXPORTERS.values())


def registered(on_warning: Callable[[str], None] | None = None) -> tuple[Exporter, ...]:
    """Built-ins first, then the plugins of the entry-point group that loaded; each plugin
    left out is passed to ``on_warning`` (every call, so each run reports it)."""
    for warning in EXPORTERS.load_entry_points():
        if on_warning is not None:
            on_warning(str(warning))
    return tuple(EXPORTERS.values())
