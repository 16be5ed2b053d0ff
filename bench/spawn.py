"""Run a command and write its own resource usage (``wait4``) to a file as JSON.

    python -S bench/spawn.py USAGE_FILE ARGV...

Why a separate, tiny parent: on Linux a child's peak RSS (``ru_maxrss``) starts at its parent's
peak at fork/exec time, so measuring from the benchmark process itself (which holds listings
and fixture data) would inflate every figure. This parent stays at a few MB.
"""

import json
import os
import subprocess
import sys


def main() -> int:
    usage_file, argv = sys.argv[1], sys.argv[2:]
    child = subprocess.Popen(argv)  # inherits stdin, stdout and stderr
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    with open(usage_file, "w") as fh:
        json.dump(
            {"maxrss_kb": usage.ru_maxrss, "user_s": usage.ru_utime, "sys_s": usage.ru_stime}, fh
        )
    return child.returncode if child.returncode >= 0 else 128 - child.returncode


if __name__ == "__main__":
    sys.exit(main())
