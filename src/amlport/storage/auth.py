"""How to authenticate to Azure storage: what the user gave, nothing resolved yet.

Its own module so that every Azure client (``azure_location``, the source, the target, the
repository store) can import it without importing ``opener``, which imports the clients: the
``storage`` package has no import circle. ``opener`` re-exports it for callers outside.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StorageAuth:
    """How to authenticate to Azure storage. Never printed: ``repr`` hides every value."""

    connection_string: str | None = None
    account_key: str | None = None
    sas_token: str | None = None
    use_default_credential: bool = False

    def __repr__(self) -> str:
        given = [k for k in ("connection_string", "account_key", "sas_token") if getattr(self, k)]
        if self.use_default_credential:
            given.append("default_credential")
        return f"StorageAuth({', '.join(given) or 'anonymous'})"

    __str__ = __repr__
