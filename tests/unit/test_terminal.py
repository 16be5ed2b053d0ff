"""``amlport.cli.terminal``: consoles that neither read markup nor pass control characters."""

from __future__ import annotations

import io
import json

import pytest
import typer
from rich.progress import Progress
from rich.table import Table
from rich.text import Text

from amlport.cli.terminal import SafeConsole, document_text, line, plain, styled

ESC_NAME = "x[/]y [bold]b[link=x]l \x1b[31mred\x1b]0;title\x07"
SHOWN = "x[/]y [bold]b[link=x]l \\x1b[31mred\\x1b]0;title\\x07"


def _console(**kwargs: object) -> tuple[SafeConsole, io.StringIO]:
    buf = io.StringIO()
    return SafeConsole(file=buf, width=200, **kwargs), buf


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("\x1b[31m", "\\x1b[31m"),
        ("a\rb", "a\\x0db"),
        ("\x00\x08\x0b\x0c\x1f", "\\x00\\x08\\x0b\\x0c\\x1f"),
        ("\x7f\x9b\x80", "\\x7f\\x9b\\x80"),
        ("abc\u202edef\u2066\u2028", "abc\\u202edef\\u2066\\u2028"),
        ("tab\tand\nnewline", "tab\tand\nnewline"),
        ("[bold]ws[prod][/]", "[bold]ws[prod][/]"),
        ("ünïcødé ✓", "ünïcødé ✓"),
    ],
)
def test_plain_shows_controls_as_visible_escapes(raw: str, shown: str) -> None:
    assert plain(raw) == shown
    assert plain(plain(raw)) == plain(raw)  # idempotent: printing twice never doubles escapes


def test_strings_print_as_they_are_even_when_markup_is_asked_for() -> None:
    console, buf = _console()
    console.print(ESC_NAME)
    console.print(ESC_NAME, markup=True)  # refused: a caller cannot switch markup back on
    console.print("[bold red]amlport[/]", "ws[prod]", "pip install 'amlport[azureml,mlflow]'")
    assert buf.getvalue().splitlines() == [
        SHOWN,
        SHOWN,
        "[bold red]amlport[/] ws[prod] pip install 'amlport[azureml,mlflow]'",
    ]


def test_table_cells_titles_and_texts_built_elsewhere_are_escaped() -> None:
    console, buf = _console(force_terminal=True, color_system="truecolor")
    table = Table(title=ESC_NAME)
    table.add_column("name")
    table.add_row(ESC_NAME)
    table.add_row(Text(ESC_NAME, style="bold"))  # a Text bypasses render_str: the net holds
    console.print(table)
    console.print(line(("warning", "yellow"), f" {ESC_NAME}"))
    out = buf.getvalue()
    assert out.count(SHOWN) == 3  # title, string cell, line()
    # rich's Text drops BEL and CR itself; the ESC it keeps is escaped by the net.
    assert "\x1b[1m" + SHOWN.removesuffix("\\x07") + " " in out
    # The only ESC bytes left are rich's own SGR codes for the styles asked for.
    without_styles = out.replace("\x1b[1m", "").replace("\x1b[33m", "").replace("\x1b[3m", "")
    assert "\x1b" not in without_styles.replace("\x1b[0m", "")
    assert "\x07" not in out


def test_styled_labels_keep_their_style_and_text() -> None:
    console, buf = _console(force_terminal=True, color_system="standard")
    console.print(styled("failed", "red"), "a[/]b")
    assert buf.getvalue() == "\x1b[31mfailed\x1b[0m a[/]b\n"


def test_progress_bars_still_draw() -> None:
    console, buf = _console(force_terminal=True, color_system="standard")
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("[bold]x[/]", total=2)
        progress.update(task, completed=2)
    assert "\x1b[?25l" in buf.getvalue()  # rich's own cursor controls pass the net


def test_json_document_keeps_its_values() -> None:
    value = {"name": ESC_NAME + "\x7f\x9b\u202e"}
    raw = json.dumps(value, ensure_ascii=False)
    safe = document_text(raw, is_json=True)
    assert "\x7f" not in safe and "\x9b" not in safe and "\u202e" not in safe
    assert json.loads(safe) == value


def test_errors_and_hints_show_brackets(capsys: pytest.CaptureFixture[str]) -> None:
    from amlport.cli.common import fail
    from amlport.errors import UsageError

    with pytest.raises(typer.Exit) as raised:
        fail(UsageError(f"no model {ESC_NAME}", hint="pip install 'amlport[azureml,mlflow]'"))
    assert raised.value.exit_code == 2
    err = capsys.readouterr().err
    assert f"amlport: error: no model {SHOWN}" in " ".join(err.split("\n"))
    assert "pip install 'amlport[azureml,mlflow]'" in err
