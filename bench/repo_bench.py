#!/usr/bin/env python3
"""Repository format benchmarks: amlport backup beside restic on the same local copies.

    make bench-repo                               # 10k and 100k blobs (~25 min on 2 cores)
    .venv/bin/python bench/repo_bench.py --quick  # 1k and 3k blobs, a smoke run

For each size, the scaled fixture workspace (``fixtures/generate.py --scaled``) is generated
once as a local folder, then backed up side by side, in alternation, by restic (Debian's
package, a repository of its default format with compression ``auto``) and by ``amlport
backup`` (the interpreter of ``--python``: make bench uses a runtime-only environment):

- the first backup (wall, CPU, peak RSS) and the repository's size after it;
- unchanged re-backups (the median time of ``--rebackups``) and the repository's growth per
  unchanged re-backup;
- the repository after ``--nightly`` unchanged backups in all (measured at the small size;
  at the large size, first backup + (N - 1) x the measured growth, labelled as computed);
- one backup after 1 % of the runs changed (one file rewritten in each), its growth, and the
  bytes that changed.

Sizes are apparent sizes (the sum of file lengths), as ``du --apparent-size -b`` gives. The
results are written to ``build/bench/repo-results-MODE.json`` and rendered into the section
between the ``repository-format`` markers of docs/benchmarks.md (``--quick``: a separate file
under build/bench/).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import proc  # noqa: E402
import sections  # noqa: E402
import workload as wl  # noqa: E402

RESTIC_PASSWORD = "amlport-bench-not-a-secret"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="1k and 3k blobs, 3 nightly backups")
    p.add_argument("--sizes", help="blob counts, comma-separated (10000,100000)")
    p.add_argument("--rebackups", type=int, default=3, help="unchanged re-backups timed (3)")
    p.add_argument("--nightly", type=int, default=30, help="unchanged nightly backups (30)")
    p.add_argument("--python", default=sys.executable, help="interpreter that runs amlport")
    p.add_argument("--restic", default=shutil.which("restic") or "restic")
    p.add_argument("--workdir", type=Path, default=REPO / "build" / "bench" / "repo")
    p.add_argument("--report", type=Path, help="markdown file (default: docs/benchmarks.md)")
    args = p.parse_args(argv)
    args.mode = "quick" if args.quick else "full"
    if args.sizes is None:
        args.sizes = "1000,3000" if args.quick else "10000,100000"
    args.sizes = [int(s) for s in args.sizes.split(",")]
    if args.quick:
        args.nightly = min(args.nightly, 3)
    if args.report is None:
        args.report = (
            args.workdir / "benchmarks-repo-quick.md" if args.quick else REPO / "docs/benchmarks.md"
        )
    return args


def apparent(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def log(msg: str) -> None:
    print(f"[repo-bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Tool:
    """One backup program over one repository folder."""

    def __init__(self, name: str, bench: RepoBench, repo: Path) -> None:
        self.name, self.bench, self.repo = name, bench, repo

    def backup_argv(self, source: Path) -> list[str]:
        if self.name == "restic":
            return [self.bench.args.restic, "-r", str(self.repo), "backup", "--quiet", str(source)]
        return [self.bench.args.python, "-m", "amlport", "backup", str(source), "--repo",
                str(self.repo), "--json"]  # fmt: skip

    def init(self) -> None:
        shutil.rmtree(self.repo, ignore_errors=True)
        if self.name == "restic":
            subprocess.run([self.bench.args.restic, "-r", str(self.repo), "init"], check=True,
                           env=self.bench.env, capture_output=True)  # fmt: skip

    def backup(self, source: Path, label: str) -> dict[str, Any]:
        m = proc.run(f"{self.name}-{label}", self.backup_argv(source), env=self.bench.env,
                     ok_codes=(0, 1) if self.name == "amlport" else (0,),
                     log_dir=self.bench.logs)  # fmt: skip
        # the machine may be shared: the 1-minute load average as the backup ends
        out = {**m.summary(), "repo_bytes": apparent(self.repo), "load": os.getloadavg()[0]}
        log(f"{self.name} {label}: {m.wall_s:.1f} s, {m.peak_rss_mb:.0f} MB RSS, "
            f"repository {out['repo_bytes'] / 1e6:.2f} MB")  # fmt: skip
        return out


class RepoBench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work: Path = args.workdir
        self.logs = self.work / "logs"
        self.env = {
            "RESTIC_PASSWORD": RESTIC_PASSWORD,
            "RESTIC_CACHE_DIR": str(self.work / "restic-cache"),
            "AMLPORT_CACHE_DIR": str(self.work / "amlport-cache"),
        }
        self.results: dict[str, Any] = {"mode": args.mode, "sizes": {}, "tools": self.versions()}

    def versions(self) -> dict[str, str]:
        def first_line(argv: list[str]) -> str:
            try:
                res = subprocess.run(argv, capture_output=True, text=True, check=False)
            except OSError as exc:
                return f"missing ({exc})"
            return (
                (res.stdout or res.stderr).strip().splitlines()[0]
                if res.stdout or res.stderr
                else "?"
            )

        return {
            "commit": first_line(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]),
            "restic": first_line([self.args.restic, "version"]),
            "amlport": first_line([self.args.python, "-m", "amlport", "--version"]),
            "cpus": str(os.cpu_count()),
        }

    def run(self) -> None:
        for blobs in self.args.sizes:
            self.size(blobs)
            self.save()

    def size(self, blobs: int) -> None:
        runs = wl.runs_for(blobs)
        log(f"{blobs}: generating {runs} runs …")
        w = wl.generate(f"repo-{blobs}", runs, 0, self.work / "workspaces", sys.executable)
        res: dict[str, Any] = {"blobs": w.files, "bytes": w.bytes, "runs": runs}
        self.results["sizes"][str(blobs)] = res
        tools = {
            name: Tool(name, self, self.work / f"{name}-repo") for name in ("restic", "amlport")
        }
        try:
            for tool in tools.values():
                shutil.rmtree(self.work / "amlport-cache", ignore_errors=True)
                tool.init()
            for name, tool in tools.items():  # first backups, side by side
                res[f"{name}_first"] = tool.backup(w.local_dir, f"{blobs}-first")
            for name in tools:
                res[f"{name}_rebackups"] = []
            for i in range(self.args.rebackups):  # alternating
                for name, tool in tools.items():
                    res[f"{name}_rebackups"].append(tool.backup(w.local_dir, f"{blobs}-again{i}"))
            small = blobs == min(self.args.sizes)
            nightly = self.args.nightly if small else 0
            for name, tool in tools.items():
                done = 1 + self.args.rebackups
                for i in range(done, nightly):
                    tool.backup(w.local_dir, f"{blobs}-night{i}")
                res[f"{name}_nightly"] = {
                    "backups": max(nightly, done),
                    "measured": bool(nightly),
                    "repo_bytes": apparent(tool.repo),
                }
            changed = change_one_percent(w.local_dir, runs)
            res["changed_bytes"] = changed
            for name, tool in tools.items():
                before = apparent(tool.repo)
                after = tool.backup(w.local_dir, f"{blobs}-changed")
                after["growth"] = after["repo_bytes"] - before
                res[f"{name}_changed"] = after
        finally:
            shutil.rmtree(w.local_dir, ignore_errors=True)
            for tool in tools.values():
                shutil.rmtree(tool.repo, ignore_errors=True)

    def save(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        path = self.work / f"repo-results-{self.args.mode}.json"
        path.write_text(json.dumps(self.results, indent=1, sort_keys=True))
        sections.write_section(self.args.report, render(self.results, self.args.nightly))


def change_one_percent(root: Path, runs: int) -> int:
    """Rewrite one file in 1 % of the run folders (at least one); the bytes written."""
    runs_dirs = sorted(p for p in root.rglob("dcid.*") if p.is_dir())
    if not runs_dirs:
        runs_dirs = sorted({p.parent for p in root.rglob("*") if p.is_file()})
    step = max(1, len(runs_dirs) // max(1, len(runs_dirs) // 100))
    written = 0
    for folder in runs_dirs[::step][: max(1, len(runs_dirs) // 100)]:
        victim = next((p for p in sorted(folder.rglob("*")) if p.is_file()), None)
        if victim is None:
            continue
        data = victim.read_bytes() + b"\nchanged by the benchmark\n"
        victim.write_bytes(data)
        written += len(data)
    return written


def _runs(res: dict[str, Any]) -> list[dict[str, Any]]:
    """Every timed backup of one size (both tools)."""
    out: list[dict[str, Any]] = []
    for name in ("restic", "amlport"):
        out += [res[k] for k in (f"{name}_first", f"{name}_changed") if k in res]
        out += res.get(f"{name}_rebackups", [])
    return out


def _cpu(row: dict[str, Any]) -> float:
    return float(row.get("user_s", 0.0)) + float(row.get("sys_s", 0.0))


def _median(rows: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in rows) if rows else float("nan")


def growth_per_rebackup(res: dict[str, Any], name: str) -> float:
    rows = res[f"{name}_rebackups"]
    sizes = [res[f"{name}_first"]["repo_bytes"]] + [r["repo_bytes"] for r in rows]
    steps = [b - a for a, b in itertools.pairwise(sizes)]
    return statistics.median(steps) if steps else float("nan")


def render(results: dict[str, Any], nightly: int) -> str:
    lines = ["## Repository format 2 beside restic (local copies)", ""]
    tools = results.get("tools", {})
    lines.append(f"restic: `{tools.get('restic')}`; amlport: `{tools.get('amlport')}` at "
                 f"commit {tools.get('commit', '?')}; "
                 f"{tools.get('cpus')} CPUs; mode {results.get('mode')}. "
                 "Generated by `make bench-repo` (`bench/repo_bench.py`).")  # fmt: skip
    lines += ["", "| target | size | restic | amlport | ratio / value | limit | verdict |",
              "|---|---|---|---|---|---|---|"]  # fmt: skip
    sizes = results.get("sizes", {})
    per_blob: dict[str, float] = {}
    for key, res in sorted(sizes.items(), key=lambda kv: int(kv[0])):
        label = f"{int(key) // 1000}k" if int(key) >= 1000 else key
        if "amlport_changed" not in res:
            lines.append(f"| (incomplete) | {label} | | | | | |")
            continue
        rf, af = res["restic_first"], res["amlport_first"]
        g_r, g_a = growth_per_rebackup(res, "restic"), growth_per_rebackup(res, "amlport")
        t_r, t_a = (
            _median(res["restic_rebackups"], "wall_s"),
            _median(res["amlport_rebackups"], "wall_s"),
        )
        c_r = statistics.median(_cpu(r) for r in res["restic_rebackups"])
        c_a = statistics.median(_cpu(r) for r in res["amlport_rebackups"])
        per_blob[key] = af["wall_s"] / max(1, res["blobs"])
        ch = res["amlport_changed"]["growth"]
        limit_changed = 2 * res["changed_bytes"] + 64 * 1024
        nr, na = res["restic_nightly"], res["amlport_nightly"]
        n_label = "measured" if na["measured"] else "computed"
        a_night = na["repo_bytes"] if na["measured"] else af["repo_bytes"] + (nightly - 1) * g_a
        r_night = nr["repo_bytes"] if nr["measured"] else rf["repo_bytes"] + (nightly - 1) * g_r
        rss = max([af["peak_rss_mb"], res["amlport_changed"]["peak_rss_mb"],
                   *(r["peak_rss_mb"] for r in res["amlport_rebackups"])])  # fmt: skip
        rows = [
            ("first backup", f"{rf['wall_s']:.1f} s", f"{af['wall_s']:.1f} s",
             f"{af['wall_s'] / rf['wall_s']:.2f} x", "≤ 3 x (goal 2 x)",
             af["wall_s"] <= 3 * rf["wall_s"]),
            ("unchanged re-backup (median)", f"{t_r:.1f} s", f"{t_a:.1f} s", f"{t_a / t_r:.2f} x",
             "≤ 1.5 x (goal 1 x)", t_a <= 1.5 * t_r),
            # On a shared machine wall times follow the load; CPU time (user + sys) less so.
            ("first backup, CPU time", f"{_cpu(rf):.1f} s", f"{_cpu(af):.1f} s",
             f"{_cpu(af) / _cpu(rf):.2f} x", "(figure)", None),
            ("unchanged re-backup, CPU time (median)", f"{c_r:.1f} s", f"{c_a:.1f} s",
             f"{c_a / c_r:.2f} x", "(figure)", None),
            ("growth per unchanged re-backup", f"{g_r:,.0f} B", f"{g_a:,.0f} B", f"{g_a:,.0f} B",
             "≤ 16 KiB", g_a <= 16 * 1024),
            ("growth after 1 % of runs changed", f"{res['restic_changed']['growth']:,} B",
             f"{ch:,} B", f"{ch:,} B", f"≤ 2 x {res['changed_bytes']:,} B + 64 KiB",
             ch <= limit_changed),
            ("repository after the first backup", f"{rf['repo_bytes'] / 1e6:.2f} MB",
             f"{af['repo_bytes'] / 1e6:.2f} MB", f"{af['repo_bytes'] / rf['repo_bytes']:.2f} x",
             "≤ 1.5 x", af["repo_bytes"] <= 1.5 * rf["repo_bytes"]),
            (f"repository after {nightly} unchanged backups ({n_label})",
             f"{r_night / 1e6:.2f} MB", f"{a_night / 1e6:.2f} MB",
             f"{a_night / max(1, r_night):.2f} x", "(figure)", None),
            ("peak RSS of amlport backup", f"{rf['peak_rss_mb']:.0f} MB", f"{rss:.0f} MB",
             f"{rss:.0f} MB", "≤ 200 MB", rss <= 200),
        ]  # fmt: skip
        for target, r, a, shown, limit, ok in rows:
            verdict = "-" if ok is None else ("met" if ok else "**missed**")
            lines.append(f"| {target} | {label} | {r} | {a} | {shown} | {limit} | {verdict} |")
    if len(per_blob) == 2:
        small, large = sorted(per_blob, key=int)
        ratio = per_blob[large] / per_blob[small]
        verdict = "met" if ratio <= 1.1 else "**missed**"
        lines.append(f"| first-backup time per blob, large / small | | | | {ratio:.2f} x | "
                     f"≤ 1.1 x | {verdict} |")  # fmt: skip
    lines += ["", "Figures per size (blobs, bytes of the workspace, changed bytes):", ""]
    for key, res in sorted(sizes.items(), key=lambda kv: int(kv[0])):
        changed = res.get("changed_bytes", 0)
        loads = [r["load"] for r in _runs(res) if "load" in r]
        load = f"; load average {min(loads):.1f}-{max(loads):.1f} on {tools.get('cpus')} CPUs" \
            if loads else ""  # fmt: skip
        lines.append(f"- {key}: {res.get('blobs')} blobs, {res.get('bytes', 0) / 1e6:.1f} MB, "
                     f"{res.get('runs')} runs; 1 % change rewrote {changed:,} B{load}")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which(args.restic) is None and not Path(args.restic).is_file():
        print("restic is not installed (Debian: apt-get install restic)", file=sys.stderr)
        return 2
    bench = RepoBench(args)
    bench.run()
    log(f"results in {args.workdir}; report in {args.report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
