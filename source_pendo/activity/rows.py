"""Streaming parse of aggregation bodies: `{"startTime": n, "results": [row, row, ...]}` -> raw rows.

Why not the CDK's decoders: `JsonDecoder` holds the whole body (240 MB for a 25 MB response, measured),
and `JsonItemsDecoder` (ijson) builds a dict per row that we would serialise again. This reader keeps at
most one network chunk plus one partial row in memory, and hands out each row as its own JSON bytes so
the record path can splice them into RECORD lines without a decode/encode round trip.

How: bytes are fed as they arrive. The envelope's keys before `results` are skipped with a small
tokenizer that keeps its place across chunks (`_Envelope`: each byte looked at once); inside the array, a candidate cut is the last `}` followed by `,{` or `]`; the text up to the
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
_PENDING_END = re.compile(rb"\}[ \t\r\n]*(?:,[ \t\r\n]*)?\Z")  # a row end, once the next bytes arrive
_NOT_WS = re.compile(rb"[^ \t\r\n]")
_STRING_STOP = re.compile(rb'["\\]')
_SCALAR_END = re.compile(rb"[,}\] \t\r\n]")
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
        self._envelope = _Envelope()
        self._pending: list[bytes] = []  # chunks of an unfinished row that cannot end it (no `}` or `]`)
        self._no_cut_before = 0  # no candidate row end starts before this index of `_buf`
        self.work = (
            0  # bytes copied into buffers or searched: linear in the body (unit_tests/.../test_row_stream)
        )

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
        if self._state in ("header", "trailer"):
            self._buf = self._envelope.feed(self._buf + chunk if self._buf else chunk, self)
            self.work += len(chunk)
            if self._state == "rows":
                self._no_cut_before = 0
            return None if self._state != "rows" else self._rows_from(b"")
        if self._state == "done":
            self._buf += chunk
            return None
        return self._rows_from(chunk)

    def _rows_from(self, chunk: bytes) -> tuple[bytes, list[Any]] | None:
        # an unfinished row's chunk without `}` or `]` cannot end it: kept aside, joined once one can
        self.work += len(chunk)
        if self._buf and chunk and b"}" not in chunk and b"]" not in chunk:
            self._pending.append(chunk)
            return None
        if self._pending:
            chunk = b"".join([*self._pending, chunk])
            self._pending = []
        if chunk:
            self._buf += chunk
            self.work += len(self._buf)
        block = self._parse_rows()
        if self._state == "trailer":
            self._buf = self._envelope.feed(self._buf, self)
        return block

    def close(self) -> None:
        """Call at end of body: raises TruncatedBody unless the envelope was closed."""
        if self._state != "done":
            unparsed = len(self._buf) + sum(len(c) for c in self._pending)
            raise TruncatedBody(f"aggregation body ended in its {self._state} ({unparsed} bytes unparsed)")
        if self._buf.strip(_WS):
            raise MalformedBody("unexpected bytes after the aggregation envelope")

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
            if buf and buf[:1] != b"{":
                raise MalformedBody(
                    f"an item of `results` is not an object (a row): {_start(buf[:40])}", cut=True
                )
        # where the last call found no row end: not searched again (a long row arriving chunk by chunk)
        low = self._no_cut_before if len(buf) == len(self._buf) and not floor else 0
        self.work += len(buf) - low
        cut = _last_row_end(buf, len(buf), floor, low=low)
        if cut is None:
            self._buf = buf
            brace = buf.rfind(b"}", low)
            self._no_cut_before = brace if brace >= 0 and _PENDING_END.match(buf, brace) else len(buf)
            return None
        self._no_cut_before = 0
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


QUOTED_START = 240


def _start(buf: bytes) -> str:
    """The first bytes of a body, ending a message (callers mask secrets in it, then drop what a cut secret may
    have left: MalformedBody.cut)."""
    return buf[:QUOTED_START].decode("utf-8", errors="replace")


class _Envelope:
    """The aggregation envelope around `results`, read token by token as the bytes arrive: `{`, the keys and
    scalar values before `"results": [` (or `null`), then after the array `,"key": value` pairs and `}`.

    Every byte is looked at once, by a regular expression or `find` (C, not a Python step per byte): its place
    (which token, the key read so far, an escape at a chunk's end) is kept across chunks and the bytes it has read
    are dropped, so whitespace, a long number or a long string before `results` costs linear time (issue 24: 8 MB
    of whitespace before `results` took 63 s when the header was parsed again from its start for every chunk).
    """

    __slots__ = ("escape", "head", "key", "step")

    def __init__(self) -> None:
        self.step = "open"  # open, member, key, colon, value, string, scalar, null
        self.key = b""  # the key being read (its first bytes: only `"results"` matters)
        self.escape = False  # the previous chunk ended in a backslash inside a string
        self.head = b""  # the body's first bytes, for a message

    def feed(self, buf: bytes, reader: AggregationRowReader) -> bytes:
        """Reads the envelope's tokens in `buf`; returns the bytes not consumed (the rows, once `results` opens,
        or the few bytes of an unfinished `null`)."""
        if len(self.head) <= 80:
            self.head += buf[: 81 - len(self.head)]
        pos, n = 0, len(buf)
        while pos < n:
            step = self.step
            if step in ("key", "string"):
                pos = self._string(buf, pos)
                continue
            if step == "scalar":
                match = _SCALAR_END.search(buf, pos)
                if match is None:
                    return b""
                pos, self.step = match.start(), "member"
                continue
            match = _NOT_WS.search(buf, pos)
            if match is None:
                return b""
            pos = match.start()
            ch = buf[pos : pos + 1]
            after = reader._state == "trailer"
            if step == "open":
                if ch != b"{":
                    raise MalformedBody(
                        f"the body does not start with a JSON object: {_start(self.head)}", cut=True
                    )
                pos, self.step = pos + 1, "member"
            elif step == "member":
                if ch == b'"':
                    pos, self.step, self.key = pos + 1, "key", b'"'
                elif ch == b",":
                    pos += 1
                elif ch == b"}":
                    if not after:
                        raise MalformedBody(f"a JSON object without `results`: {_start(self.head)}", cut=True)
                    reader._state = "done"
                    return buf[pos + 1 :]
                else:
                    raise MalformedBody(
                        "malformed aggregation envelope" + (" after `results`" if after else "")
                    )
            elif step == "colon":
                if ch != b":":
                    raise MalformedBody("malformed aggregation envelope")
                pos, self.step = pos + 1, "value"
            elif step == "value":
                if self.key == b'"results"' and not after:
                    if ch == b"[":
                        reader._state, self.step = "rows", "member"
                        return buf[pos + 1 :]
                    if ch != b"n":
                        raise MalformedBody("`results` is not an array")
                    self.step = "null"
                elif ch == b'"':
                    pos, self.step = pos + 1, "string"
                elif ch in (b"{", b"["):
                    raise MalformedBody("nested values in the aggregation envelope are not expected")
                else:
                    self.step = "scalar"
            else:  # null: `"results": null`, no rows (§R-5)
                if n - pos < 4:
                    return buf[pos:]
                if buf[pos : pos + 4] != b"null":
                    raise MalformedBody("`results` is not an array")
                pos, self.step, reader._state = pos + 4, "member", "trailer"
        return b""

    def _string(self, buf: bytes, pos: int) -> int:
        """Reads a string's bytes from `pos` (the opening quote already read); the index after what was read."""
        n = len(buf)
        if self.escape:
            self.escape, pos = False, pos + 1
        while pos < n:
            match = _STRING_STOP.search(buf, pos)
            stop = n if match is None else match.start()
            if self.step == "key" and len(self.key) <= 9:
                self.key += buf[pos : min(stop, pos + 10)]
            if match is None:
                return n
            if buf[stop] == 0x5C:  # a backslash: the next byte is escaped (perhaps in the next chunk)
                if stop + 1 >= n:
                    self.escape = True
                    return n
                if self.step == "key":
                    self.key += b"\\"
                pos = stop + 2
                continue
            if self.step == "key":
                self.key += b'"'
                self.step = "colon"
            else:
                self.step = "member"
            return stop + 1
        return n


def _last_row_end(buf: bytes, end: int, floor: int = 0, tries: int = 64, low: int = 0) -> int | None:
    """Index of the last `}` in [floor, end) that is followed by `,{` or `]` (a candidate row end); `floor` when
    there is none after it (a row end already known, or None when `floor` is 0); -1 after `tries` braces that
    are not candidates (a value full of `}`: the scanner's job). `low`: no candidate starts before it."""
    for _ in range(tries):
        brace = buf.rfind(b"}", max(floor, low), end)
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
