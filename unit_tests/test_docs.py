"""docs/pendo.md documents every spec option and every stream the connector discovers.

`spec` and `discover` run in-process. Discover needs no server: under an HttpMocker with no responses every
request fails, so the metadata-schema lookup fails and accounts/visitors fall back to their base schemas
with a warning; every stream is still discovered.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from airbyte_cdk.models import Type
from airbyte_cdk.test.entrypoint_wrapper import discover
from airbyte_cdk.test.mock_http import HttpMocker

from source_pendo.source import SourcePendo

DOCS = Path(__file__).resolve().parents[1] / "docs" / "pendo.md"
DISCOVER_CONFIG = {"api_key": "00000000-docs-test-key.us", "start_date": "2024-01-01"}


@pytest.fixture(scope="module")
def docs() -> str:
    return DOCS.read_text()


def _code_names(text: str) -> set[str]:
    """Every `name` written in backticks (how the page names options and streams)."""
    return set(re.findall(r"`([^`\s]+)`", text))


def test_every_spec_property_is_documented(docs: str) -> None:
    spec = SourcePendo().spec(None)  # type: ignore[arg-type]  # the declarative spec ignores the logger
    properties = spec.connectionSpecification["properties"]
    assert properties, "the spec declares no properties"
    missing = sorted(set(properties) - _code_names(docs))
    assert not missing, f"spec properties not in docs/pendo.md: {missing}"


@pytest.mark.allow_unmocked_requests  # discover must fall back when every request fails
def test_every_discovered_stream_is_documented(docs: str) -> None:
    with HttpMocker():  # no responses: every request fails, discover falls back to the base schemas
        output = discover(SourcePendo(config=DISCOVER_CONFIG), DISCOVER_CONFIG)
    catalogs = output.get_message_by_types([Type.CATALOG])
    assert len(catalogs) == 1, output.errors
    streams = {stream.name for stream in catalogs[0].catalog.streams}
    assert len(streams) >= 18
    missing = sorted(streams - _code_names(docs))
    assert not missing, f"discovered streams not in docs/pendo.md: {missing}"


def test_docs_list_every_region(docs: str) -> None:
    spec = SourcePendo().spec(None)  # type: ignore[arg-type]
    regions = spec.connectionSpecification["properties"]["region"]["enum"]
    missing = sorted(set(regions) - _code_names(docs))
    assert not missing, f"regions not in docs/pendo.md: {missing}"


# ------------------------------------------------------------------------------------------ Airbyte's template
# The source page follows Airbyte's docs template as both of its checkers read it: the QA checks of
# airbyte-internal-ops (documentation/templates/template.md.j2: CheckDocumentationHeadersOrder and the section
# content checks) and CAT's TestConnectorDocumentation (test_core.py, tests/doc_templates/*.txt). Headings are
# compared exactly, with "Step N: " prefixes removed; headings of the connector's own (options, filters, custom
# streams, limits, ...) may stand only between "Supported Streams" and "IP allow list", the one slot both allow.
NAME = "Pendo"
REQUIRED = [
    "Pendo",
    "Prerequisites",
    "Setup guide",
    f"Set up {NAME}",
    "Supported sync modes",
    "Supported Streams",
    "IP allow list",
    "Changelog",
]
SETUP_HEADINGS = {
    f"Set up {NAME}",
    f"Set up the {NAME} connector in Airbyte",
    "For Airbyte Cloud:",
    "For Airbyte Open Source:",
}
AFTER_ALLOW_LIST = {"Performance considerations", "Data type map", "Tutorials", "Changelog"}
MIGRATIONS = DOCS.parent / "pendo-migrations.md"


def _headings(text: str, steps: bool = False) -> list[tuple[int, str]]:
    """(level, title) of every heading outside code blocks, "Step N: " removed (kept with `steps`)."""
    found, fenced = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        match = None if fenced else re.match(r"^(#{1,6}) +(.*?) *$", line)
        if match:
            title = match.group(2) if steps else re.sub(r"^Step \d+: ", "", match.group(2))
            found.append((len(match.group(1)), title))
    return found


def _section(text: str, title: str) -> str:
    """The lines after the heading `title` (the last one of that title) up to the next heading."""
    lines = text.splitlines()
    starts = [
        i
        for i, line in enumerate(lines)
        if re.sub(r"^#+ +(Step \d+: )?", "", line) == title and line.startswith("#")
    ]
    assert starts, f"no heading {title!r}"
    body = []
    for line in lines[starts[-1] + 1 :]:
        if line.startswith("#"):
            break
        body.append(line)
    return "\n".join(body)


def test_docs_headings_follow_airbytes_template_in_order(docs: str) -> None:
    titles = [title for _, title in _headings(docs)]
    assert [t for t in titles if t in REQUIRED] == REQUIRED, (
        "the template's required headings, once each, in order"
    )
    setup = titles[titles.index("Setup guide") + 1 : titles.index("Supported sync modes")]
    assert set(setup) <= SETUP_HEADINGS, (
        f"headings the template does not know in the setup guide: {set(setup) - SETUP_HEADINGS}"
    )
    assert titles.index("Supported Streams") == titles.index("Supported sync modes") + 1
    after = titles[titles.index("IP allow list") + 1 :]
    assert set(after) <= AFTER_ALLOW_LIST and after[-1] == "Changelog", f"after IP allow list: {after}"


def test_docs_template_texts_are_airbytes(docs: str) -> None:
    assert _section(docs, NAME).startswith(
        "\n<HideInUI>\n\nThis page contains the setup guide and reference information for the "
        f"[{NAME}](https://www.pendo.io) source connector.\n\n</HideInUI>\n"
    )
    assert _section(docs, "Supported sync modes").startswith(
        f"\nThe {NAME} source connector supports the following "
        "[sync modes](https://docs.airbyte.com/cloud/core-concepts/#connection-sync-modes):\n"
    )
    assert _section(docs, "For Airbyte Cloud:").startswith(
        "\n1. [Log into your Airbyte Cloud](https://cloud.airbyte.com/workspaces) account.\n"
        "2. Click Sources and then click + New source/destination.\n"
        f"3. On the Set up the source page, select {NAME} from the Source type dropdown.\n"
        f"4. Enter a name for the {NAME} connector.\n"
    )
    assert _section(docs, "For Airbyte Open Source:").startswith(
        "\n1. Navigate to the Airbyte Open Source dashboard.\n"
    )
    assert _section(docs, "IP allow list").startswith(
        "\nIf you use Airbyte Cloud and your organization restricts access to specific IPs, add the [Airbyte Cloud IP "
        "addresses](https://docs.airbyte.com/platform/operating-airbyte/ip-allowlist) to your allow list.\n"
    )
    assert _section(docs, "Changelog").startswith("\n<details>\n  <summary>Expand to review</summary>\n")


def test_docs_prerequisites_name_every_required_setting_by_its_title(docs: str) -> None:
    spec = SourcePendo().spec(None)  # type: ignore[arg-type]
    connection = spec.connectionSpecification
    prerequisites = _section(docs, "Prerequisites").lower()
    missing = [
        name
        for name in connection["required"]
        if connection["properties"][name]["title"].lower() not in prerequisites
    ]
    assert not missing, f"required settings whose title the Prerequisites do not name: {missing}"


def _slug(title: str) -> str:
    """The anchor a heading gets (GitHub's and Docusaurus's slugger): lower case, punctuation dropped, spaces to -."""
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


@pytest.mark.parametrize("page", [DOCS, MIGRATIONS], ids=lambda p: p.name)
def test_every_link_of_the_docs_resolves(page: Path) -> None:
    """Relative links name files that exist and anchors that exist; absolute links are https."""
    text = page.read_text()
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"^[a-z]+://", target):
            if not target.startswith("https://"):
                broken.append(f"{target}: not https")
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(f"{target}: no file {linked}")
        elif (
            anchor
            and linked.suffix == ".md"
            and anchor not in {_slug(t) for _, t in _headings(linked.read_text(), steps=True)}
        ):
            broken.append(f"{target}: no heading with anchor #{anchor} in {linked.name}")
    assert not broken, broken
