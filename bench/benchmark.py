"""End-to-end extraction benchmark (issue 7): source-pendo vs a plain declarative manifest vs tap-pendo 1.2.0.

    .venv/bin/python bench/benchmark.py [--scale large] [--streams events,feature_events] [--period HOUR]
                                        [--out bench/results] [--extractors ours,plain,tap] [--tap-timeout 1200]
    .venv/bin/python bench/benchmark.py --quick        # tiny dataset into bench/out/quick: checks the script (~1.5 min)

One Pendo emulator process serves the same seeded dataset to every extractor. Before anything is timed, each
stream's (source, period) index is built by an untimed aggregation request (20-50 s per source at `large`).
Then, per stream, each extractor runs as its own process, stdout into a pipe that this script reads and
only counts (lines that start a RECORD message of the stream; nothing is parsed or kept), stderr to a log:

  ours   .venv/bin/source-pendo read --config --catalog (source-pendo as installed, its default settings)
  plain  bench/plain_source.py read: bench/plain_manifest.yaml on the stock airbyte-cdk, same .venv
  tap    bench/tap_pendo_wrapper.py in bench/.venv-tap-pendo (created here when missing): tap-pendo 1.2.0
         from PyPI with its host patched to the emulator; its ~2 s between requests is part of the result

Measured per run: RECORD lines counted on the pipe, wall time from spawn to exit, peak RSS (the kernel's
high-water mark, ru_maxrss, of the extractor process from wait4, plus the summed RSS of its process tree
polled every 0.1 s), CPU time, and the requests and rows the emulator logged during the run (its
/_emulator/stats before and after). A tap run stopped by --tap-timeout is reported as partial: records/s
over the time it ran. Writes <out>/benchmark.md, <out>/benchmark.json and <out>/benchmark.png (matplotlib
from bench/.venv-plot, created when missing; never installed into the connector's venv). Logs, configs and
catalogs go to bench/out/ (gitignored).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))

TAP_VENV = BENCH / ".venv-tap-pendo"
PLOT_VENV = BENCH / ".venv-plot"
WORK = BENCH / "out"
TAP_PENDO = "tap-pendo==1.2.0"
# tap-pendo 1.2.0 pins pyhumps==1.3.1, which imports collections.Mapping (gone in Python 3.10). 1.6.1 is the
# closest release that imports on 3.11; decamelize gives the same keys for Pendo's camelCase fields.
PYHUMPS = "pyhumps==1.6.1"
API_KEY = "emulator-key.us"  # the emulator's default US key (server.DEFAULT_KEYS)
DAY_MS = 86_400_000
# Peak RSS (GiB) of an emulator process that built one HOUR index at `large`: events measured (9.2), featureEvents
# scaled from it by row count (2.8M / 1.87M); the extractors need up to ~3 GiB more.
# Checked before each stream's emulator starts, so that the OOM killer never has to choose.
EMULATOR_GB: dict[str, dict[str, float]] = {"large": {"events": 9.2, "featureEvents": 14.0}}
EXTRACTORS_GB = 3.0

# stream -> (aggregation source, tap-pendo parent stream that must be selected with it)
STREAMS = {
    "events": ("events", None),
    "feature_events": ("featureEvents", "features"),
    "page_events": ("pageEvents", "pages"),
    "track_events": ("trackEvents", "track_types"),
}
EXTRACTORS = {
    "ours": "source-pendo (this repo)",
    "plain": "plain declarative (airbyte-cdk, no custom components)",
    "tap": "tap-pendo 1.2.0 (singer-io)",
}
AIRBYTE_RECORD = b'{"type":"RECORD"'
AIRBYTE_ERROR = b'{"type":"TRACE","trace":{"type":"ERROR"'


# ---------------------------------------------------------------------------------------------- one process
@dataclass
class Run:
    extractor: str
    stream: str
    status: str = "ok"  # ok | failed | partial (stopped by timeout) | skipped
    records: int = 0
    wall_s: float = 0.0
    records_per_s: float = 0.0
    peak_rss_mb: float = 0.0  # ru_maxrss of the extractor process (wait4)
    tree_rss_mb: float = 0.0  # highest summed RSS of the process tree, polled
    tree_processes: int = 0  # most processes seen in the tree at once
    cpu_s: float = 0.0
    requests: int = 0
    requests_failed: int = 0  # non-2xx answers of the emulator during the run
    rows_served: int = 0
    request_counts: dict[str, int] = field(default_factory=dict)
    exit_code: int | None = None
    note: str = ""
    errors: list[str] = field(default_factory=list)
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    command: list[str] = field(default_factory=list)


class LineCounter:
    """Counts lines starting with any of `prefixes` in a byte stream, across chunk boundaries."""

    def __init__(self, prefixes: list[bytes], error_prefix: bytes | None = None) -> None:
        self.patterns = [b"\n" + p for p in prefixes]
        self.error_pattern = b"\n" + error_prefix if error_prefix else None
        self.keep = (
            max(len(p) for p in self.patterns + ([self.error_pattern] if self.error_pattern else [])) - 1
        )
        self.carry = b"\n"
        self.count = 0
        self.errors: list[str] = []

    def feed(self, chunk: bytes) -> None:
        text = self.carry + chunk
        for pattern in self.patterns:  # skip what the carried bytes alone could match: no line counted twice
            self.count += text.count(pattern, max(0, len(self.carry) - len(pattern) + 1))
        if self.error_pattern and len(self.errors) < 3:
            at = text.find(self.error_pattern, max(0, len(self.carry) - len(self.error_pattern) + 1))
            if at >= 0:
                end = text.find(b"\n", at + 1)
                self.errors.append(
                    text[at + 1 : end if end > 0 else at + 2001][:2000].decode("utf-8", "replace")
                )
        self.carry = text[-self.keep :]


def process_tree_rss(root: int) -> tuple[int, int]:
    """(summed RSS in bytes, number of processes) of `root` and its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
            fields = stat[stat.rindex(b")") + 2 :].split()
            pid, ppid = int(entry), int(fields[1])
            rss[pid] = int(fields[21]) * page
            children.setdefault(ppid, []).append(pid)
        except (OSError, ValueError, IndexError):
            continue
    total, count, todo = 0, 0, [root]
    while todo:
        pid = todo.pop()
        if pid in rss:
            total += rss[pid]
            count += 1
        todo += children.get(pid, [])
    return total, count


