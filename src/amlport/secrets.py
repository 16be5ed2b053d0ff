"""Secret detection and redaction: pure functions (``scan_stream`` reads the stream it is
given, nothing else).

One place knows what a secret looks like, so the walker (findings), the exporters (scrubbing),
``verify --secrets``, the error messages and the logs all agree. Values are never returned or
stored: callers get the redacted text and a count per kind. ``install_log_redaction`` applies
the redactor to every log record (the storage SDK and urllib3 log request URLs, SAS signature
included).

Kinds: Azure storage credentials (connection strings, ``AccountKey=``, bare 88-character
account keys, SAS signatures in any URL/JSON escaping, the designer pointer's ``SasToken``),
bearer tokens, passwords in URL userinfo, client secrets, passwords and other credential
values assigned in YAML/JSON/env/cfg/Python/Dockerfile text, AWS access keys, PEM private
keys, GitHub, Hugging Face and OpenAI-style tokens, JWTs, and connection strings or keys that
were base64-encoded. ``find_secrets_in_bytes`` and ``ByteScanner`` search raw bytes of any file
(binary, UTF-16) for the same patterns.

Speed: each pattern names the substrings (``triggers``) without which it cannot match; text
holding none of a pattern's triggers skips that pattern, and text holding no trigger at all
skips every regular expression (one lower-casing and a few substring searches). Binary data
is searched only in its runs of printable text (``_search_bytes``), and where Vectorscan is
installed only in those that hold a trigger (``secret_prefilter``; same results); there, a
long text's pre-check is Vectorscan's search for the triggers (``may_hold_secret``). Design:
docs/design/0004-safety-by-construction.md, "One secret detector".
"""

from __future__ import annotations

import base64
import collections
import logging
import re
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any, BinaryIO

import amlport.secret_prefilter as secret_prefilter

REDACTED = "REDACTED"

# A value already replaced by REDACTED is not a secret any more (redaction is idempotent).
_NOT_DONE = rf"(?!{REDACTED}(?![A-Za-z0-9+/=%]))"
# A SAS signature ends with its base64 padding (``=``, ``%3D``, ``%253D``); one that reaches the
# end of a line without it was wrapped, and its rest is on the next line.
# The rest ends where a base64 run ends; a run followed by ``:`` is the scheme of the next
# line's URI (``wasbs://…``), not the signature's tail.
_WRAPPED = r"(?:(?<!=)(?<!%3d)\r?\n[A-Za-z0-9%+/=]+(?![A-Za-z0-9%+/=:]))?"
# ``&`` in the spellings a SAS query string takes: plain, JSON-escaped, URL-encoded once/twice.
_AMP = r"(?:[?&]|\\u0026|%26|%2526|&amp;)"
_SIG = r"sig(?:=|%3d|%253d)"


@dataclass(frozen=True)
class _Pattern:
    """One kind of secret. The regular expression's group ``v``, when it has one, is the
    secret (the rest of the match is context that stays, such as ``AccountKey=``); without
    it the whole match is. ``triggers``: lower-case substrings, one of which any match holds."""

    kind: str
    regex: re.Pattern[str]
    triggers: tuple[str, ...]
    replacement: str = REDACTED
    # A fast expression (it starts with a literal) that finds something in every text the
    # pattern matches: where a trigger is common ("=="), it spares the slow full search.
    anchor: re.Pattern[str] | None = None
    # Lower-case substrings one of which every match holds, where the triggers are common
    # ("key:" in YAML): ``_present`` looks for them only in a text holding a trigger (so
    # they do not slow the pre-check of every text), and a text holding none is skipped.
    words: tuple[str, ...] = ()

    def applies(self, text: str, present: frozenset[str]) -> bool:
        """Could this pattern match ``text``, which holds the triggers and words ``present``
        (``_present``)?"""
        if present.isdisjoint(self.triggers):
            return False
        if self.words and present.isdisjoint(self.words):
            return False
        return self.anchor is None or self.anchor.search(text) is not None


def _p(
    kind: str,
    pattern: str,
    triggers: Iterable[str],
    *,
    flags: int = re.I,
    anchor: str = "",
    words: Iterable[str] = (),
) -> _Pattern:
    fast = re.compile(anchor, flags) if anchor else None
    return _Pattern(
        kind, re.compile(pattern, flags), tuple(triggers), anchor=fast, words=tuple(words)
    )


