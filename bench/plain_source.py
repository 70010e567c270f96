"""Runs bench/plain_manifest.yaml with the stock airbyte-cdk: `python bench/plain_source.py read --config C --catalog K`.

The benchmark's "plain declarative" extractor. The CDK builds a declarative source's streams from the config,
catalog and state given to the constructor, so they are parsed first, then `launch` runs the command.
"""

from __future__ import annotations

import sys
from pathlib import Path

from airbyte_cdk.entrypoint import AirbyteEntrypoint, launch
from airbyte_cdk.sources.declarative.yaml_declarative_source import YamlDeclarativeSource

MANIFEST = Path(__file__).resolve().parent / "plain_manifest.yaml"


def main() -> None:
    args = sys.argv[1:]
    parsed = AirbyteEntrypoint.parse_args(args)
    config = YamlDeclarativeSource.read_config(parsed.config) if getattr(parsed, "config", None) else None
    catalog = YamlDeclarativeSource.read_catalog(parsed.catalog) if getattr(parsed, "catalog", None) else None
    state = YamlDeclarativeSource.read_state(parsed.state) if getattr(parsed, "state", None) else None
    source = YamlDeclarativeSource(path_to_yaml=str(MANIFEST), catalog=catalog, config=config, state=state)
    launch(source, args)


if __name__ == "__main__":
    main()
