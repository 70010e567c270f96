"""The records of a child stream: each listed parent of the configured apps -> its child objects (flatten.py).

Why an extractor: a listing answers parents (guides, pages, features); the stream's records are their children,
each carrying fields of its parent, and deletions need every child key the listing held before the CDK's
client-side cursor drops the children of unchanged parents (as deletions/listed_ids.py for the parents). The
manifest's `children` parameter names the kind (flatten.CHILDREN); parents of other apps than `app_ids` give no
children (the rule of manifest.yaml's configured_apps_selector, applied to the parent). A saved listing the
stream cannot use fails it on its first page, as for the parents.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

import requests
from airbyte_cdk.sources.declarative.extractors.dpath_extractor import DpathExtractor

from ..deletions.listed_ids import ListedIdsExtractor
from ..deletions.records import LISTINGS
from .flatten import CHILDREN


@dataclass
class ChildRecordsExtractor(ListedIdsExtractor):
    by_app: bool = True

    def __post_init__(self, parameters: Mapping[str, Any]) -> None:
        super().__post_init__(parameters)
        children = str(parameters.get("children") or "")
        if children not in CHILDREN:
            raise ValueError(f"{self._stream}: `children` is one of {sorted(CHILDREN)}, not {children!r}")
        self._flatten = CHILDREN[children]

    def extract_records(self, response: requests.Response) -> Iterable[MutableMapping[Any, Any]]:
        self._fail_if_refused()
        for parent in DpathExtractor.extract_records(self, response):
            if not isinstance(parent, Mapping) or not self._in_configured_apps(parent):
                continue
            LISTINGS.note_parent(self._stream)
            for child in self._flatten(parent):
                LISTINGS.note(self._stream, child)
                yield child
