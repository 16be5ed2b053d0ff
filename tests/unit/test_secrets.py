"""Secret detection and redaction: every kind is found, removed, counted, never returned."""

from __future__ import annotations

import base64
import string
from collections import Counter
from functools import partial

import pytest
from hypothesis import given
from hypothesis import strategies as st

from amlport import secrets
from amlport.errors import AmlportError
from amlport.secrets import REDACTED, find_secrets, has_secret, redact, redact_with_counts

B64 = st.binary(min_size=64, max_size=64).map(lambda b: base64.b64encode(b).decode())
SIG = st.binary(min_size=32, max_size=32).map(
    lambda b: (
        base64.b64encode(b).decode().replace("+", "%2B").replace("/", "%2F").replace("=", "%3D")
    )
)
FILLER = st.text(alphabet=string.ascii_letters + string.digits + " .,:/-_\n", max_size=80)


def _seeded(kind: str, value: str) -> str:
    return {
        "account_key": f"AccountKey={value}",
        "connection_string": (
            f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={value};"
            "EndpointSuffix=core.windows.net"
        ),
        "sas_signature": f"https://acct.blob.core.windows.net/c/b.txt?sv=2021-08-06&sp=r&sig={value}",
        "shared_access_signature": f"BlobEndpoint=https://a.blob.core.windows.net;SharedAccessSignature=sv=1&sig={value}",
        "bearer_token": f"Authorization: Bearer {value}",
        "sas_token": f'{{"Container":"c","SasToken":"?sv=1&sig={value}","RelativePath":"x"}}',
    }[kind]


KINDS = (
    "account_key",
    "connection_string",
    "sas_signature",
    "shared_access_signature",
    "bearer_token",
    "sas_token",
)


@st.composite
def seeded_kind(draw: st.DrawFn) -> tuple[str, str]:
    """A kind and a value of the shape that kind has in the wild (SAS signatures URL-encoded)."""
    kind = draw(st.sampled_from(KINDS))
    sas = kind in ("sas_signature", "shared_access_signature", "sas_token")
    return kind, draw(st.one_of(B64, SIG) if sas else B64)


@given(seeded_kind(), FILLER, FILLER)
def test_no_seeded_secret_survives(case: tuple[str, str], before: str, after: str) -> None:
    kind, value = case
    text = f"{before}\n{_seeded(kind, value)}\n{after}"
    assert has_secret(text)
    clean, counts = redact_with_counts(text)
    assert value not in clean
    assert not has_secret(clean) and not find_secrets(clean)
    assert sum(counts.values()) >= 1
    assert redact(clean) == clean  # idempotent


@given(FILLER)
def test_plain_text_is_untouched(text: str) -> None:
    assert redact(text) == text and not has_secret(text)


def test_counts_are_per_kind_and_hold_no_value() -> None:
    text = (
        _seeded("sas_signature", "abcdefghijklmnopqrstuv%3D")
        + " "
        + _seeded("account_key", "Q" * 86 + "==")
    )
    counts = find_secrets(text)
    assert counts == {"sas_signature": 1, "account_key": 1}
    assert "abcdefghijklmnop" not in repr(counts)


def test_pointer_sas_token_becomes_null_json() -> None:
    clean = redact('{"SasToken":"?sv=1&sig=abc","Uri":"x"}')
    assert clean == '{"SasToken":null,"Uri":"x"}'


def test_error_messages_are_redacted() -> None:
    err = AmlportError("cannot open https://a.blob.core.windows.net/c?sv=1&sig=SECRETSECRET123456")
    assert "SECRETSECRET" not in str(err) and REDACTED in str(err)


FRAGMENTS = st.sampled_from(
    ["AccountKey=", "accountKEY=", "sig=", "SIG=", "?sig=", "&sig=", "Bearer ", "bearer ",
     "SharedAccessSignature=", "DefaultEndpointsProtocol=https;", '"SasToken":', "\u017fig=",
     "Account\u212aey=", "S\u0130G=", "REDACTED", ";", "&", "=", " ", "\n", '"',
     # the kinds of issue 17 (each pattern's triggers, and what follows them)
     "==", "@", "https://u:", "password=", "PassWord: ", "token: '", "client_secret=",
     "\nENV TOKEN ", "AKIA", "ASIA", "ghp_", "github_pat_", "hf_", "sk-", "sk-proj-", "eyJ",
     ".eyJ", "-----BEGIN PRIVATE KEY-----\n", "sig%3D", "sig%253D", "\\u0026sig=", "%26sig%3D",
     "QWNjb3VudEtl", "RGVmYXVsdEVuZHBvaW50c1Byb3RvY29s", "api_key=", "apikey: ", "7", "'",
     # the words of the credential rule, and "key" after other words (not a credential)
     "- key: ", "Storage-", "MASTER_", "shared", "Key=", "KEY\t", "subscription", "monkey: "]
)  # fmt: skip
MIXED = st.lists(st.one_of(FRAGMENTS, FILLER, B64, SIG, st.text(max_size=20)), max_size=12)


