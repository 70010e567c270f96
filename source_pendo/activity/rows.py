"""Streaming parse of aggregation bodies: `{"startTime": n, "results": [row, row, ...]}` -> raw rows.

Why not the CDK's decoders: `JsonDecoder` holds the whole body (240 MB for a 25 MB response, measured),
and `JsonItemsDecoder` (ijson) builds a dict per row that we would serialise again. This reader keeps at
most one network chunk plus one partial row in memory, and hands out each row as its own JSON bytes so
the record path can splice them into RECORD lines without a decode/encode round trip.

How: bytes are fed as they arrive. The envelope's keys before `results` are skipped with a small
tokenizer; inside the array, a candidate cut is the last `}` followed by `,{` or `]`; the text up to the
cut is decoded by msgspec as a list of `Raw` slices, which validates it (a cut inside a string or a
nested object cannot decode). A body that ends before the closing `]}` raises `TruncatedBody`: callers never
emit a half-parsed row. `"results": null` is an empty result (BEHAVIOR.md R-5), not a broken body.

Linear in the body size, whatever the values hold: only the last candidate is tried (one decode). When it is
false (a `},{` inside a string, e.g. a 1 MB poll answer or user agent; or inside a nested array), `_RowScanner`
finds the real row ends by skipping strings and counting brackets from where it stopped, and keeps its place
across chunks while a row is incomplete, so no byte is scanned twice and no text is decoded twice (stepping back
candidate by candidate, each decode over the whole buffer, took a minute for one such 1 MB value). A value nested
deeper than the decoder's recursion limit raises `TooDeep` (never a RecursionError).
"""

from __future__ import annotations

import re
import sys
from typing import Any

import msgspec

_WS = b" \t\r\n"
_ROW_END = re.compile(rb"\}[ \t\r\n]*(?:,[ \t\r\n]*\{|\])")
_RAW_LIST = msgspec.json.Decoder(list[msgspec.Raw])


class TruncatedBody(ValueError):
    """The body ended before the aggregation envelope was complete."""


class MalformedBody(ValueError):
    """The body is not an aggregation envelope (`{"startTime": .., "results": [..]}`).

    `cut` says the message ends with the start of a longer body, cut here before any secret could be masked:
    whoever quotes it masks first, then drops the characters a cut secret may have left (http/messages.quoted)."""

    def __init__(self, message: str, cut: bool = False) -> None:
        super().__init__(message)
        self.cut = cut


class TooDeep(ValueError):
    """A row holds a value nested deeper than the JSON decoder's recursion limit."""


class AggregationRowReader:
    """Feed body chunks in order; get back the complete rows received so far.

    `feed` returns them as one JSON bytes object per row. `feed_block` returns them as one block: the rows'
    text exactly as sent (`{..},{..}`, separators included) and each row decoded as `item_type` (a msgspec
    Struct naming only the fields the caller needs), for callers that work on whole blocks of rows.
    """

    def __init__(self, item_type: Any = msgspec.Raw) -> None:
        self._buf = b""
        self._scan: _RowScanner | None = None  # set while a false candidate made us scan a row's text
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
            raise MalformedBody(f"the body does not start with a JSON object: {_start(buf)}", cut=True)
        pos += 1
        while True:
            pos = _skip_ws(buf, pos)
            if pos < len(buf) and buf[pos : pos + 1] == b",":
                pos = _skip_ws(buf, pos + 1)
            if pos >= len(buf):
                return
            if buf[pos : pos + 1] == b"}":
                raise MalformedBody(f"a JSON object without `results`: {_start(buf)}", cut=True)
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
        buf = self._buf
        floor = 0  # where the quick guess may look for the last row end
        if self._scan is not None:  # a row begun in an earlier chunk holds a false candidate: scan to its end
            first = self._scan.advance(buf, first_only=True)
            if first is None:
                return None
            self._scan, floor = None, first
        else:
            buf = buf.lstrip(_WS)
            if buf[:1] == b",":  # the scanner cut at a row end that was the last byte of a chunk
                buf = buf[1:].lstrip(_WS)
            if buf[:1] == b"]":
                self._buf = buf[1:]
                self._state = "trailer"
                return None
        cut = _last_row_end(buf, len(buf), floor)
        if cut is None:
            self._buf = buf
            return None
        block = self._decode(buf[: cut + 1]) if cut >= 0 else None
        if block is None:  # the guess was false: the real row ends, scanned from the last one known
            self._scan = _RowScanner(floor + 1 if floor else 0)
            cut = self._scan.advance(buf)
            if cut is None and floor:
                cut = floor
            if cut is None:
                self._buf = buf
                return None
            block = self._decode(buf[: cut + 1])
            if block is None:
                raise MalformedBody("an aggregation row is not valid JSON")
        rest = buf[cut + 1 :].lstrip(_WS)
        if rest[:1] == b",":
            rest = rest[1:]
        elif rest[:1] == b"]":
            self._buf = rest[1:]
            self._state = "trailer"
            self._scan = None
            return block
        if self._scan is not None:
            self._scan = self._scan.shifted(len(buf) - len(rest))
        self._buf = rest
        return block

    def _decode(self, text: bytes) -> tuple[bytes, list[Any]] | None:
        """The rows of `text` (complete rows and their separators) and the text to emit for them; None when
        `text` is not whole rows.

        The text to emit is `text` itself unless it holds a raw line break (a pretty-printed or line-wrapped
        answer: outside strings, where JSON allows whitespace; a string cannot hold one raw) or an escaped lone
        surrogate (`"\\ud800"`, valid JSON that no UTF-8 output can carry). Then it is made compact and the
        surrogate `\\ufffd`: the record path copies this text into RECORD lines, and Airbyte reads one message
        per stdout line. Both checks are a byte search over the block, so compact rows stay on the fast path.
        """
        try:
            try:
                items = list(self._decoder.decode(b"[" + text + b"]"))  # decoding validates the whole text
            except msgspec.DecodeError:
                if b"\\u" not in text or _LONE_SURROGATE.search(text) is None:
                    return None
                text = without_lone_surrogates(text)
                items = list(self._decoder.decode(b"[" + text + b"]"))
            if b"\n" in text or b"\r" in text:
                text = msgspec.json.format(b"[" + text + b"]", indent=-1)[1:-1]
                items = list(self._decoder.decode(b"[" + text + b"]"))
            return text, items
        except msgspec.ValidationError as error:
            raise MalformedBody(f"an aggregation row does not have the expected shape: {error}") from error
        except msgspec.DecodeError:
            return None
        except RecursionError:
            raise TooDeep(  # not chained: the user's error names the row's depth, not the decoder's recursion
                f"an aggregation row holds a value nested deeper than {sys.getrecursionlimit()} levels"
            ) from None

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


