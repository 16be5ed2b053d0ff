"""Helpers shared by the test suites (issue 23: one definition each, no ``sys.path`` edits).

``pyproject.toml`` puts ``tests/`` (and ``fixtures/``, for ``fixturegen``) on pytest's
``pythonpath``, so every suite imports ``helpers.<module>``; a subprocess that needs them gets
``PYTHONPATH=<TESTS>``. What lives where:

- ``azurite``: start the Azurite emulator, accounts, fixture workspaces uploaded (session
  fixtures in ``tests/conftest.py``); ``mlflowserver``: a real mlflow tracking server.
- ``cliutil``: run ``amlport`` as a user does (subprocess), read what a repository holds.
- ``data``: digests, file trees, long names: small builders every suite needs.
- ``sarif``: the SARIF 2.1.0 schema check of audit reports.
- ``bundle``: repository/manifest builders, key files; ``archive``: hand-built pack archives;
  ``backup``: the backup suites' workspaces, maps and schedule;
  ``encrypted_mode``: ``make test-encrypted``'s switch, predicted digests and what a
  repository stores as a key holder reads it; ``encrypted_site/sitecustomize.py``: the same
  switch in the ``amlport`` processes a test starts (``tests/conftest.py`` puts it on
  ``$PYTHONPATH``).
- ``rel_workspace``, ``rel_azurite``, ``rel_proxy``, ``corpus_cases``: the reliability suite
  (generated workspaces, a private emulator, a fault-injecting proxy, hostile corpus cases).
- ``walkfacts``, ``armreplay``, ``reportutil``, ``rewriter_designer``, ``rewriter_identities``:
  the walker, ARM replay, report and rewriter suites.
- ``stores``: the repository-store backends the contract suite
  (``tests/contract/test_repository_store.py``) runs over.
"""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
REPO_ROOT = TESTS.parent
