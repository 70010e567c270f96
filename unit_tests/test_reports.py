"""report_results: one record per row of each report, unexportable (404) reports skipped. The reports and
segments lists are read in test_catalogue_streams.py."""

from __future__ import annotations

from unittest import TestCase

import pytest
from airbyte_cdk.models import FailureType
from airbyte_cdk.test.mock_http import HttpMocker
from builders import ConfigBuilder, get_request, json_response, payload, read_stream, text_response

_ACTIVE = "aJ0EPRi4vs3gNnYh3yIj4g3MBo0"
_PATH_REPORT = "p4t8Xq0wRz7yKd2sVb5nLm1cJh6"


def _mock_reports(http_mocker: HttpMocker) -> None:
    http_mocker.get(get_request("report"), json_response(payload("reports")))


class ReportResultsTest(TestCase):
    @HttpMocker()
    def test_report_results_one_record_per_row_with_its_report_id(self, http_mocker: HttpMocker) -> None:
        _mock_reports(http_mocker)
        http_mocker.get(
            get_request(f"report/{_ACTIVE}/results.json"), json_response(payload("report_results"))
        )
        http_mocker.get(get_request(f"report/{_PATH_REPORT}/results.json"), json_response([]))

        output = read_stream("report_results", ConfigBuilder().build())

        assert [r.record.data for r in output.records] == [
            {**row, "reportId": _ACTIVE} for row in payload("report_results")
        ]

    @HttpMocker()
    def test_report_results_skip_a_404_report_with_a_warning_and_read_the_others(
        self, http_mocker: HttpMocker
    ) -> None:
        _mock_reports(http_mocker)
        http_mocker.get(
            get_request(f"report/{_ACTIVE}/results.json"), json_response(payload("report_results"))
        )
        http_mocker.get(
            get_request(f"report/{_PATH_REPORT}/results.json"), text_response("404 page not found\n", 404)
        )

        output = read_stream("report_results", ConfigBuilder().build())

        assert len(output.records) == 2
        assert not output.errors
        warnings = [log.log.message for log in output.logs if log.log.level.value == "WARN"]
        assert any(f"Skipping report {_PATH_REPORT}" in message for message in warnings), warnings

    @HttpMocker()
    def test_report_results_do_not_turn_a_json_404_body_into_a_record(self, http_mocker: HttpMocker) -> None:
        _mock_reports(http_mocker)
        http_mocker.get(get_request(f"report/{_ACTIVE}/results.json"), json_response([]))
        http_mocker.get(
            get_request(f"report/{_PATH_REPORT}/results.json"), json_response({"message": "not found"}, 404)
        )

        output = read_stream("report_results", ConfigBuilder().build())

        assert output.records == []
        assert not output.errors


@pytest.mark.parametrize(
    "answer",
    [
        text_response("Bad Request", 400),
        text_response("Payment Required", 402),
        json_response({"overall": {}, "fields": {"reportId": "report type cannot be exported"}}, 422),
        json_response({"id": _PATH_REPORT, "message": "This report type cannot be exported"}),
    ],
    ids=["400", "402", "422", "200-object"],
)
def test_report_results_skip_an_unexportable_report_with_one_warning(http_mocker: HttpMocker, answer) -> None:
    # Pendo may answer an unexportable report with any 4xx or a 200 that is not rows
    _mock_reports(http_mocker)
    http_mocker.get(get_request(f"report/{_ACTIVE}/results.json"), json_response(payload("report_results")))
    http_mocker.get(get_request(f"report/{_PATH_REPORT}/results.json"), answer)

    output = read_stream("report_results", ConfigBuilder().build())

    assert [r.record.data["reportId"] for r in output.records] == [_ACTIVE, _ACTIVE]
    assert not output.errors
    warnings = [log.log.message for log in output.logs if log.log.level.value == "WARN"]
    assert len(warnings) == 1 and warnings[0].startswith(f"Skipping report {_PATH_REPORT}: "), warnings


def test_report_results_403_is_not_skipped(http_mocker: HttpMocker) -> None:
    _mock_reports(http_mocker)
    http_mocker.get(get_request(f"report/{_ACTIVE}/results.json"), json_response(payload("report_results")))
    http_mocker.get(get_request(f"report/{_PATH_REPORT}/results.json"), text_response("Forbidden", 403))

    output = read_stream("report_results", ConfigBuilder().build(), expecting_exception=True)

    assert output.errors[0].trace.error.failure_type == FailureType.config_error
