"""``Repository``: objects, snapshots, locks and indexes in a local folder or an Azure container.

Layout (see docs/bundle-format.md; in a container, blob names under an optional prefix)::

    config.json                      format, version, repository id (and encryption)
    keys/<id>.json                   an encrypted repository's wrapped master keys (keys.py)
    objects/sha256/ab/ab12…          immutable objects named by their SHA-256
    snapshots/<sha256>.json          one manifest per snapshot, written last
    locks/<random>.json              one file per lock holder
    index/<source-key>.json          incremental index per source (a cache)

Contract for writers (exporters, backup): hold ``lock(exclusive=False)`` for the whole run,
put every byte through ``put_bytes``/``put_stream``, then ``write_snapshot`` once. A crash
before the snapshot leaves only objects, which the next run reuses and ``prune`` removes if
no run ever references them. Nothing here prints; warnings go to ``on_warning``.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, BinaryIO, TypeVar, cast

from amlport.bundle import archive, files, keys, verification
from amlport.bundle.codec import PLAIN, Codec
from amlport.bundle.config import (
    FORMAT_MAJOR,
    MAX_CONFIG_BYTES,
    SUPPORTED_FORMAT_MAJORS,
    RepositoryConfig,
)
from amlport.bundle.crypto import KEY_HINT, SealedCodec, SealedValues
from amlport.bundle.garbage import PruneReport, collect_garbage
from amlport.bundle.index import SourceIndex
from amlport.bundle.location import open_store
from amlport.bundle.lock import (
    DEFAULT_STALE_AFTER,
    HeldLock,
    LockInfo,
    ReadOnlyLock,
    acquire,
    list_locks,
)
from amlport.bundle.notices import Warn, Warnings
from amlport.bundle.objects import ByteProgress, ObjectStore
from amlport.bundle.retention import ForgetPlan, RetentionPolicy, plan_forget
from amlport.bundle.snapshots import SnapshotInfo, SnapshotStore
from amlport.bundle.store import LocalStore, ReadingStore, RepoStore
from amlport.errors import AmlportError, IntegrityError, SourceNotFound, UsageError
from amlport.model.loadplan import WHOLE, LoadPlan
from amlport.model.manifest import (
    LISTS,
    SCHEMA_MINOR,
    FileEntry,
    Manifest,
    check_bundle_path,
    check_references,
    entry_parser,
    format_time,
    parse_schema,
)
from amlport.progress import Progress
from amlport.secrets import find_secrets, may_hold_secret, redact
from amlport.storage.opener import StorageAuth

Location = str | Path
CONFIG = "config.json"


class KeySource:
    """Where ``Repository.open``/``init``/``open_or_init`` find the user key of an encrypted
    repository when their caller passes no ``key``: a key file or Key Vault secret the CLI
    set from ``--key-file``/``--key-vault-secret`` (``cli/repo_options.py``), else the
    passphrase in ``$AMLPORT_REPO_KEY``. ``encrypt``: the CLI's ``--encrypt`` (a repository
    an export or backup creates is encrypted)."""

    key_file: str | None = None
    key_vault_secret: str | None = None
    encrypt: bool = False
    # Tests only (AMLPORT_TEST_ENCRYPT=1, tests/conftest.py): a key used when none is given,
    # and every format-2 repository created is encrypted with it.
    default_key: keys.UserKey | None = None
    test_encrypt: bool = False
    test_master: bytes | None = None  # a fixed master key, so tests can predict names

    @classmethod
    def explicit(cls) -> bool:
        return bool(cls.key_file or cls.key_vault_secret)

    @classmethod
    def user_key(cls) -> keys.UserKey | None:
        if cls.key_file:
            return keys.read_key_file(cls.key_file)
        if cls.key_vault_secret:
            return keys.from_key_vault(cls.key_vault_secret)
        return keys.from_env() or cls.default_key

    @classmethod
    def reset(cls) -> None:
        cls.key_file = cls.key_vault_secret = None
        cls.encrypt = cls.test_encrypt = False
        cls.default_key = cls.test_master = None


class Repository:
    """Open with ``Repository.open``/``init``/``open_or_init``, not the constructor.

    A location is a local folder or an Azure container URL (``location.py``); ``auth`` is the
    credential for a URL (None: the location's SAS, if any, or anonymous).
    """

    def __init__(
        self,
        path: Path | RepoStore,
        config: RepositoryConfig,
        *,
        on_warning: Warn | None = None,
        codec: Codec = PLAIN,
    ):
        self.store = path if isinstance(path, RepoStore) else LocalStore(Path(path))
        self.config = config
        self.codec = codec
        self.objects = ObjectStore(self.store, codec, packing=config.packs)
        self.snapshots = SnapshotStore(self.store, self.objects, version=config.version)
        self._warn: Warn = on_warning or Warnings.emit
        self._held: HeldLock | None = None

    @property
    def id(self) -> str:
        return self.config.id

    @property
    def path(self) -> Path:
        """The folder of a local repository (UsageError for one in Azure: use ``location``)."""
        root = self.store.local_root
        if root is None:
            raise UsageError(f"repository {self.location} is not a local folder")
        return root

    @property
    def location(self) -> str:
        """Where the repository is, for messages: a folder or a URL without credentials."""
        return self.store.display

    @property
    def is_local(self) -> bool:
        return self.store.local_root is not None

    @property
    def encrypted(self) -> bool:
        return self.config.encrypted

    @property
    def has_key(self) -> bool:
        """An unencrypted repository, or an encrypted one opened with its key."""
        return not isinstance(self.codec, SealedCodec) or self.codec.has_key

    def close(self) -> None:
        """Release the connections of a remote repository (a no-op for a local one)."""
        self.store.close()

    def __enter__(self) -> Repository:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- opening ---------------------------------------------------------------------------

    @classmethod
    def init(
        cls,
        path: Location,
        *,
        auth: StorageAuth | None = None,
        on_warning: Warn | None = None,
        version: int = FORMAT_MAJOR,
        encrypt: bool | None = None,
        key: keys.UserKey | None = None,
    ) -> Repository:
        """Create a repository in a missing or empty directory (or container / prefix).
        ``version``: the repository format (1 only to make repositories for older readers
        and for tests of the format-1 reader). ``encrypt`` (None: ``KeySource.encrypt``):
        an encrypted repository whose master key ``key`` wraps (None: ``KeySource``)."""
        return _closing_on_error(
            open_store(path, auth),
            lambda s: cls._init(s, on_warning, version, _Keying(encrypt, key)),
        )

    @classmethod
    def open(
        cls,
        path: Location,
        *,
        auth: StorageAuth | None = None,
        on_warning: Warn | None = None,
        key: keys.UserKey | None = None,
        reading: str | None = None,
    ) -> Repository:
        """``key``: the user key of an encrypted repository (None: ``KeySource``; none at
        all opens it for what needs no key: listing, ``verify`` of its structure).
        ``reading``: why this run only reads ("a dry run"): every write, a lock file
        included, is refused (``ReadingStore``)."""
        keying = _Keying(None, key)
        store = open_store(path, auth)
        if reading is not None:
            store = ReadingStore(store, reading)
        return _closing_on_error(store, lambda s: cls._open(s, on_warning, keying))

    @classmethod
    def open_or_init(
        cls,
        path: Location,
        *,
        auth: StorageAuth | None = None,
        on_warning: Warn | None = None,
        encrypt: bool | None = None,
        key: keys.UserKey | None = None,
    ) -> Repository:
        keying = _Keying(encrypt, key)
        return _closing_on_error(
            open_store(path, auth), lambda s: cls._open_or_init(s, on_warning, keying)
        )

    @classmethod
    def _init(
        cls,
        store: RepoStore,
        on_warning: Warn | None,
        version: int = FORMAT_MAJOR,
        keying: _Keying | None = None,
    ) -> Repository:
        keying = keying or _Keying(None, None)
        if store.exists(CONFIG):
            raise UsageError(
                f"{store.display} is already an amlport repository", hint="open it instead"
            )
        if version not in SUPPORTED_FORMAT_MAJORS:
            raise UsageError(f"repository format {version} is not one amlport writes")
        encrypt = keying.encrypt and (version >= 2 or keying.asked)
        user = keying.user_key() if encrypt else None
        if encrypt and version < 2:
            raise UsageError("an encrypted repository is in format 2 or later")
        if encrypt and user is None:
            raise UsageError("--encrypt needs a key to wrap the repository key", hint=KEY_HINT)
        store.prepare_init()
        config = RepositoryConfig.new(version=version, encrypted=encrypt)
        if user is not None:  # the wrapped key first: config.json makes it a repository
            master = KeySource.test_master or secrets.token_bytes(32)
            keys.add_key(store, config.id, master, user)
            keys.remember(config.id, user, master)
        # Created exclusively and last: two racing inits agree on one config.
        store.create(CONFIG, config.to_bytes())
        return cls._open(store, on_warning, keying, fresh=True)

    @classmethod
    def _open(
        cls,
        store: RepoStore,
        on_warning: Warn | None,
        keying: _Keying | None = None,
        *,
        fresh: bool = False,
    ) -> Repository:
        keying = keying or _Keying(None, None)
        where = store.display
        if not store.root_exists():
            raise SourceNotFound(
                f"no repository at {where}", hint="create one with `amlport export --to`"
            )
        try:
            raw = store.read(CONFIG, limit=MAX_CONFIG_BYTES)
        except FileNotFoundError:
            raise _NoConfig(
                f"{where} is not an amlport repository (no {CONFIG})",
                hint="give the directory an export or backup created",
            ) from None
        config = RepositoryConfig.from_bytes(raw, where=f"repository {where}")
        codec: Codec = PLAIN
        if config.encrypted:
            user = keying.user_key()
            master = None if user is None else keys.unwrap(store, config.id, user)
            codec = SealedCodec(master)
        elif keying.asked and not fresh:
            raise UsageError(
                f"repository {where} exists and is not encrypted: --encrypt applies only when "
                "a repository is created",
                hint="leave --encrypt out, or give a new folder or container",
            )
        elif keying.explicit and not fresh:
            _refuse_key_for_plain(store)
        return cls(store, config, on_warning=on_warning, codec=codec)

    @classmethod
    def _open_or_init(
        cls, store: RepoStore, on_warning: Warn | None, keying: _Keying | None = None
    ) -> Repository:
        keying = keying or _Keying(None, None)
        # Opened unless there is no config at all: a config.json that is not a regular
        # file is refused by name (``_open``), not taken for a folder to initialise.
        with contextlib.suppress(SourceNotFound, _NoConfig):
            return cls._open(store, on_warning, keying)
        try:
            return cls._init(store, on_warning, keying=keying)
        except UsageError:
            if store.exists(CONFIG):  # another process initialised it meanwhile
                return cls._open(store, on_warning, keying)
            raise

    # --- keys (encrypted repositories) -----------------------------------------------------

    def key_list(self) -> list[keys.KeyInfo]:
        self._encrypted_only()
        return keys.list_keys(self.store)

    def key_add(self, new: keys.UserKey) -> str:
        """Wrap the master key with one more user key (the repository must be open with its
        key); the new key's id. No object is rewritten."""
        master = self._master()
        with self.lock(exclusive=False):
            return keys.add_key(self.store, self.id, master, new)

    def key_remove(self, key_id: str) -> None:
        """Remove one wrapped copy of the master key (never the last one)."""
        self._master()
        with self.lock(exclusive=True):
            keys.remove_key(self.store, key_id)

    def key_in_use(self) -> str:
        """The id of the wrapped copy the current user key opens."""
        self._master()
        user = KeySource.user_key()
        assert user is not None
        return keys.find_key(self.store, self.id, user)

    def _encrypted_only(self) -> None:
        if not self.encrypted:
            raise UsageError(f"repository {self.location} is not encrypted: it has no keys")

    def _master(self) -> bytes:
        self._encrypted_only()
        user = KeySource.user_key()
        if user is None or not self.has_key:
            raise UsageError(f"repository {self.location} was opened without its key",
                             hint=KEY_HINT)  # fmt: skip
        return keys.unwrap(self.store, self.id, user)

    # --- objects ---------------------------------------------------------------------------

    def has_object(self, digest: str) -> bool:
        return self.objects.has(digest)

    def put_bytes(self, data: bytes) -> str:
        return self.objects.put_bytes(data)

    def add_bytes(self, data: bytes) -> tuple[str, bool]:
        """(digest, new): ``new`` is False when the object was already stored."""
        return self.objects.add(data)

    def put_stream(
        self,
        stream: BinaryIO,
        *,
        expected_md5: str | None = None,
        expected_digest: str | None = None,
        progress: ByteProgress | None = None,
        judge: Callable[[bytes | memoryview], object] | None = None,
        again: Callable[[], contextlib.AbstractContextManager[BinaryIO]] | None = None,
    ) -> tuple[str, int]:
        return self.objects.put_stream(
            stream,
            expected_md5=expected_md5,
            expected_digest=expected_digest,
            progress=progress,
            judge=judge,
            again=again,
        )

    def get_bytes(self, digest: str) -> bytes:
        return self.objects.get_bytes(digest)

    def open_object(self, digest: str) -> BinaryIO:
        return self.objects.open(digest)

    def object_path(self, digest: str) -> Path:
        """The file of an object (local repositories only: UsageError for a remote one)."""
        return self.objects.path(digest)

    def object_size(self, digest: str) -> int:
        """Bytes of a stored object (0 when it is missing)."""
        return self.objects.size(digest) or 0

    # --- snapshots -------------------------------------------------------------------------

    def write_snapshot(self, manifest: Manifest) -> str:
        """Check the manifest and store it; sets ``created`` (if empty) and ``snapshot_id``.

        IntegrityError when it references an object that is not stored or is inconsistent;
        AmlportError when it contains anything that looks like a secret.
        """
        if self._held is not None:
            self._held.check()
        if not manifest.created:
            manifest.created = format_time(datetime.now(timezone.utc))
        if self.config.version < FORMAT_MAJOR:
            self._warn(
                f"repository {self.location} is in format {self.config.version}: every "
                "snapshot stores a whole manifest (megabytes per unchanged backup of a large "
                f"workspace); convert it with `amlport repo upgrade {self.location}`"
            )
        check = _ManifestCheck(manifest)
        sizes = self.objects.sizes(f.digest for f in manifest.files)
        _check_objects(manifest, sizes, self.objects.stored_size)
        return self.snapshots.write(manifest, check=check.value, check_text=check.text)

    def write_snapshot_again(self, previous: str, header: dict[str, Any]) -> str:
        """A snapshot holding what snapshot ``previous`` holds, with the header fields in
        ``header`` replaced (time, parent, tags, stats): a backup decided from its listing
        (``backup/run.py``). A format-2 root names the previous one's pieces (the growth is
        the root); otherwise the whole manifest is written again, in this repository's
        format. The header is checked as every snapshot's is (schema, no secret)."""
        if self._held is not None:
            self._held.check()
        header = {"created": format_time(datetime.now(timezone.utc)), **header}
        if self.config.version >= FORMAT_MAJOR and self.snapshots.format_of(previous) == 2:
            root = self.snapshots.read_root(previous)
            probe = Manifest.from_dict(
                {**root["manifest"], **header, **{key: [] for key in LISTS}},
                where="new snapshot",
            )
            check = _ManifestCheck(probe)
            return self.snapshots.write_root_again(previous, header, check_text=check.text)
        manifest = self.snapshots.load_exact(previous)
        manifest.snapshot_id = None
        for key, value in header.items():
            if key in ("created", "parent", "tags", "stats"):
                setattr(manifest, key, value)
            else:
                manifest.extra[key] = value
        return self.write_snapshot(manifest)

    def objects_intact(self, files: Iterable[tuple[str, int]]) -> bool:
        """Is every object of ``files`` ((digest, plain size) pairs) stored, with that size
        (what ``write_snapshot`` checks)? A backup decided from its listing reuses the
        previous snapshot's files only then: a missing or cut-short object is stored again
        by a backup that walks."""
        wanted = list(files)
        sizes = self.objects.sizes(d for d, _ in wanted)
        missing, wrong = _unfit_objects(wanted, sizes, self.objects.stored_size)
        return not missing and not wrong

    def list_snapshots(self) -> list[SnapshotInfo]:
        return self.snapshots.infos()

    def load_snapshot(self, id_or_prefix: str) -> Manifest:
        return self.snapshots.load(id_or_prefix)

    def latest_snapshot(
        self,
        source_key: str,
        plan: LoadPlan = WHOLE,
    ) -> Manifest | None:
        """The newest snapshot of a source (``Manifest.source_key``), None if it has none.
        Only the newest is loaded (what ``plan`` keeps, sharing its strings); the others are
        read for their header."""
        mine = [i for i in self.snapshots.infos() if i.source_key == source_key]
        if not mine:
            return None
        newest = mine[-1].id
        return self.snapshots.load_exact(newest, plan)

    def iter_files(self, manifest: Manifest) -> Iterator[tuple[FileEntry, Path]]:
        """Each file of a snapshot with the path of its object (local, unencrypted
        repositories only: an encrypted object's file holds sealed bytes; read it with
        open_object, which works everywhere)."""
        if self.codec.sealed:
            raise UsageError(
                f"repository {self.location} is encrypted: its object files hold sealed bytes",
                hint="read objects with open_object/read_file",
            )
        for entry in sorted(manifest.files, key=lambda f: f.path):
            yield entry, self.objects.path(entry.digest)

    def read_file(self, manifest: Manifest, bundle_path: str) -> bytes:
        entry = manifest.file(bundle_path)
        if entry is None:
            raise UsageError(f"snapshot has no file {bundle_path!r}")
        return self.objects.get_bytes(entry.digest, entry.size)

    def extract_files(self, manifest: Manifest, dest: Path, *, under: str = "") -> list[Path]:
        """Write the snapshot's files below bundle path ``under`` into ``dest`` (verified)."""
        prefix = under.rstrip("/") + "/" if under else ""
        written = []
        for entry in sorted(manifest.files, key=lambda f: f.path):
            if not entry.path.startswith(prefix):
                continue
            rel = check_bundle_path(entry.path[len(prefix) :], where=entry.path)
            target = files.local_path(dest, rel)
            target.parent.mkdir(parents=True, exist_ok=True)
            files.write_atomic(target, self.objects.get_bytes(entry.digest, entry.size))
            written.append(target)
        return written

    # --- integrity and retention -----------------------------------------------------------

    def verify(
        self, snapshot_id: str | None = None, *, progress: Progress | None = None
    ) -> verification.VerifyReport:
        """Every snapshot and the objects it references; an encrypted repository opened
        without its key: the structure of every stored object (``keyless_verify``)."""
        with self.lock(exclusive=False):  # a concurrent prune would look like damage
            if not self.has_key:
                from amlport.bundle.keyless import keyless_verify

                self._warn(
                    f"repository {self.location} is encrypted and was opened without its key: "
                    "only its structure is checked (headers, sizes, keys), not its contents; "
                    "give --key-file or $AMLPORT_REPO_KEY to check every object"
                )
                return keyless_verify(self.store, self.objects, self.snapshots, progress)
            return verification.verify(self.objects, self.snapshots, snapshot_id, progress)

    def forget(
        self,
        *,
        keep_last: int = 0,
        keep_daily: int = 0,
        keep_weekly: int = 0,
        keep_monthly: int = 0,
        keep_tags: tuple[str, ...] | list[str] = (),
        dry_run: bool = False,
    ) -> ForgetPlan:
        """Remove the snapshots no rule keeps (per source); objects stay until ``prune``."""
        policy = RetentionPolicy(keep_last, keep_daily, keep_weekly, keep_monthly, tuple(keep_tags))
        guard = contextlib.nullcontext() if dry_run else self.lock(exclusive=True)
        with guard:
            plan = plan_forget(self.list_snapshots(), policy)
            plan.dry_run = dry_run
            if not dry_run:
                for snap in plan.remove:
                    self.snapshots.delete(snap.id)
                plan.removed = True
        return plan

    def prune(
        self,
        *,
        dry_run: bool = False,
        progress: Progress | None = None,
        among: Iterable[str] | None = None,
    ) -> PruneReport:
        """Delete the objects no snapshot references (all snapshots must be readable).
        ``among`` (dry run only): what prune would do were only these snapshots kept."""
        guard = contextlib.nullcontext() if dry_run else self.lock(exclusive=True)
        with guard:
            return collect_garbage(
                self.objects,
                self.snapshots,
                dry_run=dry_run,
                progress=progress,
                warn=self._warn,
                among=among,
            )

    # --- locks, index, packs ---------------------------------------------------------------

    @contextlib.contextmanager
    def lock(
        self, exclusive: bool = True, *, stale_after: timedelta = DEFAULT_STALE_AFTER
    ) -> Iterator[HeldLock]:
        """Hold a lock for the block; re-entrant on the same Repository object."""
        if self._held is not None:
            if exclusive and not self._held.exclusive:
                raise UsageError("cannot take an exclusive lock while holding a shared one")
            yield self._held
            return
        held = acquire(self.store, exclusive=exclusive, stale_after=stale_after, warn=self._warn)
        self._held = held
        try:
            yield held
        except (IntegrityError, FileNotFoundError) as exc:
            if not isinstance(held, ReadOnlyLock):
                raise
            raise _read_without_a_lock(self.location, exc) from None
        finally:
            self._held = None
            held.release()

    def locks(self) -> list[LockInfo]:
        return list_locks(self.store)

    def source_index(
        self,
        source_key: str,
        plan: LoadPlan = WHOLE,
    ) -> SourceIndex:
        """``plan``: its ``known`` and ``strings``, strings already in memory, to share
        (``SourceIndex``)."""
        sizes = self.objects.plain_sizer()  # rows record plain sizes
        compress = self.config.version >= 2  # format 1 keeps what amlport 0.1 reads
        store = self.store
        if isinstance(self.codec, SealedCodec):  # blob names and etags: sealed too
            store = cast(RepoStore, SealedValues(self.store, self.codec))
        known, strings, prefix = plan.known, plan.strings, plan.prefix
        return SourceIndex(
            store, source_key, sizes, self._warn, known, strings, compress=compress, prefix=prefix
        )

    def pack(
        self, snapshot_id: str, out_path: str | Path, *, progress: Progress | None = None
    ) -> archive.PackReport:
        with self.lock(exclusive=False):
            return archive.pack(
                self.objects, self.snapshots, self.config, snapshot_id, Path(out_path), progress
            )

    @classmethod
    def unpack(
        cls,
        archive_path: str | Path,
        repo_path: Location,
        *,
        progress: Progress | None = None,
        on_warning: Warn | None = None,
        auth: StorageAuth | None = None,
        key: keys.UserKey | None = None,
    ) -> archive.UnpackReport:
        """Import a pack (made by ``pack``) into a repository, creating it if missing. A pack
        of an encrypted repository needs its key (``key``, else ``KeySource``) and goes into
        a new repository (its config and wrapped keys: the same keys open it) or one with the
        same master key (docs/design/0013, "Packs")."""
        keying = _Keying(False, key)  # a repository made here is never encrypted anew
        # reject a hostile archive before writing
        scanned = archive.scan(Path(archive_path), keying.user_key)
        if scanned.sealed:  # the key was given for the pack: a plain target is refused below
            keying.explicit = False

        def target(store: RepoStore) -> Repository:
            with contextlib.suppress(SourceNotFound, _NoConfig):
                return cls._open(store, on_warning, keying)
            if scanned.sealed and archive.init_copy(store, scanned):
                return cls._open(store, on_warning, keying, fresh=True)
            return cls._open_or_init(store, on_warning, keying)

        repo = _closing_on_error(open_store(repo_path, auth), target)
        with repo, repo.lock(exclusive=False):
            archive.check_target(scanned, repo.objects, repo.location)
            return archive.unpack_into(
                Path(archive_path), scanned, repo.objects, repo.snapshots, progress
            )


T = TypeVar("T")


class _Keying:
    """What an opener said about keys: ``encrypt`` (None: ``KeySource.encrypt``) and ``key``
    (None: ``KeySource.user_key()``, read once)."""

    def __init__(self, encrypt: bool | None, key: keys.UserKey | None) -> None:
        self.asked = encrypt is True or (encrypt is None and KeySource.encrypt)
        self.encrypt = self.asked or (encrypt is None and KeySource.test_encrypt)
        self._key = key
        self._read = key is not None
        self.explicit = key is not None or KeySource.explicit()

    def user_key(self) -> keys.UserKey | None:
        if not self._read:
            self._key = KeySource.user_key()
            self._read = True
        return self._key


def _refuse_key_for_plain(store: RepoStore) -> None:
    """A key given for an unencrypted repository: a mistake, or a ``config.json`` stripped
    of its ``encryption`` so that the next backup would write in the clear."""
    if keys.key_ids(store):
        raise IntegrityError(
            f"repository {store.display}: config.json declares no encryption but keys/ holds "
            "wrapped keys (config.json was altered?)",
            hint="restore config.json from a copy; nothing was written",
        )
    raise UsageError(
        f"repository {store.display} is not encrypted: --key-file and --key-vault-secret "
        "apply to encrypted repositories only",
        hint="leave the key out, or create an encrypted repository with --encrypt",
    )


class _NoConfig(UsageError):
    """The place holds no ``config.json``: not a repository (yet)."""


def _read_without_a_lock(where: object, exc: IntegrityError | FileNotFoundError) -> IntegrityError:
    """What a run that read without a lock file (a dry run, a read-only credential) says when
    something it read is missing or does not check: a prune or forget may have run meanwhile,
    which its missing lock did not hold off (exit 4 all the same: it cannot tell)."""
    if isinstance(exc, IntegrityError):
        message, hint = exc.message, exc.hint
    else:
        message, hint = f"{exc.filename or exc} is missing from repository {where}", None
    return IntegrityError(
        f"{message} (this run read the repository without a lock file: a prune or forget "
        "that ran meanwhile removes what it reads)",
        hint="run it again; if it fails again, run `amlport verify`"
        + (f" ({hint})" if hint else ""),
    )


def _closing_on_error(store: RepoStore, then: Callable[[RepoStore], T]) -> T:
    try:
        return then(store)
    except BaseException:
        store.close()
        raise


def _unfit_objects(
    files: list[tuple[str, int]], sizes: dict[str, int | None], stored_size: Callable[[int], int]
) -> tuple[list[int], list[int]]:
    """The one predicate of ``objects_intact`` and ``_check_objects``: the positions in
    ``files`` ((digest, plain size) pairs) whose object is not stored (``sizes``: the stored
    sizes, None for missing), and of those whose stored size is not ``stored_size`` of the
    recorded one."""
    missing: list[int] = []
    wrong: list[int] = []
    for i, (digest, size) in enumerate(files):
        have = sizes[digest]
        if have is None:
            missing.append(i)
        elif have != stored_size(size):
            wrong.append(i)
    return missing, wrong


def _check_objects(
    manifest: Manifest, sizes: dict[str, int | None], stored_size: Callable[[int], int]
) -> None:
    """Every object a new snapshot references is stored, with the size its entry records
    (``stored_size``: what that size takes in the store): a backup or export never reports
    success for a snapshot ``verify`` would refuse for a missing or cut-short object (an
    object reused through a damaged index, say)."""
    files = manifest.files
    missing, wrong = _unfit_objects([(f.digest, f.size) for f in files], sizes, stored_size)
    if missing:
        first = files[missing[0]]
        raise IntegrityError(
            f"snapshot not written: {len(missing)} file(s) reference objects that are not "
            f"stored, first {first.path} ({first.digest})",
            hint="store every file with put_bytes/put_stream before writing the snapshot",
        )
    if wrong:
        first = files[wrong[0]]
        raise IntegrityError(
            f"snapshot not written: {len(wrong)} file(s) record a size their object does not "
            f"have, first {first.path} ({first.digest}: {sizes[first.digest]} bytes stored, "
            f"{stored_size(first.size)} expected for the {first.size} recorded)",
            hint="the repository holds a damaged object or index: run `amlport verify`, "
            "remove what it names, and run the command again",
        )


class _ManifestCheck:
    """What writing a snapshot checks, one entry at a time as ``iter_json`` produces it (a
    manifest of 100k files is never held as one text): each entry parses back with the
    reader (types, paths, digests), the header too, and no text looks like a secret."""

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest
        check_references(manifest.files, manifest.assets, where="new snapshot")
        header = manifest.header()
        header.update({key: [] for key in LISTS})
        Manifest.from_dict(header, where="new snapshot")
        newer = parse_schema(manifest.schema)[1] > SCHEMA_MINOR
        self._parsers = {key: entry_parser(key, newer=newer) for key in LISTS}

    def value(self, key: str, value: Any) -> None:
        parse = self._parsers.get(key)
        if parse is not None:
            parse(value, f"new snapshot, {key}")

    def text(self, chunk: str) -> None:
        # Redacting is idempotent on clean text (``sig=REDACTED`` stays as it is), so a
        # change means a live value is still there.
        if may_hold_secret(chunk) and redact(chunk) != chunk:
            raise AmlportError(
                "snapshot not written: its manifest holds secret-like value(s) "
                f"({', '.join(sorted(find_secrets(chunk)))})",
                hint="redact rewrites, warnings and attributes before recording them",
            )
