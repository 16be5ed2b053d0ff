"""Exporters: one module per asset kind, registered in a static table (no reinstall needed).

Third-party exporters may be added through the ``amlport.exporters.v1`` entry point group;
each entry point names a class with the ``Exporter`` shape (``exporters/base.py``).
"""

from __future__ import annotations

from importlib.metadata import entry_points

from amlport.exporters.base import Exporter
from amlport.exporters.component import ComponentExporter
from amlport.exporters.data import DataExporter
from amlport.exporters.designer_model import DesignerModelExporter
from amlport.exporters.environment import EnvironmentExporter
from amlport.exporters.mlflow_model import MlflowModelExporter
from amlport.exporters.pipeline import PipelineExporter
from amlport.exporters.run_graph import RunGraphExporter
from amlport.exporters.run_records import RunRecordExporter

BUILTIN: tuple[Exporter, ...] = (
    MlflowModelExporter(),
    DesignerModelExporter(),
    EnvironmentExporter(),
    PipelineExporter(),
    ComponentExporter(),
    RunGraphExporter(),
    RunRecordExporter(),
    DataExporter(),
)
ENTRY_POINT_GROUP = "amlport.exporters.v1"


def registered() -> tuple[Exporter, ...]:
    """Built-ins first, then plugins from entry points."""
    extra = tuple(ep.load()() for ep in entry_points(group=ENTRY_POINT_GROUP))
    return BUILTIN + extra
