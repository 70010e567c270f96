"""CLI: `python -m integration_tests.pendo_emulator serve --port 0 --scale tiny --faults '[...]'`.

`serve` prints one JSON line `{"base_url": ..., "now_ms": ..., "pid": ...}` once it is listening, then
serves until killed. `truth` prints the records each stream must yield for a connector config.
`--reading NAME` (repeatable; `pessimistic` = all of BEHAVIOR.md's readings §R-1 … §R-20) switches the answers to
another reading of Pendo's API (readings.py); give `truth` the same readings as `serve`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path

from . import readings
from .server import DEFAULT_KEYS, EmulatorSettings, base_url, make_server


def _json_arg(value: str) -> object:
    """Inline JSON, or @path to a JSON file."""
    return json.loads(Path(value[1:]).read_text() if value.startswith("@") else value)


def _settings(args: argparse.Namespace) -> EmulatorSettings:
    keys = dict(DEFAULT_KEYS)
    for spec in args.key or []:
        key, _, region = spec.rpartition(":")
        keys[key] = region
    return EmulatorSettings(
        scale=args.scale,
        seed=args.seed,
        now_ms=args.now or int(time.time() * 1000) // 3_600_000 * 3_600_000,
        tz=args.tz,
        region=args.region,
        keys=keys,
        faults=list(_json_arg(args.faults)) if args.faults else [],  # type: ignore[call-overload]
        late_rows=args.late_rows,
        readings=tuple(args.reading or ()),
        untagged=tuple(args.untagged or ()),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="pendo_emulator",
        description=__doc__,
        epilog=readings.help_text(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("serve", "truth"):
        p = sub.add_parser(
            name, epilog=readings.help_text(), formatter_class=argparse.RawDescriptionHelpFormatter
        )
        p.add_argument("--scale", default="tiny", choices=["tiny", "small", "large"])
        p.add_argument("--seed", type=int, default=7)
        p.add_argument(
            "--now", type=int, help="the emulator's clock, epoch ms (default: now, floored to the hour)"
        )
        p.add_argument("--tz", default="UTC", help="subscription time zone for day buckets")
        p.add_argument(
            "--region", default="us", help="the region this host serves (keys of other regions get 400)"
        )
        p.add_argument("--key", action="append", help="extra integration key as KEY:REGION")
        p.add_argument("--faults", help="fault rules as JSON or @file (see faults.py)")
        p.add_argument(
            "--untagged",
            action="append",
            metavar="ID",
            help="an object not tagged yet (repeatable; catalogue_changes.py)",
        )
        p.add_argument("--late-rows", action="store_true", help="rows appear for buckets already served once")
        p.add_argument(
            "--reading",
            action="append",
            choices=readings.ALL_NAMES,
            metavar="NAME",
            help="switch on a reading of BEHAVIOR.md §R-1 … §R-20 (repeatable; 'pessimistic' = all; listed below)",
        )
        if name == "serve":
            p.add_argument("--host", default="127.0.0.1")
            p.add_argument("--port", type=int, default=0)
        else:
            p.add_argument("--config", required=True, help="connector config JSON or @file")
            p.add_argument("--stream", action="append", help="stream name (default: all)")
    args = parser.parse_args(argv)
    settings = _settings(args)
    if args.command == "truth":
        from .truth import GroundTruth

        truth = GroundTruth(settings.dataset())
        config = _json_arg(args.config)
        for stream in args.stream or truth.streams():
            for record in truth.records(stream, config):  # type: ignore[arg-type]
                sys.stdout.write(json.dumps({"stream": stream, "data": record}) + "\n")
        return 0
    server, emulator = make_server(settings, args.host, args.port)
    signal.signal(signal.SIGTERM, lambda *_: (server.server_close(), os._exit(0)))
    print(
        json.dumps({"base_url": base_url(server), "now_ms": emulator.settings.now_ms, "pid": os.getpid()}),
        flush=True,
    )
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever(poll_interval=0.2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