def run_process(
    command: list[str], prefixes: list[bytes], stderr_path: Path, timeout: float | None, airbyte: bool
) -> dict[str, Any]:
    """Run `command`, count RECORD lines on its stdout, and measure it (see the module docstring)."""
    stderr_path.parent.mkdir(parents=True, exist_ok=True)
    counter = LineCounter(prefixes, AIRBYTE_ERROR if airbyte else None)
    peak = {"rss": 0, "procs": 0}
    done = threading.Event()
    timed_out = threading.Event()
    with open(stderr_path, "wb") as stderr:
        started = time.monotonic()
        proc = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            cwd=REPO,
            start_new_session=True,
            bufsize=0,
        )

        def watch() -> None:
            while not done.wait(0.1):
                total, procs = process_tree_rss(proc.pid)
                peak["rss"], peak["procs"] = max(peak["rss"], total), max(peak["procs"], procs)
                if timeout is not None and time.monotonic() - started > timeout and not timed_out.is_set():
                    timed_out.set()
                    _stop_group(proc.pid)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        fd = proc.stdout.fileno()  # type: ignore[union-attr]
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            counter.feed(chunk)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - started
        done.set()
        watcher.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
        proc.stdout.close()  # type: ignore[union-attr]
    return {
        "records": counter.count,
        "wall_s": wall,
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "tree_rss_mb": peak["rss"] / 2**20,
        "tree_processes": peak["procs"],
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "exit_code": proc.returncode,
        "timed_out": timed_out.is_set(),
        "errors": counter.errors,
    }


def _stop_group(pid: int) -> None:
    """SIGTERM the extractor's own process group (it was started in a new session), SIGKILL after 5 s."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return

    def kill_later() -> None:
        time.sleep(5)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)

    threading.Thread(target=kill_later, daemon=True).start()


# ---------------------------------------------------------------------------------------------- emulator
def aggregation(base_url: str, body: dict[str, Any], timeout: float = 600) -> bytes:
    request = urllib.request.Request(
        base_url + "/api/v1/aggregation",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"x-pendo-integration-key": API_KEY, "content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.read()


def warm_up(base_url: str, source: str, period: str, now_ms: int) -> float:
    """Build the emulator's index for (source, period) with one untimed one-row request; returns seconds."""
    started = time.monotonic()
    time_range = {
        "period": "hourRange" if period == "HOUR" else "dayRange",
        "first": now_ms - DAY_MS,
        "count": 1,
    }
    aggregation(
        base_url,
        {
            "response": {"mimeType": "application/json"},
            "request": {
                "pipeline": [
                    {"source": {source: {"appId": 'expandAppIds("*")'}, "timeSeries": time_range}},
                    {"limit": 1},
                ]
            },
        },
    )
    return time.monotonic() - started


def stats_snapshot(emulator: Any) -> tuple[int, dict[str, int]]:
    stats = emulator.stats()
    return len(stats["requests"]), stats["counts"]


def request_diff(emulator: Any, before: int) -> tuple[int, int, int, dict[str, int]]:
    requests = emulator.stats()["requests"][before:]
    counts: dict[str, int] = {}
    for r in requests:
        key = r["route"] + (f":{r['source']}" if r.get("source") else "")
        counts[key] = counts.get(key, 0) + 1
    failed = sum(1 for r in requests if not (200 <= (r.get("status") or 0) < 300))
    rows = sum(r.get("rows") or 0 for r in requests)
    return len(requests), failed, rows, counts


