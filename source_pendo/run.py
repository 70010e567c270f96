"""Console entry point `source-pendo`.

The source is built from the `--config`, `--catalog` and `--state` it will run with (the CDK builds streams
from what the constructor gets), after the files were read by settings/inputs.py and the config passed
`validate_config`: a bad file or setting gets one actionable message before any network call, never a
traceback (check: a FAILED connection status; discover and read: an error trace and exit 1).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airbyte_cdk.utils.traced_exception import AirbyteTracedException

    from .source import SourcePendo

COMMANDS_WITH_CONFIG = ("check", "discover", "read")


def _print_config_error(command: str, error: AirbyteTracedException) -> None:
    """check: a FAILED connection status (exit 0, as the CDK does); discover/read: an error trace (exit 1)."""
    from airbyte_cdk.entrypoint import AirbyteEntrypoint
    from airbyte_cdk.utils.airbyte_secrets_utils import filter_secrets

    if command == "check":
        message = error.as_connection_status_message()
    else:
        message = error.as_sanitized_airbyte_message()
        message.trace.error.stack_trace = None  # type: ignore[union-attr]  # nothing to debug in a bad config
    print(filter_secrets(AirbyteEntrypoint.airbyte_message_to_string(message)), flush=True)  # type: ignore[arg-type]


def build_source(args: list[str]) -> SourcePendo | None:
    """The source for `args`, or None when the config was rejected (the message is already printed)."""
    from airbyte_cdk.entrypoint import AirbyteEntrypoint
    from airbyte_cdk.models import AirbyteStateMessage, ConfiguredAirbyteCatalog
    from airbyte_cdk.utils.airbyte_secrets_utils import update_secrets
    from airbyte_cdk.utils.traced_exception import AirbyteTracedException

    from .settings.config import validate_config
    from .settings.inputs import read_catalog_file, read_config_file, read_state_file
    from .settings.masking import secret_forms
    from .source import SourcePendo

    parsed = AirbyteEntrypoint.parse_args(args)
    config: Mapping[str, Any] | None = None
    catalog: ConfiguredAirbyteCatalog | None = None
    state: list[AirbyteStateMessage] | None = None
    try:
        if getattr(parsed, "config", None):
            config = read_config_file(parsed.config)
            update_secrets(secret_forms(config))  # every printable form of the key and a base_url password
        if parsed.command in COMMANDS_WITH_CONFIG:
            validate_config(config or {})
        if getattr(parsed, "catalog", None):
            catalog = read_catalog_file(parsed.catalog)
        if getattr(parsed, "state", None):
            state = read_state_file(parsed.state)
    except AirbyteTracedException as error:
        _print_config_error(parsed.command, error)
        if parsed.command != "check":
            sys.exit(1)
        return None
    return SourcePendo(config=config, catalog=catalog, state=state)


def run() -> None:
    args = sys.argv[1:]
    # `spec` is static: answered from the manifest without importing the CDK (settings/spec.py)
    if args == ["spec"]:
        from .settings.spec import print_spec

        print_spec()
        return
    from .entrypoint import launch
    from .http import retry_log

    retry_log.install()
    source = build_source(args)
    if source is not None:
        launch(source, args)
