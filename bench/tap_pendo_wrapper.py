"""Runs the installed singer-io tap-pendo against another host, for bench/benchmark.py.

    python tap_pendo_wrapper.py --base-url URL [tap-pendo arguments]
    python tap_pendo_wrapper.py --base-url URL --catalog-of events,features --config CONFIG

tap-pendo hard-codes https://app.pendo.io (and app.eu.pendo.io for keys ending in .eu) in
`tap_pendo.streams`; its `Endpoints.get_url` reads those module globals at call time, so setting them
before `main()` points every request at URL. Nothing else of the tap is touched.

`--catalog-of` prints the catalog entries of the named streams the way tap-pendo's own `discover_streams`
builds them (each stream class's `load_schema()` and `load_metadata()`), without the custom-field lookup
that only accounts, visitors and the metadata streams use. The benchmark falls back to it when
`--discover` itself fails: tap-pendo 1.2.0's discover raises on a custom field of Pendo type `list`
(`get_schema_property_type`), which the emulator's visitor metadata schema has.

Runs in the tap's own venv (bench/.venv-tap-pendo, made by bench/benchmark.py), never in the connector's.
"""

from __future__ import annotations

import json
import sys


def catalog_of(stream_names: list[str], config_path: str) -> dict[str, object]:
    from singer import metadata
    from tap_pendo.streams import STREAMS

    with open(config_path) as f:
        config = json.load(f)
    # what tap_pendo.filter_app_ids sets when none are given
    config.setdefault("app_ids", 'expandAppIds("*")')
    entries = []
    for name in stream_names:
        stream = STREAMS[name](config)
        entries.append(
            {
                "stream": stream.name,
                "tap_stream_id": stream.name,
                "schema": stream.load_schema(),
                "metadata": metadata.to_list(metadata.to_map(stream.load_metadata())),
            }
        )
    return {"streams": entries}


def main() -> None:
    args = sys.argv[1:]
    if len(args) < 2 or args[0] != "--base-url":
        sys.exit(
            "usage: tap_pendo_wrapper.py --base-url URL [tap-pendo arguments | --catalog-of S1,S2 --config C]"
        )
    base_url, tap_args = args[1].rstrip("/"), args[2:]

    import tap_pendo
    import tap_pendo.streams as streams

    streams.US_BASE_URL = base_url
    streams.EU_BASE_URL = base_url
    if tap_args[:1] == ["--catalog-of"]:
        json.dump(catalog_of(tap_args[1].split(","), tap_args[tap_args.index("--config") + 1]), sys.stdout)
        return
    sys.argv = ["tap-pendo", *tap_args]
    tap_pendo.main()


if __name__ == "__main__":
    main()
