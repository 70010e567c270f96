"""Airbyte's standard (acceptance) tests, in-process, against the Pendo emulator.

`airbyte_cdk.test.standard_tests.SourceTestSuiteBase` reads `acceptance-test-config.yml` at the repo root
and runs, for each config it lists: `spec` (the spec lints, and spec_config.json matches it), `check`
(sample_config.json succeeds, invalid_config.json reports FAILED, and no secret is printed), `discover`
(catalog checks), a full-refresh `read` of configured_catalog.json's streams (every stream must return
records that match its schema) and a `read` with a malformed catalog (must fail).

What the standard suite does NOT cover, and where it is covered instead:
* incremental reads, state messages and resuming from state: the suite only reads full refresh without
  state (it does not collect the `incremental` section);
* future state (integration_tests/abnormal_state.json, year-2100 cursors): never read by the suite;
* record values and counts against ground truth, faults, retries, regions, HOUR period, app_ids.
Our own integration tests (test_entity_streams.py, test_activity_streams.py) and unit tests cover those.

The configs point at a placeholder base_url; this module starts the emulator and rewrites that URL when
a scenario's config is loaded. Image tests (`image_tests` marker, which would build a Docker image) are
skipped unless an image is given: `pytest -p airbyte_cdk.test.standard_tests.pytest_hooks
--connector-image IMG integration_tests/test_acceptance.py`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airbyte_cdk.test.models import ConnectorTestScenario
from airbyte_cdk.test.standard_tests import SourceTestSuiteBase
from airbyte_cdk.test.standard_tests import pytest_hooks as standard_hooks

from integration_tests.pendo_emulator import EmulatorProcess
from source_pendo.source import SourcePendo

PLACEHOLDER_BASE_URL = "http://pendo-emulator.invalid"
REPO_ROOT = Path(__file__).resolve().parents[1]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize `scenario` from acceptance-test-config.yml, unless the CDK's hooks plugin is loaded
    (`-p airbyte_cdk.test.standard_tests.pytest_hooks`) and does it already."""
    if not metafunc.config.pluginmanager.is_registered(standard_hooks):
        standard_hooks.pytest_generate_tests(metafunc)


class TestSourcePendoAcceptance(SourceTestSuiteBase):
    """The CDK's standard source tests, with SourcePendo built from each scenario's config."""

    @classmethod
    def get_connector_root_dir(cls) -> Path:
        return REPO_ROOT

    @classmethod
    def create_connector(cls, scenario: ConnectorTestScenario | None) -> SourcePendo:
        """SourcePendo built the way `source-pendo` builds it: from the config it runs with. The suite reads
        full refresh without state and passes its own catalog on the command line, so none is given here."""
        if scenario is None:  # `spec`
            return SourcePendo()
        config = scenario.get_config_dict(connector_root=cls.get_connector_root_dir(), empty_if_missing=True)
        return SourcePendo(config=config, catalog=None, state=None)

    @pytest.fixture(autouse=True)
    def _image_tests_need_an_image(self, request: pytest.FixtureRequest) -> None:
        """`-m "not image_tests"` by default: an image test runs only with --connector-image."""
        if request.node.get_closest_marker("image_tests") is None:
            return
        image = request.config.getoption("--connector-image", default=None)
        if not image:
            pytest.skip(
                "image test: needs -p airbyte_cdk.test.standard_tests.pytest_hooks --connector-image IMG"
            )

    @pytest.fixture(autouse=True, scope="class")
    @classmethod
    def _configs_on_the_emulator(cls, emulator_now: int) -> Iterator[None]:
        """Start the emulator on the session's pinned clock (the in-process connector reads the matching
        `SOURCE_PENDO_NOW_MS`, see conftest.py); every scenario config whose base_url is the placeholder is
        loaded with the emulator's URL instead (the config the connector is built with, and the file the suite
        passes it)."""
        original = ConnectorTestScenario.get_config_dict

        with EmulatorProcess(scale="tiny", seed=7, now_ms=emulator_now) as emulator:

            def get_config_dict(
                self: ConnectorTestScenario, *, connector_root: Path, empty_if_missing: bool
            ) -> dict[str, Any]:
                config = original(self, connector_root=connector_root, empty_if_missing=empty_if_missing)
                if config.get("base_url") == PLACEHOLDER_BASE_URL:
                    config = {**config, "base_url": emulator.base_url}
                return config

            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(ConnectorTestScenario, "get_config_dict", get_config_dict)
                yield