QUOTED_START = 240


def _start(buf: bytes) -> str:
    """The first bytes of a body, ending a message (callers mask secrets in it, then drop what a cut secret may
    have left: MalformedBody.cut)."""
    return buf[:QUOTED_START].decode("utf-8", errors="replace")


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


def _last_row_end(buf: bytes, end: int, floor: int = 0, tries: int = 64) -> int | None:
    """Index of the last `}` in [floor, end) that is followed by `,{` or `]` (a candidate row end); `floor` when
    there is none after it (a row end already known, or None when `floor` is 0); -1 after `tries` braces that
    are not candidates (a value full of `}`: the scanner's job)."""
    for _ in range(tries):
        brace = buf.rfind(b"}", floor, end)
        if brace < 0 or (brace <= floor and floor):
            return floor or None
        if _ROW_END.match(buf, brace):
            return brace
        end = brace
    return -1


_SCAN_TOKEN = re.compile(rb'["{}\[\]]')

# `\\uD800`..`\\uDFFF` not preceded by an escaping backslash; a high one with its low one is a valid pair, kept.
_LONE_SURROGATE = re.compile(
    rb"(?<!\\)((?:\\\\)*)\\u(?:([dD][89abAB][0-9a-fA-F]{2})(\\u[dD][c-fC-F][0-9a-fA-F]{2})?|[dD][c-fC-F][0-9a-fA-F]{2})"
)


def without_lone_surrogates(text: bytes) -> bytes:
    """`text` with every escaped lone surrogate written `\\ufffd` (U+FFFD, the replacement character)."""

    def replace(match: re.Match[bytes]) -> bytes:
        if match.group(2) is not None and match.group(3) is not None:
            return match.group(0)
        return match.group(1) + b"\\ufffd"

    return _LONE_SURROGATE.sub(replace, text)


class _RowScanner:
    """Row ends inside the `results` array, found by skipping strings and counting brackets.

    `advance(buf)` scans `buf` from where the previous call stopped (`pos`) to its end and returns the index of
    the last `}` that closes a row, or None. Its place (`pos`, `depth`, inside a string or not) stays valid as
    the buffer grows; `shifted(n)` moves it when the first `n` bytes are cut off. Used only after the reader's
    one-candidate guess was false: a Python step per string and bracket, never per byte.
    """

    __slots__ = ("depth", "in_string", "pos")

    def __init__(self, pos: int = 0, depth: int = 0, in_string: bool = False) -> None:
        self.pos, self.depth, self.in_string = pos, depth, in_string

    def shifted(self, n: int) -> _RowScanner | None:
        """The same place after the first `n` bytes were cut; None when it is between rows (quick path again)."""
        if self.depth == 0 and not self.in_string:
            return None
        return _RowScanner(self.pos - n, self.depth, self.in_string)

    def advance(self, buf: bytes, first_only: bool = False) -> int | None:
        """The last row end in `buf` from where the scan stopped (the first one with `first_only`), or None."""
        pos, depth, in_string, last = self.pos, self.depth, self.in_string, None
        n = len(buf)
        while pos < n:
            if in_string:
                quote = buf.find(b'"', pos)
                if quote < 0:
                    pos = n
                    break
                k = quote - 1
                while k >= 0 and buf[k] == 0x5C:  # backslashes before the quote: an odd number escapes it
                    k -= 1
                pos = quote + 1
                in_string = (quote - 1 - k) % 2 == 1
                continue
            match = _SCAN_TOKEN.search(buf, pos)
            if match is None:
                pos = n
                break
            i = match.start()
            pos = i + 1
            ch = buf[i]
            if ch == 0x22:  # "
                in_string = True
            elif ch in b"{[":
                depth += 1
            else:
                depth -= 1
                if depth == 0 and ch == 0x7D:  # }
                    last = i
                    if first_only:
                        break
                elif depth < 0:  # the `]` that closes `results`: the rows end here
                    depth = 0
                    pos = i
                    break
        self.pos, self.depth, self.in_string = pos, depth, in_string
        return last