# ---------------------------------------------------------------------------------------------- venvs
def base_python() -> str:
    return getattr(sys, "_base_executable", None) or sys.executable


def pip_install(python: Path, *packages: str, no_deps: bool = False) -> None:
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", *(["--no-deps"] if no_deps else []), *packages],
        check=True,
    )


def ensure_tap_venv() -> Path:
    python = TAP_VENV / "bin" / "python"
    probe = [
        str(python),
        "-c",
        "import tap_pendo, humps; from importlib.metadata import version; print(version('tap-pendo'))",
    ]
    if python.exists() and subprocess.run(probe, capture_output=True, text=True).stdout.strip() == "1.2.0":
        return python
    print(f"creating {TAP_VENV} with {TAP_PENDO} and {PYHUMPS} ...", flush=True)
    subprocess.run([base_python(), "-m", "venv", str(TAP_VENV)], check=True)
    pip_install(python, TAP_PENDO)
    pip_install(python, PYHUMPS, no_deps=True)
    subprocess.run(probe, check=True, capture_output=True)
    return python


def plot_python() -> Path | None:
    for venv in (PLOT_VENV, TAP_VENV):
        python = venv / "bin" / "python"
        if (
            python.exists()
            and subprocess.run([str(python), "-c", "import matplotlib"], capture_output=True).returncode == 0
        ):
            return python
    try:
        print(f"creating {PLOT_VENV} with matplotlib ...", flush=True)
        subprocess.run([base_python(), "-m", "venv", str(PLOT_VENV)], check=True)
        pip_install(PLOT_VENV / "bin" / "python", "matplotlib")
        return PLOT_VENV / "bin" / "python"
    except subprocess.CalledProcessError as error:
        print(f"no matplotlib ({error}); skipping the chart", flush=True)
        return None


def version_of(python: Path | str, package: str) -> str:
    code = f"import sys; from importlib.metadata import version; print(sys.version.split()[0], version({package!r}))"
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True).stdout.split()
    return f"{package} {out[1]} on Python {out[0]}" if len(out) == 2 else f"{package} (unknown)"


# ---------------------------------------------------------------------------------------------- catalogs
def airbyte_catalog(command: list[str], config_path: Path, stream: str) -> dict[str, Any]:
    """A configured catalog for `stream` from the extractor's own `discover` (incremental, append)."""
    out = subprocess.run(
        [*command, "discover", "--config", str(config_path)],
        capture_output=True,
        cwd=REPO,
        timeout=300,
        check=True,
    ).stdout
    catalog = next(
        json.loads(line)["catalog"] for line in out.splitlines() if line.startswith(b'{"type":"CATALOG"')
    )
    entry = next(s for s in catalog["streams"] if s["name"] == stream)
    return {
        "streams": [
            {
                "stream": entry,
                "sync_mode": "incremental",
                "destination_sync_mode": "append",
                "cursor_field": entry.get("default_cursor_field", []),
                **(
                    {"primary_key": entry["source_defined_primary_key"]}
                    if entry.get("source_defined_primary_key")
                    else {}
                ),
            }
        ]
    }


