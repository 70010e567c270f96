"""Two PyAirbyte reads of the installed source-pendo into one DuckDB cache; prints what the cache holds as JSON.

Run by `test_pyairbyte.py` as its own process, because importing `airbyte` changes the importing process: it
reads `AIRBYTE_OFFLINE_MODE` and `DO_NOT_TRACK` once at import, adds a handler to the root logger and a dozen
warning filters, and takes seconds. A process of its own keeps all of that out of the pytest session.

    python -m integration_tests.pyairbyte_sync --executable PATH --config CONFIG.json --cache-dir DIR \
        --streams pages,events --output RESULT.json [--between-reads URL=JSON] [--reads N] [--sql QUERY.sql]

Output (one JSON object in the --output file: PyAirbyte prints its progress on stdout): for each read, the records PyAirbyte counted (`processed_records`), the
time the read started, and every row of every selected stream's cache table after it (columns as PyAirbyte
names them: lower case, plus `_airbyte_raw_id`, `_airbyte_extracted_at` in epoch ms, `_airbyte_meta`); and the
state PyAirbyte saved after the first read; with `--sql`, the query's columns and rows after the last read, run in
the cache's DuckDB with the cache's schema as the default (as a warehouse user queries the tables a sync landed).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

READS = 2


def _query(cache: Any, sql: str) -> dict[str, Any]:
    """The query's columns and rows, the cache's schema the default one (tables by their stream names)."""
    import sqlalchemy

    with cache.get_sql_engine().connect() as connection:
        connection.execute(sqlalchemy.text(f"SET schema = '{cache.schema_name}'"))
        result = connection.execute(sqlalchemy.text(sql))
        return {"columns": list(result.keys()), "rows": [list(row) for row in result]}


def _rows(cache: Any, stream: str) -> list[dict[str, Any]]:
    """Every row of the stream's cache table, JSON-ready (timestamps as epoch ms)."""
    import sqlalchemy

    table = cache[stream].to_sql_table()
    with cache.get_sql_engine().connect() as connection:
        rows = [dict(row) for row in connection.execute(sqlalchemy.select(table)).mappings()]
    for row in rows:
        for key, value in row.items():
            if isinstance(value, datetime):
                row[key] = int(value.timestamp() * 1000)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executable", required=True, help="the installed source-pendo console script")
    parser.add_argument("--config", required=True, type=Path, help="connector config JSON file")
    parser.add_argument(
        "--cache-dir", required=True, type=Path, help="directory for the DuckDB file and logs"
    )
    parser.add_argument("--streams", required=True, help="comma-separated stream names")
    parser.add_argument("--output", required=True, type=Path, help="where to write the JSON result")
    parser.add_argument(
        "--between-reads",
        metavar="URL=JSON",
        help="POST this JSON to this URL after the first read (an emulator control route: a catalogue change)",
    )
    parser.add_argument("--reads", type=int, default=READS, help="how many reads (default 2)")
    parser.add_argument("--sql", type=Path, help="a SQL query to run against the cache after the last read")
    args = parser.parse_args(argv)

    # Read by `airbyte` at import time: set them first. No registry lookup, no telemetry, files in cache-dir.
    os.environ.setdefault("AIRBYTE_OFFLINE_MODE", "1")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("AIRBYTE_LOGGING_ROOT", str(args.cache_dir / "logs"))
    os.environ.setdefault("AIRBYTE_PROJECT_DIR", str(args.cache_dir))
    import airbyte as ab

    streams = args.streams.split(",")
    source = ab.get_source(
        "source-pendo",
        config=json.loads(args.config.read_text()),
        local_executable=args.executable,
        streams=streams,
    )
    cache = ab.DuckDBCache(db_path=str(args.cache_dir / "pyairbyte.duckdb"), schema_name="pendo")

    reads: list[dict[str, Any]] = []
    state_after_first: list[dict[str, Any]] = []
    for n in range(args.reads):
        started_ms = int(
            time.time() * 1000
        )  # real time, as PyAirbyte's _airbyte_extracted_at it is compared to
        result = source.read(cache=cache)  # write_strategy "auto", incremental where the stream supports it
        reads.append(
            {
                "started_ms": started_ms,
                "processed_records": result.processed_records,
                "tables": {stream: _rows(cache, stream) for stream in streams},
            }
        )
        if n == 0 and args.between_reads:
            url, _, body = args.between_reads.partition("=")
            request = urllib.request.Request(url, data=body.encode(), method="POST")
            urllib.request.urlopen(request, timeout=30).close()
        if n == 0:
            provider = cache.get_state_provider(source_name=source.name)
            state_after_first = [
                json.loads(s.model_dump_json(exclude_none=True)) for s in provider.state_message_artifacts
            ]
    result_json: dict[str, Any] = {"reads": reads, "state_after_first": state_after_first}
    if args.sql:
        result_json["sql"] = _query(cache, args.sql.read_text())
    args.output.write_text(json.dumps(result_json, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
