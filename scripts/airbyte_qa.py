"""Airbyte's connector QA checks (PyPI `airbyte-internal-ops`, module airbyte_ops_mcp.connector_qa), offline.

Run by scripts/airbyte_qa.sh from a directory laid out as Airbyte's monorepo (airbyte-integrations/connectors/
source-pendo/ and docs/integrations/sources/), with the QA venv's Python:
    python scripts/airbyte_qa.py source-pendo [--online] [--check NAME ...]

The same ENABLED_CHECKS and Check.run() gating as `airbyte-ops local connector qa` (airbyte_ops_mcp/cli/local.py,
run_qa_checks), without its telemetry. Offline (the default) four network calls are replaced, each said once:
  - the OSS registry download (Connector.is_released): an empty registry, so the connector counts as unreleased;
  - ValidateMetadata's Docker Hub look-ups (base image, latest tag): off;
  - CheckVersionIncrement's master metadata (raw.githubusercontent.com): none, a new connector (baseline 0.0.0);
  - CheckDocumentationLinks: links not fetched.
Exit status 1 when a check failed.
"""

from __future__ import annotations

import functools
import os
import sys

os.environ.setdefault("AIRBYTE_DISABLE_TELEMETRY", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")


def main(args: list[str]) -> int:
    import airbyte_ops_mcp.connector_ops.utils as utils
    from airbyte_ops_mcp.connector_qa.checks import metadata
    from airbyte_ops_mcp.connector_qa.checks.documentation import documentation
    from airbyte_ops_mcp.connector_qa.checks.version import CheckVersionIncrement

    online = "--online" in args
    only = [args[i + 1] for i, a in enumerate(args) if a == "--check"]
    names = [a for i, a in enumerate(args) if not a.startswith("--") and (i == 0 or args[i - 1] != "--check")]
    if not online:
        utils.download_catalog = lambda url: {"sources": [], "destinations": []}
        metadata.ValidatorOptions = functools.partial(
            metadata.ValidatorOptions, disable_dockerhub_checks=True
        )
        CheckVersionIncrement._get_master_metadata = lambda self, connector: None
        documentation.CheckDocumentationLinks.validate_links = lambda self, connector: []
        print(
            "OFFLINE: registry empty (not released), Docker Hub look-ups off, no master metadata, links unchecked\n"
        )

    from airbyte_ops_mcp.connector_qa.checks import ENABLED_CHECKS
    from airbyte_ops_mcp.connector_qa.models import CheckStatus

    tags = {CheckStatus.PASSED: "PASS", CheckStatus.FAILED: "FAIL", CheckStatus.SKIPPED: "SKIP"}
    checks = [c for c in ENABLED_CHECKS if not only or type(c).__name__ in only]
    failed = 0
    for name in names or ["source-pendo"]:
        connector = utils.Connector(name)
        print(f"connector {name}: sl={connector.ab_internal_sl} docs={connector.documentation_file_path}\n")
        for check in checks:
            result = check.run(connector)
            failed += result.status == CheckStatus.FAILED
            print(f"[{tags[result.status]}] {type(check).__name__}: {result.check.name}")
            if result.message:
                print("       " + str(result.message).replace("\n", "\n       "))
    print(f"\n{failed} check(s) failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
