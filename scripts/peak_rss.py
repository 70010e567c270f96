#!/usr/bin/env python3
"""Runs a command and reports the peak summed RSS of its whole process tree, and its wall time.

    scripts/peak_rss.py [--interval 0.2] [--limit-mb N] [--] COMMAND [ARGS...]

Every `--interval` seconds it walks /proc for the command's process and all its descendants (children,
grandchildren: pytest, the connector and emulator processes it starts, ...), sums their VmRSS, and keeps the
maximum. At the end it prints, on stderr:

    peak RSS (process tree): X MB; wall: Y s

and exits with the command's exit code, or 3 when the command succeeded but the peak exceeded --limit-mb.
Linux only (/proc); stdlib only. This process makes itself a child subreaper (prctl), so a descendant whose
parent exits (a daemonised server, say) is re-parented here and still counted. A process that lives less than
one interval can be missed: the figure is a sampled lower bound, close for anything that runs for seconds.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time

EXIT_OVER_LIMIT = 3
PR_SET_CHILD_SUBREAPER = 36


def _children_map() -> tuple[dict[int, list[int]], dict[int, int]]:
    """parent pid -> child pids, and pid -> RSS in kB, for every process readable in /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
            # the command name (field 2) may hold spaces and parentheses: split after its last ')'
            fields = stat[stat.rindex(b")") + 2 :].split()
            ppid = int(fields[1])
            rss_pages = int(fields[21])
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile, or unreadable
        children.setdefault(ppid, []).append(pid)
        rss[pid] = rss_pages * PAGE_KB
    return children, rss


PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def tree_rss_kb(root: int) -> int:
    """The summed RSS (kB) of `root`'s descendants (not `root` itself)."""
    children, rss = _children_map()
    total, stack, seen = 0, list(children.get(root, ())), {root}
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, ()))
    return total


def _become_subreaper() -> None:
    """Orphaned descendants are re-parented to this process instead of init (Linux >= 3.4); best effort."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between samples (default 0.2)")
    parser.add_argument(
        "--limit-mb", type=float, default=None, help="exit 3 if the peak exceeds this many MB"
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command to run (after --)")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given")

    _become_subreaper()
    started = time.monotonic()
    proc = subprocess.Popen(command)
    peak_kb = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak_kb
        while not done.is_set():
            peak_kb = max(peak_kb, tree_rss_kb(os.getpid()))
            done.wait(args.interval)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    # forward SIGINT/SIGTERM to the command; its exit ends the sampling
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, _frame: proc.send_signal(signum))
    returncode = proc.wait()
    done.set()
    sampler.join()
    wall = time.monotonic() - started
    peak_mb = peak_kb / 1024
    print(f"peak RSS (process tree): {peak_mb:.0f} MB; wall: {wall:.1f} s", file=sys.stderr, flush=True)
    if args.limit_mb is not None and peak_mb > args.limit_mb:
        print(
            f"peak_rss: FAIL: peak {peak_mb:.0f} MB exceeds the limit of {args.limit_mb:.0f} MB",
            file=sys.stderr,
            flush=True,
        )
        return returncode or EXIT_OVER_LIMIT
    return returncode if returncode >= 0 else 128 - returncode


if __name__ == "__main__":
    sys.exit(main())
