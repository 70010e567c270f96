"""Streaming parse of aggregation bodies: `{"startTime": n, "results": [row, row, ...]}` -> raw rows.

Why not the CDK's decoders: `JsonDecoder` holds the whole body (240 MB for a 25 MB response, measured),
and `JsonItemsDecoder` (ijson) builds a dict per row that we would serialise again. This reader keeps at
most one network chunk plus one partial row in memory, and hands out each row as its own JSON bytes so
the record path can splice them into RECORD lines without a decode/encode round trip.

How: bytes are fed as they arrive. The envelope's keys before `results` are skipped with a small
tokenizer; inside the array, a candidate cut is the last `}` followed by `,{` or `]`; the text up to the
cut is decoded by msgspec as a list of `Raw` slices, which validates it (a cut inside a string or a
nested object cannot decode, so the reader steps back to an earlier candidate). A body that ends
before the closing `]}` raises `TruncatedBody`: callers never emit a half-parsed row. `"results": null` is
an empty result (BEHAVIOR.md R-5), not a broken body.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

_WS = b" \t\r\n"
_ROW_END = re.compile(rb"\}[ \t\r\n]*(?:,[ \t\r\n]*\{|\])")
_RAW_LIST = msgspec.json.Decoder(list[msgspec.Raw])


class TruncatedBody(ValueError):
    """The body ended before the aggregation envelope was complete."""


class MalformedBody(ValueError):
    """The body is not an aggregation envelope (`{"startTime": .., "results": [..]}`)."""


class AggregationRowReader:
    """Feed body chunks in order; get back the complete rows received so far.

    `feed` returns them as one JSON bytes object per row. `feed_block` returns them as one block: the rows'
    text exactly as sent (`{..},{..}`, separators included) and each row decoded as `item_type` (a msgspec
    Struct naming only the fields the caller needs), for callers that work on whole blocks of rows.
    """

    def __init__(self, item_type: Any = msgspec.Raw) -> None:
        self._buf = b""
        self._state = "header"  # header -> rows -> trailer -> done
        self._decoder = _RAW_LIST if item_type is msgspec.Raw else msgspec.json.Decoder(list[item_type])

    @property
    def done(self) -> bool:
        return self._state == "done"

    def feed(self, chunk: bytes) -> list[bytes]:
        block = self.feed_block(chunk)
        if block is None:
            return []
        text, items = block
        if self._decoder is not _RAW_LIST:
            items = _RAW_LIST.decode(b"[" + text + b"]")
        return [bytes(r) for r in items]

    def feed_block(self, chunk: bytes) -> tuple[bytes, list[Any]] | None:
        self._buf += chunk
        if self._state == "header":
            self._parse_header()
        block = None
        if self._state == "rows":
            block = self._parse_rows()
        if self._state == "trailer":
            self._parse_trailer()
        return block

    def close(self) -> None:
        """Call at end of body: raises TruncatedBody unless the envelope was closed."""
        if self._state != "done":
            raise TruncatedBody(
                f"aggregation body ended in its {self._state} ({len(self._buf)} bytes unparsed)"
            )
        if self._buf.strip(_WS):
            raise MalformedBody("unexpected bytes after the aggregation envelope")

    # ------------------------------------------------------------------ envelope
    def _parse_header(self) -> None:
        """Skip `{` and any keys before `"results": [`; wait for more bytes when a token is incomplete."""
        buf, pos = self._buf, 0
        pos = _skip_ws(buf, pos)
        if pos >= len(buf):
            return
        if buf[pos : pos + 1] != b"{":
            raise MalformedBody(f"aggregation body does not start with an object: {buf[:40]!r}")
        pos += 1
        while True:
            pos = _skip_ws(buf, pos)
            if pos < len(buf) and buf[pos : pos + 1] == b",":
                pos = _skip_ws(buf, pos + 1)
            if pos >= len(buf):
                return
            if buf[pos : pos + 1] == b"}":
                raise MalformedBody("aggregation body has no `results` array")
            key_end = _string_end(buf, pos)
            if key_end is None:
                return
            key = buf[pos:key_end]
            pos = _skip_ws(buf, key_end)
            if pos >= len(buf):
                return
            if buf[pos : pos + 1] != b":":
                raise MalformedBody("malformed aggregation envelope")
            pos = _skip_ws(buf, pos + 1)
            if pos >= len(buf):
                return
            if key == b'"results"':
                if buf[pos : pos + 1] == b"n":  # `"results": null`: no rows (§R-5)
                    if len(buf) < pos + 4:
                        return
                    if buf[pos : pos + 4] != b"null":
                        raise MalformedBody("`results` is not an array")
                    self._buf = buf[pos + 4 :]
                    self._state = "trailer"
                    return
                if buf[pos : pos + 1] != b"[":
                    raise MalformedBody("`results` is not an array")
                self._buf = buf[pos + 1 :]
                self._state = "rows"
                return
            value_end = _scalar_end(buf, pos)
            if value_end is None:
                return
            pos = value_end

    def _parse_rows(self) -> tuple[bytes, list[Any]] | None:
        buf = self._buf.lstrip(_WS)
        if buf[:1] == b"]":
            self._buf = buf[1:]
            self._state = "trailer"
            return None
        block = None
        search_end = len(buf)
        while True:
            cut = _last_row_end(buf, search_end)
            if cut is None:
                break
            text = buf[: cut + 1]
            try:
                items = self._decoder.decode(b"[" + text + b"]")  # decoding validates the whole text
            except msgspec.ValidationError as error:
                raise MalformedBody(
                    f"an aggregation row does not have the expected shape: {error}"
                ) from error
            except msgspec.DecodeError:
                search_end = cut  # the `}` was inside a string or a nested value: try an earlier one
                continue
            block = (text, items)
            rest = buf[cut + 1 :].lstrip(_WS)
            if rest[:1] == b",":
                rest = rest[1:]
            elif rest[:1] == b"]":
                self._buf = rest[1:]
                self._state = "trailer"
                return block
            buf = rest
            break
        self._buf = buf
        return block

    def _parse_trailer(self) -> None:
        """After `]`: optional `,"key": scalar` pairs, then the closing `}`."""
        buf, pos = self._buf, 0
        while True:
            pos = _skip_ws(buf, pos)
            if pos >= len(buf):
                self._buf = buf[pos:]
                return
            ch = buf[pos : pos + 1]
            if ch == b"}":
                self._buf = buf[pos + 1 :]
                self._state = "done"
                return
            if ch != b",":
                raise MalformedBody("malformed aggregation envelope after `results`")
            pos = _skip_ws(buf, pos + 1)
            key_end = _string_end(buf, pos)
            if key_end is None:
                self._buf = buf[pos - 1 :] if pos else buf
                return
            colon = _skip_ws(buf, key_end)
            if colon >= len(buf):
                self._buf = buf[pos - 1 :]
                return
            value_end = _scalar_end(buf, _skip_ws(buf, colon + 1))
            if value_end is None:
                self._buf = buf[pos - 1 :]
                return
            pos = value_end


def _skip_ws(buf: bytes, pos: int) -> int:
    n = len(buf)
    while pos < n and buf[pos] in _WS:
        pos += 1
    return pos


def _string_end(buf: bytes, pos: int) -> int | None:
    """End (exclusive) of the JSON string starting at `pos`, or None if it is not complete yet."""
    if buf[pos : pos + 1] != b'"':
        raise MalformedBody("expected a string in the aggregation envelope")
    i = pos + 1
    while True:
        j = buf.find(b'"', i)
        if j < 0:
            return None
        backslashes = 0
        k = j - 1
        while k > pos and buf[k] == 0x5C:
            backslashes += 1
            k -= 1
        if backslashes % 2 == 0:
            return j + 1
        i = j + 1


def _scalar_end(buf: bytes, pos: int) -> int | None:
    """End of a scalar value (number, string, true/false/null) at `pos`; None if incomplete."""
    if pos >= len(buf):
        return None
    if buf[pos : pos + 1] == b'"':
        return _string_end(buf, pos)
    if buf[pos : pos + 1] in (b"{", b"["):
        raise MalformedBody("nested values in the aggregation envelope are not expected")
    i = pos
    while i < len(buf) and buf[i] not in b",}] \t\r\n":
        i += 1
    return i if i < len(buf) else None


def _last_row_end(buf: bytes, end: int) -> int | None:
    """Index of the last `}` before `end` that is followed by `,{` or `]` (a candidate row end)."""
    while True:
        brace = buf.rfind(b"}", 0, end)
        if brace < 0:
            return None
        if _ROW_END.match(buf, brace):
            return brace
        end = brace
