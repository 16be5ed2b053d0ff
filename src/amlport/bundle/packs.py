"""Pack files: many small objects in one stored file (docs/bundle-format.md, *Pack files*).

A first backup of a workspace of small files wrote one file per object, and creating
thousands of inodes was a third of its system time (design 0007, *Pack files*). In a
repository whose ``config.json`` declares ``packs``, the data objects a backup stores whose
stored form is smaller than ``PACK_BELOW`` are appended to a **pack** instead: each object's
stored bytes exactly as its loose file would hold them (plain, or sealed one by one), so the
codec is unchanged. A pack is the key ``packs/<2 hex>/<64 hex>`` named by the SHA-256 of its
bytes; an **index piece** ``packs/index/<64 hex>`` (a metadata object: compressed, sealed in an
encrypted repository, named by its metadata name) lists, per pack, digest → (offset, length).

Both are ordinary keys of the ``RepoStore``: every backend gets them with no code of its own.
A pack is durable before the index piece that names it, and that piece before the snapshot
root (``ObjectStore.batch``): nothing names what is not durable. A pack no index names is a
crash leftover that ``prune`` deletes.

Index pieces are hostile input like any other metadata: their plain length is bounded
(``MAX_INDEX_BYTES``), the table must be exactly as long as its counts say, each entry lies
inside its pack, entries are sorted and do not overlap, and no length exceeds
``MAX_ENTRY_BYTES`` (a read never allocates what an index claims beyond that).
"""

from __future__ import annotations

import hashlib
import io
import struct
import threading
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from amlport.errors import IntegrityError

if TYPE_CHECKING:
    from amlport.bundle.store import RepoStore

FOLDER = "packs/"
INDEX_FOLDER = "packs/index/"
PACK_BELOW = 512 * 1024  # stored size below which a backup packs an object
# A pack is written once it holds this much. It is in memory until then: part of a first
# backup's high-water mark (8 MiB before, docs/design/0007, *B, session 8*).
PACK_TARGET = 4 << 20
MAX_ENTRY_BYTES = 4 << 20  # readers refuse a longer entry (writers stay below PACK_BELOW)
MAX_PACK_BYTES = 1 << 30  # readers refuse a pack an index says is larger
MAX_INDEX_BYTES = 64 << 20  # plain bytes of one index piece (= a metadata piece)
MAGIC = b"amlport.packs/1\0"
_PACK_HEAD = struct.Struct(">32sQI")  # pack sha256, pack size, entries
_ENTRY = struct.Struct(">32sQI")  # object name, offset, length
_COUNT = struct.Struct(">I")
_READ_CHUNK = 1 << 20
_HINT = "run `amlport verify`; `amlport prune` rewrites the pack index from what is readable"


def pack_key(pack_hex: str) -> str:
    return f"{FOLDER}{pack_hex[:2]}/{pack_hex}"


def index_key(name: str) -> str:
    return f"{INDEX_FOLDER}{name}"


def pack_of_name(name: str) -> str | None:
    """The pack hex of a name listed below ``packs/`` (``ab/ab12…``), if it is one."""
    fan, _, hexd = name.partition("/")
    ok = len(fan) == 2 and _is_hex64(hexd) and hexd.startswith(fan)
    return hexd if ok else None