def _every_pattern(text: str) -> tuple[str, Counter[str]]:
    """What running every pattern over ``text`` gives, no pre-check skipping any."""
    from amlport import secrets

    every = text
    counts: Counter[str] = Counter()
    for pattern in secrets._PATTERNS:
        every, n = pattern.regex.subn(partial(secrets._replace, pattern), every)
        counts[pattern.kind] += n
    return every, +counts


@given(MIXED.map("".join))
def test_the_substring_pre_check_changes_no_result(text: str) -> None:
    """``redact_with_counts`` skips its patterns for text with no trigger substring: the
    result is what running every pattern gives."""
    every, counts = _every_pattern(text)
    assert redact_with_counts(text) == (every, counts)


@given(st.one_of(MIXED.map("".join), MIXED.map(lambda parts: "x" * 600 + "".join(parts))))
def test_the_short_and_the_long_pre_check_agree_with_every_trigger(text: str) -> None:
    """``may_hold_secret`` searches the triggers that hold no other, as one tree of their
    prefixes: the answer is that of searching every trigger, for short and long text; and
    ``_present`` (which skips its per-trigger searches when that search finds none) names
    every trigger the text holds."""
    from amlport import secrets

    lower = secrets._lower(text)
    assert secrets.may_hold_secret(text) == any(t in lower for t in secrets.TRIGGERS)
    held = [t for t in secrets.TRIGGERS if t in lower]  # and, in a text holding one, the words
    words = [w for w in secrets.WORDS if w in lower] if held else []
    assert secrets._present(lower) == frozenset(held + words)
    assert set(secrets._MIN_TRIGGERS) <= set(secrets.TRIGGERS)


def test_the_prefix_tree_finds_each_trigger_anywhere() -> None:
    from amlport import secrets

    for trigger in secrets.TRIGGERS:
        for text in (trigger, f"x{trigger}", f"{trigger}y", f"a/b {trigger.upper()} c" * 3):
            assert secrets.may_hold_secret(text), text
        broken = trigger[:-1] + "\x01" + trigger[-1:]  # a control character inside it
        assert secrets.may_hold_secret(broken) == any(t in broken for t in secrets.TRIGGERS)


@pytest.mark.parametrize(
    "unit",
    ["password=", "token=", "secret=", "passphrase=", "password=1(", "eyJ",
     "DefaultEndpointsProtocol=", "DefaultEndpointsProtocol=https;"],
)  # fmt: skip
def test_a_line_repeating_a_key_word_is_scanned_in_one_pass(unit: str) -> None:
    """Hostile content: one 512 KiB line repeating a trigger. Each occurrence used to scan to
    the line's end (58,000 times ``password=`` would take about an hour; ``eyJ`` and the
    connection string's first field were quadratic too); the bounded rules read it once, and
    a real secret after it is still found."""
    line = unit * ((512 << 10) // len(unit))
    secret = "AccountKey=" + "k" * 86 + "=="
    text = f"{line}\n{secret}\n"
    redacted, counts = secrets.redact_with_counts(text)
    assert counts["account_key"] == 1 and secret not in redacted
    assert redacted.startswith(line[:1000])  # the hostile line itself is no secret
    assert secrets.find_secrets_in_bytes(text.encode())["account_key"] == 1


def test_the_bounds_keep_long_values_of_credential_keys_redacted() -> None:
    """A value under a credential-named key up to 4 KiB (an AWS session token is ~1 KB) is
    still redacted whole with the bounds that keep hostile lines linear."""
    value = "FwoGZXIvYXdzE" + "A1b2" * 256  # 1,037 characters, digits throughout
    for text in (f"aws_session_token={value}\n", f'token: "{value}"\n'):
        redacted = secrets.redact(text)
        assert value not in redacted and "REDACTED" in redacted, text[:40]


@pytest.mark.parametrize(
    "text",
    [
        "parameters:\n- key: column-select\n  value: '12345678'\n",
        "storage-key: 'abc123456789'\n",
        "MASTER_KEY=abcd12345678\n",
        "my apikey: 'x1y2z3w4v5'\n",
        "ENV SUBSCRIPTION_KEY abcd1234efgh\n",
        'secret-key = "value1234"\n',
        "monkey: banana12345\n",
    ],
)
def test_a_text_without_a_credential_word_skips_the_credential_rule_with_the_same_result(
    text: str,
) -> None:
    """The credential rule's words (``_Pattern.words``) skip it for YAML such as ``- key:``
    (the generated pipeline documents): the result is that of running every pattern."""
    every, counts = _every_pattern(text)
    assert redact_with_counts(text) == (every, counts)
    assert has_secret(text) == bool(counts)
