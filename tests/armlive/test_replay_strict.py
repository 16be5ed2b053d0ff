"""A request no test expected fails that test: the ``arm`` fixture of this suite, run on an
inner test whose SDK call the replay was not told to answer."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

CONFTEST = Path(__file__).resolve().parent / "conftest.py"


def test_an_unexpected_request_fails_the_test(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        f"""
import importlib.util

_spec = importlib.util.spec_from_file_location("armlive_conftest", {str(CONFTEST)!r})
_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_mod)
arm_replay, arm = _mod.arm_replay, _mod.arm
"""
    )
    pytester.makepyfile(
        """
from amlport.audit import armlive

def test_reads_an_unserved_account(arm):
    target = armlive.LiveTarget("00000000-0000-0000-0000-000000000000", "rg", "acct")
    cp = armlive.collect_live(target)
    assert not cp.storage.known  # the SDK saw a 404; on its own this test would pass

def test_reads_nothing(arm):
    pass
"""
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        ["*unexpected ARM requests*GET /subscriptions/00000000-0000-0000-0000-000000000000/*"]
    )
