"""`spec` without importing the CDK: the manifest's spec section as the SPEC message the CDK would print; and the
names of the manifest's streams, which a custom aggregation stream may not take (settings/custom_aggregations.py).

Why: importing airbyte-cdk takes seconds (serpyco-rs builds its serialisers from the protocol models'
source code, pydantic builds the declarative schema), and the platform runs `spec` often: every time a
user opens the source's settings. unit_tests/test_run.py proves this message equals the CDK's.
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

import yaml

MANIFEST_PATH = Path(__file__).parent.parent / "manifest.yaml"
# ConnectorSpecification fields, and the manifest's names for them (declarative Spec component)
_SPEC_FIELDS = (
    ("documentation_url", "documentationUrl"),
    ("connection_specification", "connectionSpecification"),
    ("advanced_auth", "advanced_auth"),
)


@functools.cache
def _manifest() -> dict[str, Any]:
    """manifest.yaml as YAML, read once per process (callers copy what they change)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    manifest: dict[str, Any] = yaml.load(MANIFEST_PATH.read_text(), Loader=loader)
    return manifest


def built_in_streams() -> frozenset[str]:
    """The manifest's streams: each `streams` entry refers to `#/definitions/streams/<name>`."""
    return frozenset(str(ref["$ref"]).rsplit("/", 1)[1] for ref in _manifest()["streams"])


def spec_message() -> dict[str, Any]:
    spec = copy.deepcopy(_manifest()["spec"])
    message = {name: spec[key] for key, name in _SPEC_FIELDS if spec.get(key) is not None}
    message.update(
        supportsNormalization=False, supportsDBT=False
    )  # ConnectorSpecification's defaults, as the CDK prints them
    return {"type": "SPEC", "spec": message}


def print_spec() -> None:
    print(json.dumps(spec_message(), separators=(",", ":")), flush=True)
