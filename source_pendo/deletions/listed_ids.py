"""Notes the id of every object a catalogue listing holds, for deletions (source_pendo/deletions/records.py).

Why an extractor: for an incremental catalogue stream the CDK's client-side cursor drops the objects not changed
since the last sync before any record filter or transformation sees them, and noticing a deletion needs the
whole listing. The extractor sees every object of every page first; it yields them unchanged.
`by_app`: only objects of the configured apps are noted (the rule of manifest.yaml's configured_apps_selector:
`appId` or any of `appIds` in `app_ids`; every object when `app_ids` is empty).
A saved listing the stream cannot use (records.py, `Listings.refuse`) fails the stream here, on its first page.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

import requests
from airbyte_cdk.sources.declarative.extractors.dpath_extractor import DpathExtractor

from .records import LISTINGS


@dataclass
class ListedIdsExtractor(DpathExtractor):
    by_app: bool = False

    def __post_init__(self, parameters: Mapping[str, Any]) -> None:
        super().__post_init__(parameters)
        self._stream = str(parameters.get("name") or "")
        apps = self.config.get("app_ids") or [] if self.by_app else []
        self._apps = {int(a) for a in apps}

    def extract_records(self, response: requests.Response) -> Iterable[MutableMapping[Any, Any]]:
        self._fail_if_refused()
        for record in super().extract_records(response):
            if isinstance(record, Mapping) and self._in_configured_apps(record):
                LISTINGS.note(self._stream, record)
            yield record

    def _fail_if_refused(self) -> None:
        refused = LISTINGS.refused(self._stream)  # the saved listing cannot be used: this stream fails
        if refused is not None:
            raise refused

    def _in_configured_apps(self, record: Mapping[str, Any]) -> bool:
        if not self._apps:
            return True
        apps = [record.get("appId"), *(record.get("appIds") or [])]
        return any(a is not None and int(a) in self._apps for a in apps)
