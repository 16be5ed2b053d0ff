"""docs/benchmarks.md has two writers: ``run.py`` writes the page, ``repo_bench.py`` the
repository-format section between its markers. Each keeps what the other wrote: ``run.py``
carries the section over into the page it renders, ``repo_bench.py`` replaces only its
section. A third section, between the ``notes`` markers, is written by hand (what a run
says, measured beside it); both writers keep it where it is."""

from __future__ import annotations

from pathlib import Path

REPO_BEGIN = "<!-- repository-format: begin (bench/repo_bench.py) -->"
REPO_END = "<!-- repository-format: end -->"
NOTES_BEGIN = "<!-- notes: begin (written by hand; make bench keeps it) -->"
NOTES_END = "<!-- notes: end -->"


def _span(text: str, begin: str, end: str) -> tuple[int, int] | None:
    """Where the marked section (markers included) is in ``text``, if it is whole."""
    start = text.find(begin)
    if start < 0:
        return None
    stop = text.find(end, start + len(begin))
    return None if stop < 0 else (start, stop + len(end))


def put_section(text: str, block: str, begin: str = REPO_BEGIN, end: str = REPO_END) -> str:
    """``text`` with its marked section replaced by ``block`` (markers included), or with
    ``block`` appended if it has none."""
    span = _span(text, begin, end)
    if span is not None:
        return text[: span[0]] + block + text[span[1] :]
    return (text.rstrip() + "\n\n" if text else "") + block + "\n"


def keep_section(new: str, old: str, begin: str = REPO_BEGIN, end: str = REPO_END) -> str:
    """The page ``new`` with the marked section of the page ``old`` kept (in place of any
    section ``new`` has, else at its end); ``new`` itself if ``old`` has none."""
    span = _span(old, begin, end)
    if span is None:
        return new
    return put_section(new, old[span[0] : span[1]], begin, end)


def write_page(path: Path, text: str) -> None:
    """Write the page ``text`` to ``path``, keeping the section ``repo_bench.py`` wrote and
    the hand-written notes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    old = path.read_text() if path.is_file() else ""
    path.write_text(keep_section(keep_section(text, old), old, NOTES_BEGIN, NOTES_END))


def write_section(path: Path, section: str) -> None:
    """Write the repository-format section into ``path``, keeping the rest of the page."""
    path.parent.mkdir(parents=True, exist_ok=True)
    old = path.read_text() if path.is_file() else ""
    path.write_text(put_section(old, f"{REPO_BEGIN}\n{section}\n{REPO_END}"))