def _is_hex64(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


@dataclass
class PackEntries:
    """One pack as an index piece lists it: (object hex, offset, length), sorted by offset."""

    pack: str  # hex: SHA-256 of the pack's bytes
    size: int
    entries: list[tuple[str, int, int]] = field(default_factory=list)


def encode_index(packs: list[PackEntries]) -> bytes:
    """The plain bytes of an index piece: ``MAGIC``, a count of packs, then per pack its
    name, size and count, and its entries (name, offset, length), all big-endian."""
    ordered = sorted(packs, key=lambda p: p.pack)
    return b"".join([MAGIC, _COUNT.pack(len(packs)), *map(_encode_pack, ordered)])


def _encode_pack(pack: PackEntries) -> bytes:
    entries = sorted(pack.entries, key=lambda e: (e[1], e[2]))  # an empty one first
    rows = [_ENTRY.pack(bytes.fromhex(h), offset, length) for h, offset, length in entries]
    return b"".join([_PACK_HEAD.pack(bytes.fromhex(pack.pack), pack.size, len(entries)), *rows])


def decode_index(plain: bytes, *, where: str) -> list[PackEntries]:
    """The packs an index piece lists, every bound checked (IntegrityError naming ``where``)."""
    return [
        PackEntries(pack, size, [(name.hex(), offset, length) for name, offset, length in rows])
        for pack, size, rows in _table(plain, where)
    ]


Rows = list[tuple[bytes, int, int]]  # (object name: 32 bytes, offset, length)


def _table(plain: bytes, where: str) -> list[tuple[str, int, Rows]]:
    """(pack hex, size, rows) of an index piece's table, every bound checked."""

    def bad(why: str) -> IntegrityError:
        return IntegrityError(f"{where}: pack index is damaged: {why}", hint=_HINT)

    if len(plain) > MAX_INDEX_BYTES:
        raise bad(f"{len(plain)} bytes, more than {MAX_INDEX_BYTES}")
    if not plain.startswith(MAGIC) or len(plain) < len(MAGIC) + _COUNT.size:
        raise bad("not an amlport.packs/1 table")
    pos = len(MAGIC)
    (count,) = _COUNT.unpack_from(plain, pos)
    pos += _COUNT.size
    found: list[tuple[str, int, Rows]] = []
    seen: set[str] = set()
    view = memoryview(plain)
    for _ in range(count):
        if pos + _PACK_HEAD.size > len(plain):
            raise bad("it ends inside a pack header")
        raw, size, entries = _PACK_HEAD.unpack_from(plain, pos)
        pos += _PACK_HEAD.size
        pack = raw.hex()
        if pack in seen:
            raise bad(f"pack {pack} is listed twice")
        seen.add(pack)
        if size > MAX_PACK_BYTES:
            raise bad(f"pack {pack} claims {size} bytes, more than {MAX_PACK_BYTES}")
        if pos + entries * _ENTRY.size > len(plain):  # checked before anything is allocated
            raise bad(f"pack {pack} claims {entries} entries the table does not hold")
        rows: Rows = list(_ENTRY.iter_unpack(view[pos : pos + entries * _ENTRY.size]))
        pos += entries * _ENTRY.size
        end = 0
        for name, offset, length in rows:
            if length > MAX_ENTRY_BYTES or offset < end or offset + length > size:
                what = (
                    f"claims {length} bytes" if length > MAX_ENTRY_BYTES
                    else "overlaps another" if offset < end
                    else f"lies outside pack ({offset}+{length} > {size} bytes)"
                )  # fmt: skip
                raise bad(f"object sha256:{name.hex()} {what} in pack {pack}")
            end = offset + length
        if len({r[0] for r in rows}) != len(rows):
            raise bad(f"an object is listed twice in pack {pack}")
        found.append((pack, size, rows))
    if pos != len(plain):
        raise bad(f"{len(plain) - pos} bytes after the last pack")
    return found


class PackIndex:
    """Every packed object of a repository: digest → (pack, offset, length), compact (about
    60 bytes an object: its 32-byte name in one ``bytearray``, an open-addressing table of
    row numbers, and three arrays; a dict from a ``bytes`` name to a row number took about
    170, 8.7 MB of a 100k first backup's high-water mark; docs/design/0007, "Peak memory of
    backup at 100k (B, session 7)"). The table's slots come from ``hash`` of the name, which
    is keyed per process: an index piece whose names were chosen to collide cannot make
    a load quadratic."""

    def __init__(self) -> None:
        self._names = bytearray()  # row i: bytes [32 i, 32 i + 32)
        self._slots = array("I", bytes(4 * _FIRST_SLOTS))  # row + 1 of a first copy; 0: free
        self._firsts = 0  # rows in the table (first copies)
        self._pack_no = array("I")
        self._offset = array("Q")
        self._length = array("I")
        self.packs: list[str] = []  # pack hex by number
        self.pack_sizes: list[int] = []
        self._pack_numbers: dict[str, int] = {}
        self.index_keys: set[str] = set()  # index pieces read
        self.problems: list[tuple[str, str]] = []  # (key, what is wrong): unreadable pieces
        # Further copies of an object (rows), read only when its first copy's pack is
        # damaged: rare (two runs storing the same bytes, a prune killed after its new index).
        self._more: dict[bytes, list[int]] = {}

    def __len__(self) -> int:
        return self._firsts

    @property
    def rows(self) -> int:
        """Rows held: every copy of every object."""
        return len(self._offset)

    def _row(self, name: bytes) -> int:
        """The row of an object's first copy, -1 when none."""
        slots, names = self._slots, self._names
        mask = len(slots) - 1
        i = hash(name) & mask
        while row := slots[i]:
            start = (row - 1) * _NAME
            if names[start : start + _NAME] == name:
                return row - 1
            i = (i + 1) & mask
        return -1

    def _append(self, name: bytes, number: int, offset: int, length: int) -> None:
        """One row (a first copy, or a further one): complete before the table names it, so
        that a thread that ``find``s meanwhile sees an object or not, never half of one."""
        if 2 * (self._firsts + 1) > len(self._slots):  # at most half full
            self._grow()
        slots, names = self._slots, self._names
        mask = len(slots) - 1
        i = hash(name) & mask
        first = True
        while held := slots[i]:  # one probe: the first copy, or the free slot
            start = (held - 1) * _NAME
            if names[start : start + _NAME] == name:
                first = False
                break
            i = (i + 1) & mask
        row = len(self._offset)
        names += name
        self._pack_no.append(number)
        self._offset.append(offset)
        self._length.append(length)
        if first:
            slots[i] = row + 1
            self._firsts += 1
        else:  # a copy in another pack: the first one is read
            self._more.setdefault(name, []).append(row)

    def _grow(self) -> None:
        """A table twice as large, every first copy placed again (the new table is swapped
        in whole: a concurrent ``find`` reads the old one or the new one)."""
        old, names = self._slots, self._names
        slots = array("I", bytes(8 * len(old)))
        for row in old:
            if row:
                start = (row - 1) * _NAME
                _place(slots, bytes(names[start : start + _NAME]), row - 1)
        self._slots = slots

    def add_pieces(self, key: str, packs: list[PackEntries]) -> None:
        if key:
            self.index_keys.add(key)
        for pack in packs:
            number = self._number(pack.pack, pack.size)
            for hexd, offset, length in pack.entries:
                self._append(bytes.fromhex(hexd), number, offset, length)

    def add_table(self, key: str, plain: bytes) -> None:
        """``add_pieces`` of an index piece's plain bytes (checked), without a string per
        object."""
        for pack, size, rows in _table(plain, key):
            number = self._number(pack, size)
            for name, offset, length in rows:
                self._append(name, number, offset, length)
        if key:
            self.index_keys.add(key)

    def _number(self, pack: str, size: int) -> int:
        number = self._pack_numbers.get(pack)
        if number is None:
            number = self._pack_numbers[pack] = len(self.packs)
            self.pack_sizes.append(size)  # first: a reader zips packs with their sizes
            self.packs.append(pack)
        return number

    def find(
        self, hexd: str, avoid: frozenset[str] | Callable[[], frozenset[str]] = frozenset()
    ) -> tuple[str, int, int] | None:
        """(pack hex, offset, length) of an object, None when no pack holds it: its first
        copy, or, when that copy's pack is in ``avoid`` (damaged packs; a callable is asked
        only for an object with more than one copy), the first copy in another pack."""
        try:
            name = bytes.fromhex(hexd)
        except ValueError:
            return None
        if len(name) != _NAME:
            return None
        row = self._row(name)
        if row < 0:
            return None
        more = self._more.get(name)
        if more:
            damaged = avoid() if callable(avoid) else avoid
            for other in [row, *more]:
                if self.packs[self._pack_no[other]] not in damaged:
                    row = other
                    break
        return self.packs[self._pack_no[row]], self._offset[row], self._length[row]

    def copies_of(self, hexd: str) -> list[tuple[str, int, int]]:
        """Every copy of an object as (pack hex, offset, length), its first copy first; []
        when no pack holds it (a read falls back to another copy when one is damaged)."""
        name = bytes.fromhex(hexd)
        row = self._row(name)
        if row < 0:
            return []
        rows = [row, *self._more.get(name, ())]
        return [(self.packs[self._pack_no[r]], self._offset[r], self._length[r]) for r in rows]

    def has_copies(self, hexd: str) -> bool:
        """Does more than one pack hold this object? (Most objects have one copy: no lookup
        in the table, one in the dict of further copies, itself mostly empty.)"""
        return bool(self._more) and bytes.fromhex(hexd) in self._more

    def copies(self) -> int:
        """How many further copies the index holds (objects named by two packs)."""
        return sum(map(len, self._more.values()))

    def items(self) -> Iterator[tuple[str, int]]:
        """(object hex, stored length) of every packed object (its first copy), in the
        order they were added."""
        names, more = self._names, self._more
        for row in range(len(self._offset)):
            name = bytes(names[row * _NAME : (row + 1) * _NAME])
            if more and name in more and row in more[name]:
                continue  # a further copy
            yield name.hex(), self._length[row]

    def pack_rows(self, number: int, first: int, count: int) -> PackEntries:
        """Rows ``first`` .. ``first + count - 1``, all of pack ``number``, as its entries."""
        names = self._names
        entries = [
            (names[r * _NAME : (r + 1) * _NAME].hex(), self._offset[r], self._length[r])
            for r in range(first, first + count)
        ]
        return PackEntries(self.packs[number], self.pack_sizes[number], entries)


_NAME = 32  # bytes of an object name
_FIRST_SLOTS = 8


def _place(slots: array[int], name: bytes, row: int) -> None:
    mask = len(slots) - 1
    i = hash(name) & mask
    while slots[i]:
        i = (i + 1) & mask
    slots[i] = row + 1


def pack_problem(store: RepoStore, pack_hex: str) -> str | None:
    """Read a pack whole: None when its bytes hash to its name, else what is wrong (verify's
    and prune's one check of a pack's bytes)."""
    key = pack_key(pack_hex)
    sha = hashlib.sha256()
    try:
        with store.open(key, limit=MAX_PACK_BYTES) as fh:
            while chunk := fh.read(_READ_CHUNK):
                sha.update(chunk)
    except FileNotFoundError:
        return f"pack {key} was removed while being checked"
    except IntegrityError as exc:
        return f"pack {key}: {exc.message}"
    if sha.hexdigest() != pack_hex:
        return f"pack {key} is corrupt: its bytes hash to {sha.hexdigest()}"
    return None


class Packer:
    """The pack a batch is building (``ObjectStore.batch``): objects appended in memory,
    written as a pack every ``PACK_TARGET`` bytes through ``write`` (the store's
    ``put_once``), thread-safe. ``flushed`` indexes the packs written (compactly: a
    100k-object batch must not hold a tuple per object); their index piece is encoded from
    it at the end (``index_plain``).

    The pack in memory is a ``BytesIO``: its ``getvalue`` hands the written bytes over
    without a copy, where ``bytes(bytearray)`` held the pack twice while it was written (a
    first backup's high-water mark: one more pack per flush, docs/design/0007, *B, session 8*)."""

    def __init__(self, write: Callable[[str, bytes], object], target: int | None = None) -> None:
        self._write = write
        self._target = PACK_TARGET if target is None else target
        self._lock = threading.Lock()
        self._buffer = io.BytesIO()
        self._entries: list[tuple[str, int, int]] = []
        self._pending: dict[str, tuple[int, int]] = {}  # in memory: hex -> (offset, length)
        self.flushed = PackIndex()
        self._spans: list[tuple[int, int]] = []  # per pack written: its first row, its rows
        self.packs = 0

    def find(self, hexd: str) -> tuple[str | None, int, int] | None:
        """Where an object of this batch is: (pack hex, or None while in memory; offset,
        length)."""
        with self._lock:
            pending = self._pending.get(hexd)
            if pending is not None:
                return None, pending[0], pending[1]
            return self.flushed.find(hexd)

    def buffered(self, offset: int, length: int) -> bytes | None:
        """Bytes of the pack in memory (None: it was written meanwhile; ask ``find`` again)."""
        with self._lock:
            if offset + length > self._buffer.tell():
                return None
            with self._buffer.getbuffer() as view:  # released before the next write
                return bytes(view[offset : offset + length])

    def add(self, hexd: str, stored: bytes) -> bool:
        """Append an object's stored bytes; False when this batch holds it already."""
        with self._lock:
            if hexd in self._pending or self.flushed.find(hexd) is not None:
                return False
            offset = self._buffer.tell()
            self._buffer.write(stored)
            self._entries.append((hexd, offset, len(stored)))
            self._pending[hexd] = (offset, len(stored))
            if self._buffer.tell() >= self._target:
                self._flush_locked()
        return True

    def flush(self) -> None:
        with self._lock:
            self._flush_locked()

    def index_plain(self) -> bytes | None:
        """The plain bytes of the index piece naming every pack written (None: none was)."""
        with self._lock:
            if not self.packs:
                return None
            packs = (self.flushed.pack_rows(n, *span) for n, span in enumerate(self._spans))
            return b"".join([MAGIC, _COUNT.pack(self.packs), *map(_encode_pack, packs)])

    def _flush_locked(self) -> None:
        if not self._entries:
            return
        data = self._buffer.getvalue()  # the buffer's own bytes: no second copy of the pack
        pack = PackEntries(hashlib.sha256(data).hexdigest(), len(data), self._entries)
        self._write(pack_key(pack.pack), data)
        self._spans.append((self.flushed.rows, len(self._entries)))
        self.packs += 1
        self.flushed.add_pieces("", [pack])
        self._buffer = io.BytesIO()
        self._entries = []
        self._pending = {}