def _b64_fragments(word: bytes) -> list[str]:
    """The parts of ``base64(… + word + …)`` that depend on ``word`` alone, for each of the
    three alignments ``word`` can have in the encoded data."""
    out = []
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + word).decode()
        out.append(encoded[(offset * 8 + 5) // 6 : ((offset + len(word)) // 3) * 4])
    return out


_B64_FRAGMENTS = [
    f
    for w in (b"AccountKey=", b"DefaultEndpointsProtocol=", b"SharedAccessSignature=")
    for f in _b64_fragments(w)
]

# Values assigned to a credential-named key (``password: x``, ``"clientSecret": "x"``,
# ``AZURE_CLIENT_SECRET=x``, ``ENV TOKEN x``). Not a secret: references and placeholders
# (``${VAR}``, ``<your key>``, ``{{ x }}``, ``os.environ[…]``), words like ``null``/``true``,
# numbers, a value with a space, an unquoted value without a digit (``password = password``
# in code), a call (``f(…)``). The match starts at the key word, not at the start of the key
# name: a lazy key-name prefix would be tried at every position of the text (slow).
# How far the generic rules look: without a bound, a hostile line repeating a key word
# ("password=password=…", no digit) makes every occurrence scan to the line's end
# (quadratic: 128 KiB took 40-60 s). A value longer than _LONGEST under a credential-named
# key is not recognised by these generic rules (the specific shapes above have no limit).
_SCAN = 256
_LONGEST = 4096
_KEY_SEP = r"""\\?["']?[ \t]*[:=][ \t]*"""
_NOT_VALUE = (
    rf"{_NOT_DONE}(?![^\s\"'\\]{{0,{_SCAN}}}{REDACTED})"
    r"(?!(?i:none|null|nil|true|false|yes|no|changeme|string|required|optional|undefined)\b)"
    r"(?!os\.|getenv|environ|\*|x{3}|[0-9.]+(?![^\s\"'\\,;#}\]|]))"
)
_QUOTED = rf"""(?P<q>\\?["']){_NOT_VALUE}(?P<v>[^\s"'\\$<{{%\[\]]{{4,}})(?P=q)"""
_UNQUOTED = (
    rf"{_NOT_VALUE}(?=[^\s\"'\\,;#&]{{0,{_SCAN}}}[0-9])"
    rf"""(?P<v>[^\s"'\\,;#&(){{}}\[\]<>$`|%]{{4,{_LONGEST}}}+)(?![^\s"'\\,;#&}}\]|])"""
)


def _ci(words: str) -> str:
    """``words`` (a regular expression of letters, ``|``, ``[_-]?``, groups) matching any case
    without ``re.IGNORECASE``, which makes these patterns several times slower."""
    return re.sub(r"[A-Za-z](?![^\[]*\])", lambda m: f"[{m[0].lower()}{m[0].upper()}]", words)


def _assigned(
    kind: str, keys: str, triggers: Iterable[str], words: Iterable[str] = ()
) -> list[_Pattern]:
    key = _ci(keys)
    env = rf"^[ \t]*{_ci('ENV')}[ \t]+[A-Za-z0-9_]*?(?:{key})[ \t]+"  # Dockerfile ENV NAME value
    return [
        _p(kind, rf"{start}{value}", triggers, flags=re.M, words=words)
        for start in (rf"(?:{key}){_KEY_SEP}", env)
        for value in (_QUOTED, _UNQUOTED)
    ]


# The credential-named keys: "secret", "token", or "key" right after one of these words (so
# a match holds "secret", "token" or one of the words themselves: ``_Pattern.words``).
_KEY_WORDS = tuple(
    f"{prefix}{sep}key"
    for prefix in (
        "api",
        "account",
        "storage",
        "access",
        "secret",
        "private",
        "master",
        "shared",
        "subscription",
    )
    for sep in ("", "_", "-")
)


# Order matters: a whole connection string is removed before its AccountKey part would be,
# specific shapes before the generic "a credential-named key's value".
_PATTERNS: tuple[_Pattern, ...] = (
    _p(
        "connection_string",
        # bounded (the protocol is "https", a connection string has a handful of fields):
        # unbounded, a line repeating the first field was quadratic; an AccountKey outside
        # these bounds is still found by the account_key rule below
        r"DefaultEndpointsProtocol=[^;\s\"']{1,64}+;(?:[A-Za-z]+=[^;\s\"']*;){0,32}"
        r"(?:AccountKey|SharedAccessSignature)=[^\s\"']+",
        ["defaultendpointsprotocol="],
    ),
    _p(
        "account_key",
        rf"AccountKey(?:=|%3d)(?P<v>{_NOT_DONE}[A-Za-z0-9+/=%]{{8,}})",
        ["accountkey=", "accountkey%3d"],
    ),
    _p(
        "shared_access_signature",
        rf"SharedAccessSignature=(?P<v>{_NOT_DONE}[^\s;\"']+)",
        ["sharedaccesssignature="],
    ),
    # The signature of a SAS query string; the other SAS fields are harmless but go with it.
    _p(
        "sas_signature",
        rf"{_AMP}{_SIG}(?P<v>{_NOT_DONE}[^&\s\"'#<>\\]+{_WRAPPED})",
        ["sig=", "sig%3d", "sig%253d"],
    ),
    _p(
        "sas_signature",
        rf"(?<![A-Za-z0-9_]){_SIG}(?P<v>{_NOT_DONE}[A-Za-z0-9%+/=]{{16,}}"
        rf"{_WRAPPED})",
        ["sig=", "sig%3d", "sig%253d"],
    ),
    _p(
        "bearer_token",
        rf"Bearer (?P<v>{_NOT_DONE}[A-Za-z0-9\-._~+/]{{16,}}=*)",
        ["bearer "],
        flags=0,
    ),
    # The designer pointer JSON's "SasToken": "<value>" (null is fine).
    _Pattern(
        "sas_token", re.compile(r'"SasToken":(?P<v>\s*"[^"]+")', re.I), ('"sastoken":',), "null"
    ),
    _p(
        "private_key",
        r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----"
        r"(?P<v>(?:(?!-----)[\s\S])*?[A-Za-z0-9+/]{20}(?:(?!-----)[\s\S])*)",
        ["private key"],
        flags=0,
    ),
    _p(
        "url_password",
        rf"(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]*://[^\s/?#@:\"'<>]*:"
        rf"(?P<v>{_NOT_DONE}[^\s/?#@\"'<>]+)@",
        ["@"],
        anchor=r"://[^\s/?#@:\"'<>]*:[^\s/?#@\"'<>]+@",
    ),
    # A storage account key is 64 random bytes: 88 base64 characters ending in "==".
    _Pattern(
        "account_key",
        re.compile(
            r"(?<![A-Za-z0-9+/])(?<!sha512-)(?<!sha512:)[A-Za-z0-9+/]{86}==(?![A-Za-z0-9+/=])"
        ),
        ("==",),
        anchor=re.compile(r"==(?<=[A-Za-z0-9+/]{86}==)"),
    ),
    _p(
        "aws_access_key",
        r"(?<![A-Z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])",
        ["akia", "asia"],
        flags=0,
        anchor=r"AKIA[A-Z0-9]{16}|ASIA[A-Z0-9]{16}",
    ),
    _p(
        "github_token",
        r"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]"
        r"{22,})",
        ["ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"],
        flags=0,
        anchor=r"gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{22}",
    ),
    _p(
        "huggingface_token",
        r"(?<![A-Za-z0-9_])hf_[A-Za-z0-9]{30,}(?![A-Za-z0-9])",
        ["hf_"],
        flags=0,
        anchor=r"hf_[A-Za-z0-9]{30}",
    ),
    _p(
        "api_token",
        r"(?<![A-Za-z0-9_-])sk-(?:proj-|svcacct-|admin-|ant-)?(?=[A-Za-z_-]*[0-9])"
        r"[A-Za-z0-9_-]{20,}",
        ["sk-"],
        flags=0,
        anchor=r"sk-[A-Za-z0-9_-]{20}",
    ),
    # An amlport key file (``amlport repo key new``, bundle/keys.py): 32 bytes of base64
    # under "key" — one copied into a workspace is never stored in a bundle.
    _p(
        "amlport_key",
        r'"key"[ \t]*:[ \t]*"(?P<v>[A-Za-z0-9+/]{43}=)"',
        ['"key"'],
        flags=0,
        anchor=r'"key"',
    ),
    _p(
        "jwt",
        r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
        ["eyj"],
        flags=0,
        # the lookbehind too: without it every "eyJ" inside one long run starts a search
        # to the run's end (quadratic on a hostile line of repeated "eyJ")
        anchor=r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{8,}\.eyJ",
    ),
    _p(
        "base64_secret",
        rf"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]*(?:{'|'.join(_B64_FRAGMENTS)})[A-Za-z0-9+/]*={{0,2}}",
        [f.lower() for f in _B64_FRAGMENTS],
        flags=0,
    ),
    *_assigned("client_secret", r"client[_-]?secret", ["secret"]),
    *_assigned("password", r"password|passwd|passphrase", ["password", "passwd", "passphrase"]),
    *_assigned(
        "credential",
        r"secret|token|key(?:" + "|".join(f"(?<={_ci(word)})" for word in _KEY_WORDS) + ")",
        ["secret", "token", *(f"key{c}" for c in "\\\"' \t:=")],  # what may follow a key
        ["secret", "token", *_KEY_WORDS],  # a YAML "- key: name" holds none of them
    ),
)


@dataclass(frozen=True)
class Redaction:
    kind: str
    count: int


def _replace(pattern: _Pattern, match: re.Match[str]) -> str:
    """The match with its secret replaced; line breaks inside it stay (line numbers hold)."""
    if "v" not in pattern.regex.groupindex:
        return pattern.replacement
    value = match.group("v")
    start, end = match.start("v") - match.start(), match.end("v") - match.start()
    whole = match.group(0)
    new = pattern.replacement
    if "\n" in value and pattern.replacement == REDACTED:
        new = re.sub(r"[^\r\n]+", REDACTED, value)
    return whole[:start] + new + whole[end:]


def _lower(text: str) -> str:
    return text.lower() if text.isascii() else text.translate(_FOLD).lower()


def redact_with_counts(text: str) -> tuple[str, Counter[str]]:
    """Return ``text`` with every secret replaced, and how many of each kind were removed."""
    counts: Counter[str] = Counter()
    if not may_hold_secret(text):  # one pass instead of a search per pattern
        return text, counts
    present = _present(_lower(text))
    for pattern in _PATTERNS:
        if not pattern.applies(text, present):
            continue
        # (Replacements add no trigger: ``lower`` stays a valid pre-check.)
        text, n = pattern.regex.subn(partial(_replace, pattern), text)
        if n:
            counts[pattern.kind] += n
    return text, counts


def redact(text: str) -> str:
    """Return ``text`` with every secret replaced (for messages, logs and reports)."""
    return redact_with_counts(text)[0]


def find_secrets(text: str) -> Counter[str]:
    """Count secret-looking values by kind. Never returns the values themselves."""
    return redact_with_counts(text)[1]


def has_secret(text: str) -> bool:
    if not may_hold_secret(text):
        return False
    present = _present(_lower(text))  # the per-pattern pre-check, as redaction uses it
    return any(p.applies(text, present) and p.regex.search(text) for p in _PATTERNS)


# Every pattern needs one of its triggers, so text holding none of them holds no secret and
# the regular expressions can be skipped (tests check that the pre-check changes no result).
# _FOLD maps the only non-ASCII characters that IGNORECASE matches to ASCII letters.
TRIGGERS = tuple(dict.fromkeys(t for p in _PATTERNS for t in p.triggers))
WORDS = tuple(dict.fromkeys(w for p in _PATTERNS for w in p.words if w not in TRIGGERS))
_SEARCHED = TRIGGERS + WORDS  # what ``_present`` looks for
_FOLD = {0x130: "i", 0x131: "i", 0x17F: "s", 0x212A: "k"}


def _present(lower: str) -> frozenset[str]:
    """The triggers a lower-cased text holds (one substring search each, after one search
    for any of them: most texts hold none), and, when it holds one, the patterns' words."""
    if _ANY_TRIGGER.search(lower) is None:
        return _NONE
    return frozenset(t for t in _SEARCHED if t in lower)


_NONE: frozenset[str] = frozenset()


def _trie(words: list[str]) -> str:
    """One regular expression matching any of ``words``, as a tree of their common prefixes
    (``a(?:ccountkey%3d|kia|sia)|…``): at each position of the text the search follows one
    branch per character instead of trying every word (an alternation of 42 words cost
    twice as much for a name, and more than 42 substring searches for a 4 KB text)."""
    if "" in words:  # a word ends here: for "does any occur", the longer ones add nothing
        return ""
    branches: dict[str, list[str]] = {}
    for word in words:
        branches.setdefault(word[0], []).append(word[1:])
    alts = [re.escape(first) + _trie(rest) for first, rest in sorted(branches.items())]
    return alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"


# The pre-check needs only the triggers that hold no other one ("accountkey=" holds "key="),
# searched as one tree of prefixes, for a text of any length.
_MIN_TRIGGERS = tuple(t for t in TRIGGERS if not any(o != t and o in t for o in TRIGGERS))
_ANY_TRIGGER = re.compile(_trie(list(_MIN_TRIGGERS)))


# A text at least this long is searched natively when the prefilter is there (its call costs
# about what the Python search of ~30 characters does).
NATIVE_TEXT = 256
# The characters whose lower case holds an ASCII letter (``_FOLD``'s): the native search sees
# only the ASCII bytes of a text, so a text holding one is searched in Python.
_FOLDED = re.compile("[" + "".join(map(chr, _FOLD)) + "]")


def may_hold_secret(text: str) -> bool:
    """False only when ``text`` certainly holds no secret (a fast substring pre-check).

    A long text is searched by Vectorscan where it is installed (``secret_prefilter``: the
    same triggers, ASCII letters in either case, in the UTF-8 bytes; same answer)."""
    if len(text) >= NATIVE_TEXT and (native := secret_prefilter.text_filter(_MIN_TRIGGERS)):
        if text.isascii():
            return native.any_in(text.encode("ascii"))
        if _FOLDED.search(text) is None:
            return native.any_in(text.encode("utf-8", "surrogatepass"))
    return _ANY_TRIGGER.search(_lower(text)) is not None


def secret_spans(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of every secret-looking match in ``text``, in no particular order.

    For cutting a stream into pieces where no secret straddles a cut (see
    ``amlport.rewriters.text_log``). A span may start after a prefix such as ``AccountKey=``
    that the match needs; callers keep a margin before each span for it.
    """
    if not may_hold_secret(text):
        return []
    return [m.span() for p in _PATTERNS for m in p.regex.finditer(text)]


def crosses_line(text: str) -> bool:
    """Does a secret in ``text`` continue past a line break (a wrapped SAS signature, a PEM
    key)? Line-by-line redaction would leave its second part."""
    if "\n" not in text or not may_hold_secret(text):
        return False
    return any(
        "\n" in m.group(0)
        for p in _PATTERNS
        if p.kind in _MULTILINE
        for m in p.regex.finditer(text)
    )


_MULTILINE = frozenset({"sas_signature", "private_key"})  # the patterns that can cross a line
_KEY_BEGIN = re.compile(r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----")
_KEY_END = "-----END"
UNFINISHED_MAX = 64 * 1024  # a longer "unfinished" secret is not held back (a PEM key: <16 KiB)


def unfinished_secret(text: str) -> int | None:
    """Where a secret that may go on past the end of ``text`` starts: a PEM private key whose
    END line is not in ``text``, or a SAS signature that ends its last line (wrapped, its rest
    on the next line). A stream cut into pieces (``rewriters.text_log.pieces``) keeps such a
    secret with what follows, so that it is redacted whole; None when there is none."""
    starts = []
    lower = text.lower()
    if "private key" in lower:
        last = next(iter(collections.deque(_KEY_BEGIN.finditer(text), maxlen=1)), None)
        if last is not None and _KEY_END not in text[last.end() :]:
            starts.append(last.start())
    body = text.rstrip("\r\n")
    first = body.rfind("\n") + 1  # the last line
    if "sig" in lower[first:]:
        tail = body[first:]
        starts.extend(
            first + m.start()
            for p in _PATTERNS
            if p.kind == "sas_signature"
            for m in p.regex.finditer(tail)
            if m.end() == len(tail)
        )
    return min(starts) if starts else None


# --- bytes: binary files, UTF-16 text ------------------------------------------------------

OVERLAP = 8192  # bytes a stream scan keeps from one chunk to the next: longer than any secret


# Binary data is searched in its runs of printable ASCII (with tab, CR, LF) of at least
# MIN_RUN characters, one byte each or UTF-16 (a NUL byte beside each): every secret is such a
# run, and random or compressed bytes (model weights, parquet) hold few of them, so most of a
# large binary file costs one ``translate`` and two ``find`` calls instead of a search per
# trigger. One mask serves both kinds of run: printable bytes are "a", NUL bytes "z", any other
# byte 0; a one-byte run is a run of "a", a UTF-16 run one of "a" and "z" (docs/design/0005,
# "Large blobs").
MIN_RUN = 10
_MASK = bytes(
    0x7A if b == 0 else 0x61 if 32 <= b < 127 or b in (9, 10, 13) else 0 for b in range(256)
)
# (probe, the mask bytes that end such a run): "az" holds either byte order of UTF-16,
# "azzz" either byte order of UTF-32 (numpy's ``<U`` string arrays, in .npy files and pickles)
_WIDE_PROBES = (b"az" * MIN_RUN, b"azzz" * MIN_RUN)
_PROBES = ((b"a" * MIN_RUN, b"\x00z"), *((p, b"\x00") for p in _WIDE_PROBES))


def _wide_text(mask: bytes) -> bool:
    return any(probe in mask for probe in _WIDE_PROBES)


def _printable_runs(mask: bytes, probe: bytes, stops: bytes) -> Iterator[tuple[int, int]]:
    """``(start, end)`` of each longest run of ``mask`` bytes not in ``stops`` that holds
    ``probe``. Linear: each search starts where the last run ended, and the next position of
    each stop byte is remembered until it is passed (a file of many runs and few stops of one
    kind is not searched to its end once per run)."""
    size = len(mask)
    after = dict.fromkeys(stops, -1)  # stop byte -> its next position at or after a run
    pos = 0
    while (i := mask.find(probe, pos)) >= 0:
        start = max(mask.rfind(stop, pos, i) for stop in stops) + 1
        end = size
        for stop in stops:
            at = after[stop]
            if at < i:
                at = mask.find(stop, i)
                after[stop] = at = size if at < 0 else at
            end = min(end, at)
        yield start, end
        pos = end


def _search_bytes(data: bytes, lo: int, hi: int) -> Counter[str]:
    """The secrets of ``data`` that start in ``data[lo:hi]``. Text (no NUL byte) is searched
    whole, each byte one character (Latin-1: ``bytes.lower`` is the same pre-check, as Latin-1
    holds none of the characters IGNORECASE folds to ASCII letters). Binary data, UTF-16 text
    included, is searched in its printable runs, without their NUL bytes; a secret seen both
    as one-byte and as UTF-16 text counts once."""
    if b"\x00" not in data:
        return _count_between(data.decode("latin-1"), lo, hi, data.lower().decode("latin-1"))
    native = secret_prefilter.for_buffer(len(data))
    if native is not None and (places := native.places(data)) is not None:
        return _search_places(data, lo, hi, places)
    mask = data.translate(_MASK)
    counts: Counter[str] = Counter()
    for probe, stops in _PROBES:
        found: Counter[str] = Counter()
        for start, end in _printable_runs(mask, probe, stops):
            if end > lo and start < hi:
                found.update(_search_run(data, start, end, lo, hi))
        counts |= found
    return counts


# What the native prefilter looks for (``secret_prefilter``): the triggers, except that
# url_password's "@" (one byte in 256 of random data) gives way to "://", which its expression
# needs as well. A "://" in the text a pattern runs on was in the run's text: redaction inserts
# only REDACTED, "null" and line breaks, so it never makes one.
_NEEDED = {t for p in _PATTERNS for t in (("://",) if p.kind == "url_password" else p.triggers)}
PREFILTER_TRIGGERS = tuple(
    sorted(t for t in _NEEDED if not any(o != t and o in t for o in _NEEDED))
)
secret_prefilter.configure(PREFILTER_TRIGGERS, MIN_RUN)

# What ``_search_places`` widens a place to: the bytes of a one-byte run ("a"), of a UTF-16 run
# ("a"), anything else 0.
_ONE_BYTE_RUN = bytes(0x61 if m == 0x61 else 0 for m in _MASK)
_WIDE_RUN = bytes(0x61 if m else 0 for m in _MASK)


def _search_places(data: bytes, lo: int, hi: int, places: list[tuple[int, int]]) -> Counter[str]:
    """``_search_bytes`` of binary ``data`` given the native prefilter's places: every run
    of either kind whose text holds a trigger holds one of them (``secret_prefilter``), and
    a run without a trigger holds no secret (``_count_between``). So the runs around the
    places, found by the same rules as ``_printable_runs`` (the longest run of its bytes,
    a UTF-16 one holding the probe), searched by the same ``_search_run``, give the same
    counts as searching every run."""
    counts: Counter[str] = Counter()
    for kind, table in (
        (secret_prefilter.ONE_BYTE, _ONE_BYTE_RUN),
        (secret_prefilter.WIDE, _WIDE_RUN),
    ):
        found: Counter[str] = Counter()
        done = 0  # the end of the last run searched: places before it lie in it
        for at in sorted(end - 1 for k, end in places if k == kind):
            if at < done:
                continue
            start, end = _run_around(data, at, table)
            done = end
            if kind == secret_prefilter.ONE_BYTE:
                if end - start < MIN_RUN:
                    continue  # (the prefilter's expressions exclude it: kept for clarity)
            elif not _wide_text(data[start:end].translate(_MASK)):
                continue  # printable and NUL bytes, but no UTF-16 or UTF-32 text: not a run
            if end > lo and start < hi:
                found.update(_search_run(data, start, end, lo, hi))
        counts |= found
    return counts


def _run_around(data: bytes, at: int, table: bytes) -> tuple[int, int]:
    """The longest run of bytes ``table`` maps to non-zero that holds ``data[at]``: searched
    in windows growing fourfold, so a long run costs a few times its length, not more."""
    size = len(data)
    start = end = -1
    width = 256
    while start < 0:
        low = max(0, at - width)
        start = data[low:at].translate(table).rfind(b"\x00")
        start = low + start + 1 if start >= 0 else 0 if low == 0 else -1
        width *= 4
    width = 256
    while end < 0:
        high = min(size, at + width)
        end = data[at:high].translate(table).find(b"\x00")
        end = at + end if end >= 0 else size if high == size else -1
        width *= 4
    return start, end


# Four NUL bytes or more in a UTF-16 run end its text there (padding): the text on either
# side is searched apart, as a stream scan whose rounds cut the stretch searches it. Joined,
# two secrets kilobytes of NULs apart read as one (counted once by a whole-file scan, twice by
# a stream scan that saw them in two rounds). Not fewer: UTF-32 (numpy's ``<U`` string
# arrays, in .npy files and pickles) puts three NULs beside every ASCII character, and so
# does a U+0000 inside UTF-16 text; a secret so written is one text.
_NUL_STRETCH = re.compile(b"\x00{4,}")


def _search_run(data: bytes, start: int, end: int, lo: int, hi: int) -> Counter[str]:
    """The secrets of the run ``data[start:end]`` that start in ``data[lo:hi]``, each stretch
    between ``_NUL_STRETCH`` es searched alone (only those reaching into the window)."""
    counts: Counter[str] = Counter()
    pos = start
    for m in _NUL_STRETCH.finditer(data, start, end):
        if m.start() > lo and pos < hi:
            counts += _search_text(data, pos, m.start(), lo, hi)
        pos = m.end()
    if end > lo and pos < hi and pos < end:
        counts += _search_text(data, pos, end, lo, hi)
    return counts


def _search_text(data: bytes, start: int, end: int, lo: int, hi: int) -> Counter[str]:
    text = data[start:end].replace(b"\x00", b"").decode("ascii")

    def local(at: int) -> int:  # ``at`` as an index of ``text`` (the NULs left out)
        if at <= start or at >= end:
            return at - start if at <= start else len(text) + 1
        return at - start - data.count(b"\x00", start, at)

    return _count_between(text, local(lo), local(hi), text.lower())


def find_secrets_in_bytes(data: bytes) -> Counter[str]:
    """Count secret-looking values in the raw bytes of any file, text or binary."""
    return _search_bytes(data, 0, len(data) + 1)


CONTEXT = 256  # bytes before a stream scan's window: what a look-behind or a prefix needs


class ByteScanner:
    """``find_secrets_in_bytes`` for a stream of any size, fed chunk by chunk (bounded
    memory). Each round searches the bytes not yet counted with ``CONTEXT`` bytes before them
    and counts the matches that start in the window, except in its last ``OVERLAP`` bytes:
    those are counted in the next round, where they are seen whole."""

    def __init__(self) -> None:
        self._before = b""
        self._tail = b""
        self.counts: Counter[str] = Counter()

    def feed(self, data: bytes | memoryview) -> None:
        """Scan the next bytes of the stream. ``data`` is not kept: the caller may reuse its
        buffer (one copy per round joins it to what is kept)."""
        if len(self._tail) + len(data) <= 2 * OVERLAP:  # few, larger rounds
            self._tail += data
            return
        buf, lo = b"".join((self._before, self._tail, data)), len(self._before)
        cut = len(buf) - OVERLAP
        self._count(buf, lo, cut)
        self._before, self._tail = buf[max(lo, cut - CONTEXT) : cut], buf[cut:]

    def close(self) -> Counter[str]:
        """Search what is left; the counts of the whole stream."""
        buf = self._before + self._tail
        if self._tail:
            self._count(buf, len(self._before), len(buf))
        self._before = self._tail = b""
        return self.counts

    def _count(self, buf: bytes, lo: int, hi: int) -> None:
        """Count the secrets of ``buf`` that start in ``buf[lo:hi]``."""
        self.counts.update(_search_bytes(buf, lo, hi))


def _count_between(text: str, lo: int, hi: int, lower: str) -> Counter[str]:
    """``find_secrets(text)``, counting only the matches that start in ``text[lo:hi]``: the
    patterns run in order on the redacted text, as ``redact_with_counts`` runs them (a
    connection string is not also an account key), and the bounds follow each replacement."""
    counts: Counter[str] = Counter()
    present = _present(lower)
    if not present:
        return counts
    for pattern in _PATTERNS:
        if not pattern.applies(text, present):
            continue
        out: list[str] = []
        pos = shift_lo = shift_hi = 0
        for m in pattern.regex.finditer(text):
            new = _replace(pattern, m)
            if lo <= m.start() < hi:
                counts[pattern.kind] += 1
            delta = len(new) - len(m.group(0))
            shift_lo += delta if m.start() < lo else 0
            shift_hi += delta if m.start() < hi else 0
            out += [text[pos : m.start()], new]
            pos = m.end()
        if out:
            text = "".join(out) + text[pos:]
            lo, hi = lo + shift_lo, hi + shift_hi
    return counts


def scan_stream(src: BinaryIO, *, chunk: int = 1 << 20) -> Counter[str]:
    """``find_secrets_in_bytes`` of everything ``src`` holds, read in chunks (bounded memory)."""
    scanner = ByteScanner()
    while data := src.read(chunk):
        scanner.feed(data)
    return scanner.close()


def describe(counts: Counter[str]) -> str:
    """``kind xN, …`` for a message (kinds and counts only, never a value)."""
    return ", ".join(f"{k} x{n}" for k, n in sorted(counts.items()))


def unredacted(counts: Counter[str]) -> str:
    """Why a file's bytes are not exported (the rewriter and the export writer say it alike)."""
    return (
        f"holds what looks like a secret ({describe(counts)}) that could not be redacted "
        "(binary or unknown encoding)"
    )


# --- logs ----------------------------------------------------------------------------------

_log_lock = threading.Lock()
_log_redaction = False


def install_log_redaction() -> None:
    """Redact secrets from every log record created from now on, whatever the logger.

    urllib3 logs each request line at DEBUG (the URL with its SAS query string); a user or an
    embedding application that turns DEBUG on must not find a signature in its logs.
    Idempotent; wraps the current log record factory.
    """
    global _log_redaction
    with _log_lock:
        if _log_redaction:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            _scrub_record(record)
            return record

        logging.setLogRecordFactory(factory)
        _log_redaction = True


def _scrub_record(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:  # a broken format string is the logging module's to report
        return
    if may_hold_secret(message):
        record.msg, record.args = redact(message), None
    if record.exc_info and record.exc_info[1] is not None:
        text = logging.Formatter().formatException(record.exc_info)
        if may_hold_secret(text):
            record.exc_text = redact(text)


def rules_digest() -> str:
    """SHA-256 of every pattern (kind, expression, flags, triggers, replacement): what a
    backup decided from its listing compares, so changed rules make the next backup read
    again (backup/fingerprint.py)."""
    import hashlib

    sha = hashlib.sha256()
    for p in _PATTERNS:
        fields = (p.kind, p.regex.pattern, p.regex.flags, p.triggers, p.replacement)
        sha.update(repr(fields).encode("utf-8", "surrogatepass") + b"\n")
    return sha.hexdigest()
