"""Run one benchmark child process and measure it: its JSON line and its peak memory.

A child is a fresh interpreter, so that its peak resident memory (``ru_maxrss`` of that
child, from ``wait4``) is the whole job's, imports and model included.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def run_measured_child(command: list[str], *, cwd: Path, what: str) -> dict:
    """Run ``command``; the last line it prints (JSON) as a dict, with ``peak_mib`` added.

    ``what`` names the run in the message when the child fails (``"the embedding run"``).
    """
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=cwd)
    _, status, usage = os.wait4(process.pid, 0)
    output = process.stdout.read()
    process.stdout.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{what} failed:\n{output}")
    record = json.loads(output.strip().splitlines()[-1])
    # ru_maxrss: KiB on Linux, bytes on macOS.
    record["peak_mib"] = usage.ru_maxrss / (2**20 if sys.platform == "darwin" else 1024)
    return record
