"""``amlport.plugins.Registry``: named entries, duplicates refused, lazy built-ins, mapping reads.

Entry points (a broken plugin is a warning, not a crash) are exercised end to end with a real
installed distribution in ``tests/cli/test_plugins_cli.py``.
"""

from __future__ import annotations

import pytest

from amlport.audit.runner import CHECKS
from amlport.exporters import BUILTIN, EXPORTERS, registered
from amlport.importers import IMPORTERS
from amlport.plugins import BUILTIN as BUILT_IN_ORIGIN
from amlport.plugins import DuplicateName, Registry
from amlport.rewriters import FAMILY_MODULES


def test_entries_keep_their_order_and_read_like_a_mapping() -> None:
    reg: Registry[int] = Registry("number")
    reg.add("one", 1)
    reg.add("two", 2)
    assert list(reg) == ["one", "two"] and list(reg.values()) == [1, 2]
    assert reg["two"] == 2 and "one" in reg and "three" not in reg and len(reg) == 2
    assert dict(reg) == {"one": 1, "two": 2}
    with pytest.raises(KeyError):
        reg["three"]


@pytest.mark.parametrize("name", ["dup", "x[/]y", "\x1b[31m", "a" * 1024])
def test_a_name_registered_twice_is_refused(name: str) -> None:
    reg: Registry[int] = Registry("number")
    reg.add(name, 1)
    with pytest.raises(DuplicateName, match="registered twice"):
        reg.add(name, 2)
    with pytest.raises(DuplicateName):
        reg.add_lazy(name, "json:dumps")
    assert reg[name] == 1


def test_an_empty_name_is_refused() -> None:
    with pytest.raises(DuplicateName):
        Registry[int]("number").add("", 1)


def test_a_lazy_entry_is_imported_on_first_use_only() -> None:
    reg: Registry[object] = Registry("thing")
    reg.add_lazy("missing", "amlport_no_such_module:Thing")
    reg.add_lazy("dumps", "json:dumps")
    assert [e.target for e in reg.entries()] == ["amlport_no_such_module:Thing", "json:dumps"]
    import json

    assert reg["dumps"] is json.dumps
    with pytest.raises(ModuleNotFoundError):
        reg["missing"]  # only when asked for


def test_a_registry_without_a_group_loads_no_entry_points() -> None:
    reg: Registry[int] = Registry("number")
    assert reg.load_entry_points() == [] and reg.warnings == []


def test_the_builtin_registries() -> None:
    assert list(EXPORTERS) == [e.name for e in BUILTIN]
    assert registered()[: len(BUILTIN)] == BUILTIN
    assert set(IMPORTERS) == {"datastore", "azureml_assets", "mlflow"}
    assert IMPORTERS["datastore"].__name__ == "DatastoreImporter"
    assert "versioning" in CHECKS and "wasb" in FAMILY_MODULES
    for registry in (EXPORTERS, IMPORTERS, FAMILY_MODULES, CHECKS):
        assert {e.origin for e in registry.entries()} >= {BUILT_IN_ORIGIN}
        assert all(e.kind == registry.kind for e in registry.entries())
