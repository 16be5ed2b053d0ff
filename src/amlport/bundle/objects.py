"""The object store: immutable blobs named by the SHA-256 of their bytes.

Layout: ``objects/sha256/<first 2 hex>/<all 64 hex>``. An object is written once (temp file +
fsync + rename) and never modified; writing bytes that are already stored is a no-op, which
is what makes a second export of an unchanged source cheap. Every read that returns bytes
checks them against the name.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from amlport.bundle import files
from amlport.errors import IntegrityError, UsageError
from amlport.model.manifest import DIGEST_RE

CHUNK_SIZE = 1 << 20  # 1 MiB: bounded memory for any object size
MAX_CHUNK_SIZE = 4 << 20
ALGORITHM = "sha256"
_VERIFY_HINT = "run `amlport verify` and re-export the affected assets"

ByteProgress = Callable[[int], None]  # bytes just stored
StageProgress = Callable[[str, int, int], None]  # (stage, done, total)


def format_digest(hexdigest: str) -> str:
    return f"{ALGORITHM}:{hexdigest}"


def hex_of(digest: str) -> str:
    """The 64 hex characters of a ``sha256:<hex>`` digest (UsageError when malformed)."""
    if not DIGEST_RE.match(digest):
        raise UsageError(f"{digest!r} is not a digest of the form sha256:<64 lowercase hex>")
    return digest.split(":", 1)[1]


def digest_of(data: bytes) -> str:
    return format_digest(hashlib.sha256(data).hexdigest())


def normalize_md5(value: str) -> bytes:
    """Content-MD5 as 16 raw bytes, from hex (listing form) or base64 (HTTP header form)."""
    text = value.strip()
    try:
        raw = bytes.fromhex(text) if len(text) == 32 else base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        raw = b""
    if len(raw) != 16:
        raise UsageError(f"{value!r} is not an MD5 in hex or base64")
    return raw


class ObjectStore:
    """Content-addressed objects under one directory (``<repo>/objects``)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.base = root / ALGORITHM

    def path(self, digest: str) -> Path:
        hexd = hex_of(digest)
        return self.base / hexd[:2] / hexd

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def put_bytes(self, data: bytes) -> str:
        digest = digest_of(data)
        target = self.path(digest)
        if not target.exists():  # write once: an existing object is never rewritten
            files.write_atomic(target, data)
        return digest

    def put_stream(
        self,
        stream: BinaryIO,
        *,
        expected_md5: str | None = None,
        expected_digest: str | None = None,
        chunk_size: int = CHUNK_SIZE,
        progress: ByteProgress | None = None,
    ) -> tuple[str, int]:
        """Store a stream of any size with bounded memory; (digest, size).

        The bytes go to a temp file while SHA-256 (and MD5 when ``expected_md5`` is given)
        are computed; a wrong MD5 (or a digest other than ``expected_digest``) raises
        IntegrityError and stores nothing.
        """
        if not 0 < chunk_size <= MAX_CHUNK_SIZE:
            raise UsageError(f"chunk_size must be 1..{MAX_CHUNK_SIZE} bytes, got {chunk_size}")
        want_md5 = normalize_md5(expected_md5) if expected_md5 else None
        with files.temp_file(self.base) as (tmp, fh):
            sha, md5, size = _copy_hashing(stream, fh, chunk_size, want_md5 is not None, progress)
            if want_md5 is not None and md5 is not None and md5.digest() != want_md5:
                raise IntegrityError(
                    f"content MD5 mismatch after {size} bytes: expected {want_md5.hex()}, "
                    f"read {md5.hexdigest()}",
                    hint="the source changed or the transfer was damaged; re-run the export",
                )
            digest = format_digest(sha.hexdigest())
            if expected_digest is not None and digest != expected_digest:
                raise IntegrityError(
                    f"object {expected_digest} is corrupt: its bytes hash to {digest}",
                    hint="the copy was damaged or tampered with; get a fresh one",
                )
            files.finish(fh)
        target = self.path(digest)
        if target.exists():
            tmp.unlink(missing_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            files.publish(tmp, target)
        return digest, size

    def get_bytes(self, digest: str) -> bytes:
        data = self._read(digest)
        if digest_of(data) != digest:
            raise IntegrityError(
                f"object {digest} is corrupt: its bytes hash to {digest_of(data)}",
                hint=_VERIFY_HINT,
            )
        return data

    def open(self, digest: str) -> BinaryIO:
        """A reader that raises IntegrityError at end of file when the bytes do not match."""
        try:
            raw = self.path(digest).open("rb")
        except FileNotFoundError:
            raise _missing(digest) from None
        return io.BufferedReader(_VerifyingReader(raw, digest), buffer_size=CHUNK_SIZE)

    def check(self, digest: str) -> str | None:
        """None when the object is present and whole, else the problem in words."""
        try:
            with self.open(digest) as fh:
                while fh.read(CHUNK_SIZE):
                    pass
        except IntegrityError as exc:
            return exc.message
        return None

    def iter_digests(self) -> Iterator[str]:
        if not self.base.is_dir():
            return
        for fan in sorted(self.base.iterdir()):
            if fan.is_dir() and len(fan.name) == 2:
                for obj in sorted(fan.iterdir()):
                    digest = format_digest(obj.name)
                    if DIGEST_RE.match(digest) and obj.name.startswith(fan.name):
                        yield digest

    def iter_temp_files(self) -> Iterator[Path]:
        if self.base.is_dir():
            yield from (p for p in self.base.rglob(f"{files.TEMP_PREFIX}*") if p.is_file())

    def delete(self, digest: str) -> int:
        """Remove an object; the bytes freed (0 when it was not there)."""
        path = self.path(digest)
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            return 0
        return size

    def _read(self, digest: str) -> bytes:
        try:
            return self.path(digest).read_bytes()
        except FileNotFoundError:
            raise _missing(digest) from None


def _missing(digest: str) -> IntegrityError:
    return IntegrityError(f"object {digest} is missing from the repository", hint=_VERIFY_HINT)


def _copy_hashing(
    src: BinaryIO,
    dst: BinaryIO,
    chunk_size: int,
    with_md5: bool,
    progress: ByteProgress | None,
) -> tuple[hashlib._Hash, hashlib._Hash | None, int]:
    sha = hashlib.sha256()
    md5 = hashlib.md5(usedforsecurity=False) if with_md5 else None
    size = 0
    while chunk := src.read(chunk_size):
        sha.update(chunk)
        if md5 is not None:
            md5.update(chunk)
        dst.write(chunk)
        size += len(chunk)
        if progress is not None:
            progress(len(chunk))
    return sha, md5, size


class _VerifyingReader(io.RawIOBase):
    """Hashes what is read; at end of file the hash must equal the object's name."""

    def __init__(self, raw: BinaryIO, digest: str) -> None:
        self._raw = raw
        self._digest = digest
        self._sha = hashlib.sha256()
        self._checked = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self._raw.read(len(buffer))
        if data:
            self._sha.update(data)
            memoryview(buffer)[: len(data)] = data
            return len(data)
        if not self._checked:
            self._checked = True
            actual = format_digest(self._sha.hexdigest())
            if actual != self._digest:
                raise IntegrityError(
                    f"object {self._digest} is corrupt: its bytes hash to {actual}",
                    hint=_VERIFY_HINT,
                )
        return 0

    def close(self) -> None:
        self._raw.close()
        super().close()
