"""``AMLPORT_TEST_ENCRYPT=1`` for the amlport processes a test starts (``python -m amlport``).

``tests/conftest.py`` puts this folder first on ``$PYTHONPATH`` of a test that is not marked
``own_keys``, so a subprocess arms ``KeySource`` as the test process does
(``helpers.encrypted_mode``): every repository it creates is encrypted under the fixed test
master key, and it opens the repositories the test made in-process (and they its). Only when
``amlport.bundle.repository`` is imported: any other Python process (an mlflow server, say)
imports nothing more than this hook. Never on a user's machine: the key is public.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

MODULE = "amlport.bundle.repository"


def _arm(module: ModuleType) -> None:
    spec = importlib.util.spec_from_file_location(
        "_amlport_encrypted_mode", Path(__file__).resolve().parents[1] / "encrypted_mode.py"
    )
    assert spec is not None and spec.loader is not None
    mode = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mode)
    from amlport.bundle.keys import KIND_FILE, UserKey

    source = module.KeySource
    source.test_encrypt = True
    source.default_key = UserKey(KIND_FILE, mode.TEST_USER_KEY, "test key")
    source.test_master = mode.TEST_MASTER_KEY


class _Hook(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name != MODULE:
            return None
        sys.meta_path.remove(self)  # found by the other finders from here on
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        run = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            run(module)
            _arm(module)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


if os.environ.get("AMLPORT_TEST_ENCRYPT") == "1":
    sys.meta_path.insert(0, _Hook())
