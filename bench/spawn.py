"""Run a command and write its own resource usage (``wait4``) to a file as JSON.

    python -S bench/spawn.py USAGE_FILE ARGV...

Why a separate, tiny parent: on Linux a child's peak RSS (``ru_maxrss``) starts at its parent's
peak at fork/exec time, so measuring from the benchmark process itself (which holds listings
and fixture data) would inflate every figure. This parent stays at a few MB.

CPU (``user_s``, ``sys_s``) is the command's and every descendant's: this parent adopts the
orphans (``PR_SET_CHILD_SUBREAPER``) and reaps them, because amlport's worker processes are
children of a fork server the command never waits for. ``maxrss_kb`` is the command's own.
"""

import json
import os
import resource
import subprocess
import sys


def _adopt_orphans() -> None:
    """Become the parent of the command's orphaned descendants (Linux): amlport's worker
    processes are children of a fork server the command does not wait for, so only a
    subreaper that reaps them counts their CPU (docs/design/0007, "First-backup time")."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass


def main() -> int:
    usage_file, argv = sys.argv[1], sys.argv[2:]
    _adopt_orphans()
    child = subprocess.Popen(argv)  # inherits stdin, stdout and stderr
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    while True:  # the descendants it left (worker processes): their CPU counts too
        try:
            os.wait()
        except ChildProcessError:
            break
    total = resource.getrusage(resource.RUSAGE_CHILDREN)  # the command and every descendant
    with open(usage_file, "w") as fh:
        json.dump(
            {"maxrss_kb": usage.ru_maxrss, "user_s": total.ru_utime, "sys_s": total.ru_stime}, fh
        )
    return child.returncode if child.returncode >= 0 else 128 - child.returncode


if __name__ == "__main__":
    sys.exit(main())