def tap_catalog(
    python: Path, base_url: str, config_path: Path, streams: list[str]
) -> tuple[dict[str, Any], str]:
    """tap-pendo's catalog with `streams` selected (every field): from `--discover`, or built from tap-pendo's
    own per-stream schema and metadata when discover fails. Returns (catalog, note)."""
    wrapper = [str(python), str(BENCH / "tap_pendo_wrapper.py"), "--base-url", base_url]
    done = subprocess.run(
        [*wrapper, "--config", str(config_path), "--discover"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    note = ""
    if done.returncode == 0:
        catalog = json.loads(done.stdout)
    else:
        critical = [line for line in done.stderr.splitlines() if line.startswith("CRITICAL")]
        note = (
            f"tap-pendo `--discover` failed against the emulator ({critical[-1] if critical else done.stderr[-300:]}); "
            "its catalog entries for these streams were built with tap-pendo's own `load_schema()`/`load_metadata()` "
            "(bench/tap_pendo_wrapper.py --catalog-of)"
        )
        out = subprocess.run(
            [*wrapper, "--catalog-of", ",".join(STREAMS_ALL_TAP), "--config", str(config_path)],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=300,
            check=True,
        ).stdout
        catalog = json.loads(out)
    selected = []
    for entry in catalog["streams"]:
        if entry["tap_stream_id"] in streams:
            for item in entry["metadata"]:
                item["metadata"]["selected"] = True
            selected.append(entry)
    return {"streams": selected}, note


STREAMS_ALL_TAP = sorted({s for s in STREAMS} | {p for _, p in STREAMS.values() if p})


# ---------------------------------------------------------------------------------------------- main
def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--scale", choices=["tiny", "small", "large"], default=None, help="dataset (default large)"
    )
    parser.add_argument(
        "--streams", default="events,feature_events", help=f"comma-separated, of {', '.join(STREAMS)}"
    )
    parser.add_argument("--period", choices=["HOUR", "DAY"], default="HOUR")
    parser.add_argument(
        "--out",
        default=None,
        help="where benchmark.md/.json/.png go (default bench/results; --quick: bench/out/quick)",
    )
    parser.add_argument("--extractors", default="ours,plain,tap", help="comma-separated, of ours, plain, tap")
    parser.add_argument(
        "--tap-timeout",
        type=float,
        default=None,
        help="stop a tap-pendo run after this many seconds and report it as partial (default 1200; --quick 120)",
    )
    parser.add_argument(
        "--timeout", type=float, default=3600, help="stop ours/plain runs after this many seconds"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--emulator-url",
        help="use this already running emulator (same scale and seed) instead of starting one per stream",
    )
    parser.add_argument("--quick", action="store_true", help="tiny dataset: checks that the script works")
    parser.add_argument("--plot-only", nargs=2, metavar=("JSON", "PNG"), help=argparse.SUPPRESS)
    parser.add_argument(
        "--report-only", metavar="JSON", help="rewrite benchmark.md and .png next to JSON from its figures"
    )
    args = parser.parse_args()
    if args.plot_only:
        plot(Path(args.plot_only[0]), Path(args.plot_only[1]))
        return 0
    if args.report_only:
        path = Path(args.report_only).resolve()
        data = json.loads(path.read_text())
        runs = [Run(**{**r, "load_before": tuple(r["load_before"])}) for r in data["runs"]]
        path.with_suffix(".md").write_text(markdown(data["meta"], runs))
        write_plot(path, path.with_suffix(".png"))
        return 0

    scale = args.scale or ("tiny" if args.quick else "large")
    tap_timeout = args.tap_timeout if args.tap_timeout is not None else (120.0 if args.quick else 1200.0)
    streams = [s.strip() for s in args.streams.split(",") if s.strip()]
    extractors = [e.strip() for e in args.extractors.split(",") if e.strip()]
    for name in streams:
        if name not in STREAMS:
            parser.error(f"unsupported stream {name!r}: the benchmark covers {', '.join(STREAMS)}")
    for name in extractors:
        if name not in EXTRACTORS:
            parser.error(f"unknown extractor {name!r}")
    out = Path(args.out or (WORK / "quick" if args.quick else BENCH / "results")).resolve()
    out.mkdir(parents=True, exist_ok=True)
    work = WORK / datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    work.mkdir(parents=True, exist_ok=True)

    from integration_tests.pendo_emulator import EmulatorProcess
    from integration_tests.pendo_emulator.dataset import SCALES

    started = time.monotonic()
    meta: dict[str, Any] = {
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join(
            [os.path.relpath(sys.executable, REPO), os.path.relpath(__file__, REPO), *sys.argv[1:]]
        ),
        "scale": scale,
        "scale_params": asdict(SCALES[scale]),
        "seed": args.seed,
        "period": args.period,
        "streams": streams,
        "extractors": extractors,
        "tap_timeout_s": tap_timeout,
        "machine": machine(),
        "uptime_before": uptime(),
        "git": git_head(),
        "versions": {"ours": version_of(sys.executable, "airbyte-cdk")},
        "notes": [],
        "warm_up_s": {},
    }
    tap_python = None
    if "tap" in extractors:
        tap_python = ensure_tap_venv()
        meta["versions"]["tap"] = (
            version_of(tap_python, "tap-pendo") + ", " + version_of(tap_python, "pyhumps").split(" on ")[0]
        )

    runs: list[Run] = []
    # One emulator per stream: at `large` an emulator holding the events and featureEvents indexes at once
    # needs ~15 GB, more than this machine had free. All of them share one clock (the hour the run started).
    # The bench keeps the real clock (unlike the tests, see conftest.py): the emulator's data ends at this hour
    # and the connectors, which get no SOURCE_PENDO_NOW_MS, read the real time a little after it.
    now_ms = int(time.time() * 1000) // 3_600_000 * 3_600_000
    # the dataset's first bucket (Dataset.start_ms)
    start_ms = (now_ms // DAY_MS - SCALES[scale].days) * DAY_MS
    start_date = datetime.fromtimestamp(start_ms / 1000, timezone.utc).strftime("%Y-%m-%d")
    meta.update(now_ms=now_ms, start_date=start_date, emulator_peak_rss_gb={})
    if args.emulator_url:
        external = ExternalEmulator(args.emulator_url)
        info = external.info()
        if info["scale"] != scale or info["seed"] != args.seed:
            parser.error(
                f"{args.emulator_url} serves scale {info['scale']} seed {info['seed']}, not {scale} {args.seed}"
            )
        now_ms = external.now_ms
        start_ms = (now_ms // DAY_MS - SCALES[scale].days) * DAY_MS
        start_date = datetime.fromtimestamp(start_ms / 1000, timezone.utc).strftime("%Y-%m-%d")
        meta.update(now_ms=now_ms, start_date=start_date, external_emulator=args.emulator_url)
        meta["notes"].append(
            f"Emulator: the already running {args.emulator_url} (--emulator-url); request counts include any "
            "other client's requests made during a run."
        )
    for stream in streams:
        source = STREAMS[stream][0]
        if args.emulator_url:
            runs += bench_stream(
                stream, external, extractors, args, meta, work, start_date, tap_python, tap_timeout
            )
            continue
        need = EMULATOR_GB[scale][source] + EXTRACTORS_GB if source in EMULATOR_GB.get(scale, {}) else 0.0
        available = mem_available_gb()
        if available < need:
            reason = (
                f"not run: {available:.1f} GB of memory available, an emulator with the {source} index plus the "
                f"extractors needs ~{need:.0f} GB (the OOM killer would pick the largest process, maybe not ours)"
            )
            print(f"{stream}: {reason}", flush=True)
            runs += [Run(e, stream, status="skipped", note=reason) for e in extractors]
            continue
        print(f"emulator: scale {scale}, seed {args.seed}, for {stream} ...", flush=True)
        with EmulatorProcess(scale=scale, seed=args.seed, now_ms=now_ms, tz="UTC") as emulator:
            runs += bench_stream(
                stream, emulator, extractors, args, meta, work, start_date, tap_python, tap_timeout
            )
            assert emulator.process is not None
            meta["emulator_peak_rss_gb"][source] = round(peak_rss_kb(emulator.process.pid) / 2**20, 1)
    meta["uptime_after"] = uptime()
    meta["total_s"] = round(time.monotonic() - started, 1)
    meta["logs"] = os.path.relpath(work, REPO)

    result = {"meta": meta, "runs": [asdict(r) for r in runs]}
    (out / "benchmark.json").write_text(json.dumps(result, indent=1))
    (out / "benchmark.md").write_text(markdown(meta, runs))
    write_plot(out / "benchmark.json", out / "benchmark.png")
    print(f"wrote {out / 'benchmark.md'} in {meta['total_s']:.0f} s", flush=True)
    return 0 if all(r.status in ("ok", "partial") for r in runs) else 1


def bench_stream(
    stream: str,
    emulator: Any,
    extractors: list[str],
    args: argparse.Namespace,
    meta: dict[str, Any],
    work: Path,
    start_date: str,
    tap_python: Path | None,
    tap_timeout: float,
) -> list[Run]:
    """Warm the emulator up for `stream` (untimed), then run every extractor on it."""
    source = STREAMS[stream][0]
    try:
        seconds = warm_up(emulator.base_url, source, args.period, emulator.now_ms)
    except OSError as error:
        process = getattr(emulator, "process", None)
        code = process.wait(timeout=30) if process is not None and process.poll() is not None else None
        reason = (
            f"the emulator died while building its {source} index (exit code {code}; -9 is usually the OOM killer)"
            if code is not None
            else f"warm-up request failed: {error!r}"
        )
        print(f"{stream}: {reason}", flush=True)
        return [Run(e, stream, status="failed", note=reason) for e in extractors]
    meta["warm_up_s"][source] = round(seconds, 1)
    print(f"warm-up {source} {args.period}: {seconds:.1f} s (untimed)", flush=True)
    meta["configs"] = {
        k: {kk: ("<emulator key>" if "key" in kk else vv) for kk, vv in v.items()}
        for k, v in extractor_configs("<emulator>", start_date, args.period).items()
    }
    config_paths = {}
    for name, config in extractor_configs(emulator.base_url, start_date, args.period).items():
        config_paths[name] = work / f"{name}_{stream}_config.json"
        config_paths[name].write_text(json.dumps(config))
    return [
        bench_one(
            extractor,
            stream,
            emulator,
            config_paths,
            work,
            meta,
            tap_python,
            tap_timeout if extractor == "tap" else args.timeout,
        )
        for extractor in extractors
    ]


class ExternalEmulator:
    """An emulator started elsewhere (--emulator-url): the part of EmulatorProcess the benchmark uses."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.now_ms = int(self.info()["now_ms"])

    def _get(self, path: str) -> Any:
        with urllib.request.urlopen(self.base_url + path, timeout=120) as response:
            return json.loads(response.read())

    def info(self) -> dict[str, Any]:
        return self._get("/_emulator/info")

    def stats(self) -> dict[str, Any]:
        return self._get("/_emulator/stats")


def mem_available_gb() -> float:
    try:
        meminfo = Path("/proc/meminfo").read_text().split()
        return int(meminfo[meminfo.index("MemAvailable:") + 1]) / 2**20
    except (OSError, ValueError):
        return float("inf")


def write_plot(json_path: Path, png_path: Path) -> None:
    """The chart, drawn by this script run in a venv that has matplotlib (never the connector's)."""
    python = plot_python()
    if python is not None:
        subprocess.run([str(python), __file__, "--plot-only", str(json_path), str(png_path)], check=False)


def extractor_configs(base_url: str, start_date: str, period: str) -> dict[str, dict[str, Any]]:
    return {
        "ours": {
            "api_key": API_KEY,
            "base_url": base_url,
            "start_date": start_date,
            "period": period,
            "app_ids": [],
            "include_anonymous_visitors": True,
        },
        "plain": {
            "api_key": API_KEY,
            "base_url": base_url,
            "start_date": start_date,
            "period": period,
            "concurrency": 4,
        },
        "tap": {
            "x_pendo_integration_key": API_KEY,
            "start_date": f"{start_date}T00:00:00Z",
            "period": "hourRange" if period == "HOUR" else "dayRange",
            "include_anonymous_visitors": "true",
            "request_timeout": 300,
        },
    }


def peak_rss_kb(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))
    except (OSError, StopIteration, ValueError):
        return 0


def bench_one(
    extractor: str,
    stream: str,
    emulator: Any,
    config_paths: dict[str, Path],
    work: Path,
    meta: dict[str, Any],
    tap_python: Path | None,
    timeout: float,
) -> Run:
    """One extractor, one stream: catalog (untimed), then the measured read."""
    run = Run(extractor, stream)
    source_pendo = Path(sys.executable).parent / "source-pendo"
    if not source_pendo.exists():
        source_pendo = REPO / ".venv" / "bin" / "source-pendo"
    plain = [sys.executable, str(BENCH / "plain_source.py")]
    try:
        if extractor == "ours":
            catalog = airbyte_catalog([str(source_pendo)], config_paths["ours"], stream)
            command = [str(source_pendo), "read"]
        elif extractor == "plain":
            catalog = airbyte_catalog(plain, config_paths["plain"], stream)
            command = [*plain, "read"]
        else:
            assert tap_python is not None
            parent = STREAMS[stream][1]
            catalog, note = tap_catalog(
                tap_python, emulator.base_url, config_paths["tap"], [stream] + ([parent] if parent else [])
            )
            if note and note not in meta["notes"]:
                meta["notes"].append(note)
            command = [str(tap_python), str(BENCH / "tap_pendo_wrapper.py"), "--base-url", emulator.base_url]
    except Exception as error:  # reported in the table, not hidden
        run.status, run.note = "failed", f"catalog: {error}"
        print(f"{extractor:5} {stream}: catalog failed: {error}", flush=True)
        return run
    catalog_path = work / f"{extractor}_{stream}_catalog.json"
    catalog_path.write_text(json.dumps(catalog))
    command += ["--config", str(config_paths[extractor]), "--catalog", str(catalog_path)]
    prefixes = (
        [AIRBYTE_RECORD] if extractor != "tap" else [b'{"type": "RECORD", "stream": "%s"' % stream.encode()]
    )
    run.command = [  # the emulator's address is a random loopback port: recorded as a placeholder
        "<emulator base_url>"
        if c == emulator.base_url
        else os.path.relpath(c, REPO)
        if c.startswith(str(REPO))
        else c
        for c in command
    ]
    run.load_before = os.getloadavg()
    before, _ = stats_snapshot(emulator)
    print(f"{extractor:5} {stream}: running ...", flush=True)
    stderr_path = work / f"{extractor}_{stream}.stderr"
    measured = run_process(command, prefixes, stderr_path, timeout, extractor != "tap")
    try:
        run.requests, run.requests_failed, run.rows_served, run.request_counts = request_diff(
            emulator, before
        )
    except OSError as error:
        run.note = f"emulator stats unavailable ({error!r}); "
    for key in (
        "records",
        "wall_s",
        "peak_rss_mb",
        "tree_rss_mb",
        "tree_processes",
        "cpu_s",
        "exit_code",
        "errors",
    ):
        setattr(run, key, measured[key])
    run.records_per_s = run.records / run.wall_s if run.wall_s else 0.0
    if measured["timed_out"]:
        run.status, run.note = "partial", run.note + f"stopped by the timeout after {timeout:.0f} s"
    elif run.exit_code != 0 or run.errors:
        run.status = "failed"
        run.note += f"exit code {run.exit_code}" + (
            f"; {len(run.errors)} error trace(s)" if run.errors else ""
        )
        run.errors += stderr_path.read_text(errors="replace").strip().splitlines()[-3:]
    print(
        f"{extractor:5} {stream}: {run.status}, {run.records:,} records in {run.wall_s:.1f} s "
        f"({run.records_per_s:,.0f}/s), peak RSS {run.peak_rss_mb:.0f} MB, {run.requests} requests"
        f"{f' ({run.requests_failed} failed)' if run.requests_failed else ''}",
        flush=True,
    )
    return run


# ---------------------------------------------------------------------------------------------- report
def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    try:
        cpu = Path("/proc/cpuinfo").read_text()
        info["cpu"] = next(
            line.split(":", 1)[1].strip() for line in cpu.splitlines() if line.startswith("model name")
        )
        mem = Path("/proc/meminfo").read_text().split()
        info["memory_gb"] = round(int(mem[mem.index("MemTotal:") + 1]) / 2**20, 1)
    except (OSError, StopIteration, ValueError):
        pass
    return info


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "load average: {:.2f}, {:.2f}, {:.2f}".format(*os.getloadavg())


def git_head() -> str:
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "source_pendo"], capture_output=True, text=True, cwd=REPO
    ).stdout
    return head + (" (source_pendo/ has uncommitted changes)" if dirty.strip() else "")


def markdown(meta: dict[str, Any], runs: list[Run]) -> str:
    m = meta["machine"]
    lines = [
        "# Extraction benchmark: source-pendo vs plain declarative vs tap-pendo",
        "",
        f"Generated by `bench/benchmark.py` on {meta['started_at']} (total {meta['total_s']:.0f} s, git {meta['git']}).",
        "",
        f"- Command: `{meta['command']}`",
        f"- Machine: {m.get('cores')} cores ({m.get('cpu', '?')}), {m.get('memory_gb', '?')} GB RAM, Python {m['python']}, {m['platform']}",
        f"- Load: before `{meta['uptime_before']}`; after `{meta['uptime_after']}`. The machine is shared (other "
        "engineers' tests and emulators ran during the benchmark): compare extractors within one run, and treat "
        "absolute figures as provisional.",
        f"- Versions: ours/plain {meta['versions']['ours']}"
        + (f"; tap {meta['versions']['tap']}" if "tap" in meta["versions"] else ""),
        f"- Dataset: emulator scale `{meta['scale']}` (seed {meta['seed']}, {meta['scale_params']['apps']} apps, "
        f"{meta['scale_params']['identified_visitors']} identified + {meta['scale_params']['anonymous_visitors']} anonymous visitors, "
        f"{meta['scale_params']['days']} days), period {meta['period']}, start_date {meta['start_date']}, all apps, anonymous visitors included",
        (
            f"- Emulator: {meta['external_emulator']} (already running)"
            if meta.get("external_emulator")
            else "- Emulator: one process per stream (same clock)"
        )
        + ", each index built by an untimed request before the runs: "
        + ", ".join(f"{k} {v} s" for k, v in meta["warm_up_s"].items())
        + (
            "; emulator peak RSS: "
            + ", ".join(f"{k} {v} GB" for k, v in meta["emulator_peak_rss_gb"].items())
            if meta.get("emulator_peak_rss_gb")
            else ""
        ),
        "- 1-minute load average when each run started (others were using the machine too): "
        + ", ".join(f"{r.extractor}/{r.stream} {r.load_before[0]:.1f}" for r in runs if r.command),
        "",
        "| extractor | stream | records | wall s | records/s | peak RSS MB | requests | status | CPU s | tree RSS MB | rows served |",
        "|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    for r in runs:
        status = r.status + (f": {r.note}" if r.note else "")
        rate = f"{r.records_per_s:,.0f}" + (" (partial)" if r.status == "partial" else "")
        requests = f"{r.requests}" + (f" ({r.requests_failed} failed)" if r.requests_failed else "")
        lines.append(
            f"| {r.extractor} | {r.stream} | {r.records:,} | {r.wall_s:.1f} | {rate} | {r.peak_rss_mb:.0f} | {requests} | "
            f"{status} | {r.cpu_s:.1f} | {r.tree_rss_mb:.0f} | {r.rows_served:,} |"
        )
    lines += [
        "",
        "Columns: *records* = RECORD lines of the stream counted on the extractor's stdout pipe; *wall s* = spawn to exit "
        "(interpreter start-up and imports included); *peak RSS MB* = the kernel's high-water mark (ru_maxrss from wait4) "
        "of the extractor process; *tree RSS MB* = highest summed RSS of its process tree, polled every 0.1 s (a cross-check; "
        "every extractor here is one process); *requests* = requests the emulator logged during the run (non-2xx in brackets); "
        "*rows served* = result rows the emulator sent; *CPU s* = user + system time of the extractor.",
        "",
        "Extractors:",
        "",
        "- **ours**: `source-pendo read` as installed, default settings (page_size 50,000, concurrency 4), "
        "`include_anonymous_visitors: true`, incremental from start_date.",
        "- **plain**: `bench/plain_manifest.yaml` run by `bench/plain_source.py` on the same airbyte-cdk: one POST /aggregation per "
        "one-day window with the same pipeline (timeSeries, window filter, sort [bucket, visitorId]) but no keyset paging (limit "
        "2,000,000 per day), DpathExtractor on `results`, the CDK's default record path (no AddFields: records keep "
        "`hour`/`day` as their cursor, no periodStart), concurrency 4.",
        "- **tap**: tap-pendo 1.2.0 from PyPI in `bench/.venv-tap-pendo` (pyhumps 1.6.1 instead of its pinned 1.3.1, which does not "
        "import on Python 3.11), run through `bench/tap_pendo_wrapper.py` (host patched to the emulator), period "
        f"{'hourRange' if meta['period'] == 'HOUR' else 'dayRange'}, default record_limit 100,000, stream selected with all fields "
        "(plus its required parent stream for child streams; the parent's own records are not counted). It waits ~2 s between "
        f"requests by design (`@ratelimit(1, 2)`); runs longer than {meta['tap_timeout_s']:.0f} s are stopped and reported as partial.",
    ]
    notes = list(meta["notes"])
    by = {(r.extractor, r.stream): r for r in runs}
    for stream in meta["streams"]:
        ours, plain, tap = by.get(("ours", stream)), by.get(("plain", stream)), by.get(("tap", stream))
        if ours and plain and ours.status == plain.status == "ok" and ours.records != plain.records:
            notes.append(
                f"{stream}: ours and plain counted different records ({ours.records:,} vs {plain.records:,})."
            )
        if ours and tap and tap.status == "ok" and ours.status == "ok" and tap.records != ours.records:
            notes.append(f"{stream}: tap-pendo emitted {tap.records:,} records, ours {ours.records:,}.")
            if STREAMS[stream][1]:
                notes.append(
                    f"{stream}: tap-pendo asks `{STREAMS[stream][0]}` once per {STREAMS[stream][1]} object with only the object id "
                    "and no `appId`; Pendo answers such a request for the default app only (BEHAVIOR.md §B-10, §R-2; the emulator "
                    "does the same), so the objects of the other apps yield no rows."
                )
        for r in (ours, plain, tap):
            if r and r.errors:
                notes.append(f"{r.extractor} {stream} errors: " + " | ".join(e[:300] for e in r.errors))
    if notes:
        lines += ["", "Notes:", ""] + [f"- {n}" for n in notes]
    lines += ["", f"Logs, configs and catalogs of this run: `{meta['logs']}/` (not committed).", ""]
    return "\n".join(lines)


def plot(json_path: Path, png_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = json.loads(json_path.read_text())
    runs = [r for r in data["runs"] if r["status"] in ("ok", "partial")]
    if not runs:
        print("nothing to plot: no run finished")
        return
    streams = list(dict.fromkeys(r["stream"] for r in runs))
    extractors = list(dict.fromkeys(r["extractor"] for r in runs))
    colours = {"ours": "#2b8cbe", "plain": "#fdae6b", "tap": "#969696"}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    width = 0.8 / max(1, len(extractors))
    for ax, key, title in (
        (axes[0], "records_per_s", "records/s (higher is better)"),
        (axes[1], "peak_rss_mb", "peak RSS MB (lower is better)"),
    ):
        for i, extractor in enumerate(extractors):
            xs, ys, partial = [], [], []
            for j, stream in enumerate(streams):
                run = next((r for r in runs if r["stream"] == stream and r["extractor"] == extractor), None)
                if run is not None:
                    xs.append(j + (i - (len(extractors) - 1) / 2) * width)
                    ys.append(run[key])
                    partial.append(run["status"] == "partial")
            bars = ax.bar(
                xs, ys, width, label=EXTRACTORS.get(extractor, extractor), color=colours.get(extractor)
            )
            for bar, y, is_partial in zip(bars, ys, partial, strict=True):
                if is_partial:
                    bar.set_hatch("//")
                ax.annotate(
                    f"{y:,.0f}" + ("\n(partial)" if is_partial else ""),
                    (bar.get_x() + bar.get_width() / 2, y),
                    ha="center",
                    va="bottom",
                    fontsize=7,
                )
        ax.set_xticks(range(len(streams)), streams)
        ax.set_title(title)
        ax.margins(y=0.15)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    meta = data["meta"]
    fig.suptitle(
        f"Pendo emulator `{meta['scale']}`, {meta['period']}, {meta['machine'].get('cores')} cores "
        f"({meta['started_at'][:10]})",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(png_path, dpi=120)


if __name__ == "__main__":
    raise SystemExit(main())
