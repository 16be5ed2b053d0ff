"""docs/benchmarks.md has two writers (bench/run.py the page, bench/repo_bench.py the
repository-format section): each keeps what the other wrote (issue 18)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench"
RESULTS = BENCH / "results" / "full.json"


def _load_sections() -> ModuleType:
    """bench/sections.py imports nothing of bench/: load it by path (no sys.path edit)."""
    spec = importlib.util.spec_from_file_location("bench_sections", BENCH / "sections.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sections = _load_sections()


def _bench(code: str) -> None:
    """Run ``code`` as the bench scripts run: from bench/, whose modules import each other."""
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=BENCH, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-2000:]


def _page(report: Path) -> None:
    """What `make bench` writes: the page, rendered from the stored results."""
    _bench(
        f"import run, sys; sys.exit(run.main(['--report-only', {str(RESULTS)!r}, "
        f"'--report', {str(report)!r}]))"
    )


def _section(report: Path, nightly: int = 30) -> None:
    """What `make bench-repo` writes (``RepoBench.save``): its section."""
    _bench(
        "import repo_bench, sections; from pathlib import Path; "
        f"sections.write_section(Path({str(report)!r}), "
        f"repo_bench.render({{'mode': 'full'}}, {nightly}))"
    )


def _marked(text: str) -> str:
    begin, end = text.index(sections.REPO_BEGIN), text.index(sections.REPO_END)
    return text[begin : end + len(sections.REPO_END)]


def test_the_page_keeps_the_repository_section_and_the_section_keeps_the_page(
    tmp_path: Path,
) -> None:
    report = tmp_path / "benchmarks.md"
    _page(report)
    page = report.read_text()
    assert sections.REPO_BEGIN not in page
    _section(report)
    both = report.read_text()
    assert both.startswith(page.rstrip()) and "Repository format 2 beside restic" in both
    _page(report)  # make bench again: the page is rendered anew, the section stays
    assert report.read_text() == both
    _section(report, nightly=7)  # make bench-repo again: only its section changes
    again = report.read_text()
    assert again.startswith(page.rstrip()) and again.count(sections.REPO_BEGIN) == 1
    assert _marked(again) == _marked(both)  # the same results render the same section


def test_the_section_stays_where_it_was_in_the_page() -> None:
    block = f"{sections.REPO_BEGIN}\nrepo figures\n{sections.REPO_END}"
    old = f"# B\n\nold page\n\n{block}\n\n## after\n"
    new_with_markers = f"# B\n\nnew page\n\n{sections.REPO_BEGIN}\n{sections.REPO_END}\n\nend\n"
    assert sections.keep_section(new_with_markers, old) == (f"# B\n\nnew page\n\n{block}\n\nend\n")
    assert sections.keep_section("# B\n\nnew page\n", old) == f"# B\n\nnew page\n\n{block}\n"
    assert sections.keep_section("# B\n", "# B\n\nno section\n") == "# B\n"


def test_a_torn_or_hostile_section_is_not_spliced() -> None:
    """A begin marker without its end (a hand-edited page) is not a section: nothing of the
    old page is carried over, and a writer appends a whole section rather than cut the page."""
    torn = f"# B\n\n{sections.REPO_BEGIN}\nhalf\n"
    assert sections.keep_section("# new\n", torn) == "# new\n"
    reversed_markers = f"{sections.REPO_END}\n[x](..)\x1b[2J\n{sections.REPO_BEGIN}\n"
    assert sections.keep_section("# new\n", reversed_markers) == "# new\n"
    out = sections.put_section(torn, f"{sections.REPO_BEGIN}\nnew\n{sections.REPO_END}")
    assert out.startswith(torn.rstrip()) and out.endswith(f"{sections.REPO_END}\n")


def test_the_hand_written_notes_survive_both_writers(tmp_path: Path) -> None:
    """What a run says, written by hand between the notes markers, stays when `make bench`
    renders the page again and when `make bench-repo` writes its section."""
    report = tmp_path / "benchmarks.md"
    _page(report)
    notes = f"{sections.NOTES_BEGIN}\n## What this run says\n\nby hand\n{sections.NOTES_END}"
    page = report.read_text()
    report.write_text(page.replace("\n", f"\n\n{notes}\n", 1))
    _section(report)
    _page(report)
    again = report.read_text()
    assert again.count(notes) == 1 and sections.REPO_BEGIN in again
    assert again.index(notes) < again.index(sections.REPO_BEGIN)
