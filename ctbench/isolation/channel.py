"""The pipe from a case's worker to the runner: framed messages, each behind the case's secret.

A frame is a header line ``SECRET KIND LENGTH\\n`` and ``LENGTH`` bytes of body. Kinds:

- ``mark``: a small JSON object ``{"mark": NAME, ...}`` the engine sends as its measured windows start and end
  (``ctbench.api.measure``); the runner times its arrival on its own clock (``ctbench.isolation.outside``).
- ``record``: the case's record, JSON; one per case.

The runner's ``Reader`` refuses the whole channel at the first frame that is not well formed or lacks the secret
(whatever came before it stands, nothing after it is read), and refuses a second record; it never holds more
than one record's bytes (``max_record`` and a header) in memory.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

HEADER_MAX = 128  # bytes of a header line: a 32-character secret, a kind, a length
MARK_MAX = 4096  # bytes of a mark's body
NO_SECRET = "a record without the case's secret was refused"


class Writer:
    """The worker's end: ``mark`` and then one ``record``, each written and flushed as one frame."""

    def __init__(self, fd: int, secret: str):
        self.file, self.secret = os.fdopen(fd, "wb"), secret.encode()

    def _send(self, kind: bytes, body: bytes) -> None:
        self.file.write(b"%s %s %d\n" % (self.secret, kind, len(body)) + body)
        self.file.flush()

    def mark(self, name: str, info: dict[str, Any]) -> None:
        """Announce a mark; a runner that is gone is not the case's failure (the worker dies with it)."""
        try:
            self._send(b"mark", json.dumps({**info, "mark": name}).encode())
        except (OSError, ValueError):
            pass

    def record(self, body: bytes) -> None:
        """Send the record and close the channel."""
        with self.file:
            self._send(b"record", body)


class Reader:
    """The runner's end, fed chunks as they arrive: calls ``on_mark`` for each mark in order, keeps the record's
    body, and says in ``problem`` why the channel was refused (empty if it was not)."""

    def __init__(self, secret: str, on_mark: Callable[[dict[str, Any]], None], max_record: int):
        self.secret, self.on_mark, self.max_record = secret.encode(), on_mark, max_record
        self.buffer = bytearray()
        self.record: bytes | None = None
        self.problem = ""

    def feed(self, chunk: bytes) -> None:
        if self.problem:
            return  # refused: the rest is drained, not read
        self.buffer += chunk
        while self.buffer and not self.problem:
            if not self._frame():
                return

    def _frame(self) -> bool:
        """Take one complete frame off the buffer; False when it is not all there yet (or the channel is refused)."""
        end = self.buffer.find(b"\n", 0, HEADER_MAX)
        if end < 0:
            if len(self.buffer) >= HEADER_MAX:
                self.problem = NO_SECRET
            return False
        fields = bytes(self.buffer[:end]).split(b" ")
        if len(fields) != 3 or fields[0] != self.secret:
            self.problem = NO_SECRET
            return False
        kind, size = fields[1], fields[2]
        limit = {b"mark": MARK_MAX, b"record": self.max_record}.get(kind)
        if limit is None or not size.isdigit():
            self.problem = "the case sent a message the runner does not know"
            return False
        if int(size) > limit:
            self.problem = f"the record that came back exceeds {self.max_record} bytes" if kind == b"record" else (
                f"a mark of more than {MARK_MAX} bytes was refused")  # fmt: skip
            return False
        start, stop = end + 1, end + 1 + int(size)
        if len(self.buffer) < stop:
            return False
        body = bytes(self.buffer[start:stop])
        del self.buffer[:stop]
        if kind == b"record":
            if self.record is not None:
                self.problem = "more than one record came back"
            self.record = body
        else:
            try:
                mark = json.loads(body)
            except ValueError:
                mark = None
            if not isinstance(mark, dict) or not isinstance(mark.get("mark"), str):
                self.problem = "a malformed mark was refused"
                return False
            self.on_mark(mark)
        return True

    def finish(self) -> None:
        """The channel closed: a frame cut short refuses it."""
        if self.buffer and not self.problem:
            self.problem = "the record that came back was cut short"
