"""Big emails without holding them in memory: the raw message on disk, large parts decoded to disk.

:class:`RawMessage` is a received message as a seekable binary file (a
``SpooledTemporaryFile``: in memory up to :data:`IN_MEMORY` bytes, on disk beyond) with its size
and SHA-256, computed as it was written. The SMTP receiver writes DATA into one line by line;
IMAP's bytes are wrapped in one without a copy.

:func:`split` reads such a file once, line by line, and returns a *skeleton*: the same MIME tree
with the body of every large non-text leaf replaced by a marker header, the body itself decoded
(base64, quoted-printable or as-is) into a temporary file as it is read. The stdlib parser then
parses the small skeleton (:func:`frontdesk.channels.email.parse.parse` with ``spooled=``), so a
20 MB attachment is never a 27 MB string, a 20 MB bytes object and a tree of line objects at once.

The walk mirrors the stdlib's reading of MIME (the header block; ``multipart/*`` with a boundary:
preamble, parts between ``--boundary`` lines — an enclosing boundary also ends a part —, closing
``--boundary--``, epilogue; everything else is a leaf whose last line ending belongs to the
boundary after it). It is total: whatever it does not recognise stays in the skeleton, bounded by
the limits below (text bodies, preambles and header blocks are cut, with a defect recorded).
"""

from __future__ import annotations

import binascii
import contextlib
import hashlib
import io
import os
import secrets
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import policy
from email.parser import BytesHeaderParser
from typing import IO

IN_MEMORY = 1024 * 1024  # a spooled file stays in memory up to this size
SPLIT_ABOVE = 1024 * 1024  # smaller messages are parsed whole, as before
SPOOL_PART_ABOVE = 64 * 1024  # a non-text leaf body larger than this is decoded to disk
TEXT_KEEP = 1024 * 1024  # a text body shown to agents is kept up to this much (encoded)
SKELETON_BUDGET = 4 * 1024 * 1024  # past this, every further leaf body is spooled or cut
HEADER_KEEP = 256 * 1024  # a header block is kept up to this much
OTHER_KEEP = 64 * 1024  # preamble and epilogue
LINE_CHUNK = 64 * 1024  # the longest piece read at once
MAX_DEPTH = 20
MAX_PARTS = 500
MARKER = "X-Frontdesk-Spooled"
_COPY_CHUNK = 1024 * 1024
_B64_KEEP = bytes(range(256)).translate(None, b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")


def new_spool(dir: str | None = None) -> IO[bytes]:
    return tempfile.SpooledTemporaryFile(max_size=IN_MEMORY, mode="w+b", dir=dir)


class RawMessage:
    """A received message as a binary file, with its size and SHA-256. Closing it frees it."""

    def __init__(self, file: IO[bytes], size: int, sha256: str) -> None:
        self.file = file
        self.size = size
        self.sha256 = sha256

    @classmethod
    def from_bytes(cls, raw: bytes) -> RawMessage:
        return cls(io.BytesIO(raw), len(raw), hashlib.sha256(raw).hexdigest())

    def read_all(self) -> bytes:
        self.file.seek(0)
        return self.file.read()

    def head(self, limit: int) -> bytes:
        self.file.seek(0)
        return self.file.read(limit)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.file.close()


class SpoolWriter:
    """Collects a message as it arrives (the SMTP DATA lines), hashing it on the way."""

    def __init__(self, dir: str | None = None) -> None:
        self.file = new_spool(dir)
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        self.file.write(data)
        self._hash.update(data)
        self.size += len(data)

    def finish(self) -> RawMessage:
        self.file.flush()
        self.file.seek(0)
        return RawMessage(self.file, self.size, self._hash.hexdigest())

    def discard(self) -> None:
        with contextlib.suppress(Exception):
            self.file.close()


@dataclass
class SpooledPart:
    """A decoded part body on disk (or in memory while small)."""

    file: IO[bytes]
    size: int
    sha256: str

    def read_all(self) -> bytes:
        self.file.seek(0)
        return self.file.read()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.file.close()


@dataclass
class Split:
    skeleton: bytes
    parts: dict[str, SpooledPart] = field(default_factory=dict)
    defects: list[str] = field(default_factory=list)

    def close(self) -> None:
        for part in self.parts.values():
            part.close()


# -- reading lines --------------------------------------------------------------------------------


class _Lines:
    """Lines of a binary file (with their endings); a line longer than LINE_CHUNK comes in pieces."""

    def __init__(self, fp: IO[bytes]) -> None:
        self.fp = fp
        self.pushed: bytes | None = None
        self.at_start = True  # the next piece begins a line

    def next(self) -> tuple[bytes, bool]:
        """(piece, starts_a_line); ``b""`` at the end."""
        if self.pushed is not None:
            line, self.pushed = self.pushed, None
            return line, True
        start = self.at_start
        line = self.fp.readline(LINE_CHUNK)
        self.at_start = line.endswith(b"\n")
        return line, start

    def push(self, line: bytes) -> None:
        self.pushed = line


def _strip_eol(line: bytes) -> bytes:
    if line.endswith(b"\r\n"):
        return line[:-2]
    if line.endswith(b"\n") or line.endswith(b"\r"):
        return line[:-1]
    return line


class _Boundaries:
    """The boundaries of the enclosing multiparts (innermost last)."""

    def __init__(self) -> None:
        self.stack: list[bytes] = []

    def match(self, line: bytes, starts: bool) -> tuple[int, bool] | None:
        """(index in the stack, closing?) when ``line`` is a delimiter of an enclosing multipart."""
        if not starts or not line.startswith(b"--") or not self.stack:
            return None
        text = _strip_eol(line).rstrip(b" \t")
        for i in range(len(self.stack) - 1, -1, -1):
            b = self.stack[i]
            if text == b"--" + b:
                return i, False
            if text == b"--" + b + b"--":
                return i, True
        return None


# -- the walk -------------------------------------------------------------------------------------


class _Splitter:
    def __init__(self, fp: IO[bytes], spool_dir: str | None) -> None:
        self.lines = _Lines(fp)
        self.bounds = _Boundaries()
        self.out = io.BytesIO()
        self.parts: dict[str, SpooledPart] = {}
        self.defects: list[str] = []
        self.token = secrets.token_hex(8)
        self.spool_dir = spool_dir
        self.count = 0

    def defect(self, text: str) -> None:
        if text not in self.defects and len(self.defects) < 20:
            self.defects.append(text)

    def run(self) -> Split:
        self.entity(0)
        # Anything after the top-level entity (only after a closing boundary of an unknown tree).
        self.copy_other()
        return Split(self.out.getvalue(), self.parts, self.defects)

    # The header block: lines up to the blank line (or an enclosing boundary, or the end).
    def headers(self) -> list[bytes]:
        kept: list[bytes] = []
        size = 0
        while True:
            line, starts = self.lines.next()
            if not line:
                return kept
            if self.bounds.match(line, starts) is not None:
                self.lines.push(line)
                return kept
            if starts and line in (b"\r\n", b"\n"):
                return kept
            size += len(line)
            if size <= HEADER_KEEP:
                kept.append(line)
            else:
                self.defect("header block cut (the raw message is kept)")

    def entity(self, depth: int) -> None:
        """One MIME entity: its headers, then its body (a multipart's parts, or a leaf)."""
        self.count += 1
        header_lines = self.headers()
        block = b"".join(header_lines)
        try:
            info = BytesHeaderParser(policy=policy.compat32).parsebytes(block + b"\r\n")
            ctype = (info.get_content_type() or "text/plain").lower()
            boundary = info.get_boundary() if ctype.startswith("multipart/") else None
            cte = str(info.get("content-transfer-encoding", "") or "").strip().lower()
            disposition = (info.get_content_disposition() or "").lower()
            named = bool(info.get_filename() or info.get_param("name"))
        except Exception:
            ctype, boundary, cte, disposition, named = "text/plain", None, "", "", False
        if boundary is not None and depth < MAX_DEPTH and self.count < MAX_PARTS:
            self.out.write(block)
            self.out.write(b"\r\n")
            self.multipart(boundary.encode("utf-8", "surrogateescape"), depth)
            return
        text = ctype in ("text/plain", "text/html") and disposition != "attachment" and not named
        self.leaf(header_lines, ctype, cte, text)

    def multipart(self, boundary: bytes, depth: int) -> None:
        self.bounds.stack.append(boundary)
        level = len(self.bounds.stack) - 1
        try:
            hit = self.copy_until_delimiter(OTHER_KEEP)  # the preamble
            while hit is not None and hit[0] == level and not hit[1]:
                self.entity(depth + 1)
                hit = self.copy_until_delimiter(OTHER_KEEP)  # normally nothing before the next one
            if hit is not None and hit[0] == level:
                self.epilogue(level)
        finally:
            self.bounds.stack.pop()

    def copy_until_delimiter(self, keep: int) -> tuple[int, bool] | None:
        """Copy lines (up to ``keep`` bytes) until a delimiter: ours is written, an enclosing one
        is left for the caller. ``None`` at the end of the input."""
        level = len(self.bounds.stack) - 1
        size = 0
        while True:
            line, starts = self.lines.next()
            if not line:
                return None
            hit = self.bounds.match(line, starts)
            if hit is not None:
                if hit[0] == level:
                    self.out.write(line)
                else:
                    self.lines.push(line)
                return hit
            size += len(line)
            if size <= keep:
                self.out.write(line)
            else:
                self.defect("preamble or epilogue cut")

    def epilogue(self, level: int) -> None:
        """After a closing delimiter: text up to an enclosing multipart's delimiter, or the end."""
        size = 0
        while True:
            line, starts = self.lines.next()
            if not line:
                return
            hit = self.bounds.match(line, starts)
            if hit is not None and hit[0] < level:
                self.lines.push(line)
                return
            size += len(line)
            if size <= OTHER_KEEP:
                self.out.write(line)
            else:
                self.defect("preamble or epilogue cut")

    def copy_other(self) -> None:
        size = 0
        while True:
            line, _starts = self.lines.next()
            if not line:
                return
            size += len(line)
            if size <= OTHER_KEEP:
                self.out.write(line)

    def leaf(self, header_lines: list[bytes], ctype: str, cte: str, text: bool) -> None:
        """A leaf body: kept in the skeleton when small (text: up to TEXT_KEEP), else spooled."""
        over_budget = self.out.tell() > SKELETON_BUDGET
        if text or ctype in ("message/rfc822", "message/delivery-status", "text/rfc822-headers"):
            threshold = 0 if over_budget else TEXT_KEEP  # read by the parser (bounces, forwards)
        else:
            threshold = 0 if over_budget else SPOOL_PART_ABOVE
        held: list[bytes] = []
        held_size = 0
        ended = False
        while True:
            line, starts = self.lines.next()
            if not line:
                ended = True
                break
            if self.bounds.match(line, starts) is not None:
                self.lines.push(line)
                ended = True
                break
            held.append(line)
            held_size += len(line)
            if held_size > threshold:
                break
        if ended:
            self.out.write(b"".join(header_lines))
            self.out.write(b"\r\n")
            for line in held:
                self.out.write(line)
            return
        if text:
            # A text body this large is not shown whole anyway: keep its start, drop the rest.
            self.defect("text part cut (the raw message is kept)")
            self.out.write(b"".join(header_lines))
            self.out.write(b"\r\n")
            for line in held:
                self.out.write(line)
            self.skip_body()
            return
        part = self.spool_body(held, cte)
        key = f"{self.token}-{len(self.parts)}"
        self.parts[key] = part
        for line in _without_header(header_lines, b"content-transfer-encoding"):
            self.out.write(line)
        self.out.write(f"{MARKER}: {key}\r\n".encode())
        self.out.write(b"\r\n")
        if ctype == "message/rfc822":
            self.defect("a large attached message is kept as a file, not read")

    def skip_body(self) -> None:
        while True:
            line, starts = self.lines.next()
            if not line:
                return
            if self.bounds.match(line, starts) is not None:
                self.lines.push(line)
                return

    def spool_body(self, held: list[bytes], cte: str) -> SpooledPart:
        """Decode the body (``held`` lines, then the rest up to a delimiter) into a spooled file."""
        out = new_spool(self.spool_dir)
        digest = hashlib.sha256()
        size = 0

        def emit(data: bytes) -> None:
            nonlocal size
            if data:
                out.write(data)
                digest.update(data)
                size += len(data)

        decoder = _decoder(cte, emit)

        def lines() -> Iterator[bytes]:
            yield from held
            while True:
                line, starts = self.lines.next()
                if not line:
                    return
                if self.bounds.match(line, starts) is not None:
                    self.lines.push(line)
                    return
                yield line

        try:
            for line in lines():
                decoder.feed(line)
            decoder.close()
            out.flush()
        except BaseException:
            out.close()
            raise
        return SpooledPart(out, size, digest.hexdigest())


def _without_header(lines: list[bytes], name: bytes) -> list[bytes]:
    out: list[bytes] = []
    skipping = False
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            if not skipping:
                out.append(line)
            continue
        skipping = line.split(b":", 1)[0].strip().lower() == name
        if not skipping:
            out.append(line)
    return out


# -- streaming decoders (the last line ending of a body belongs to the boundary after it) -----------


Emit = Callable[[bytes], None]


class _Decoder:
    def __init__(self, emit: Emit) -> None:
        self.emit = emit

    def feed(self, line: bytes) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def close(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


class _Base64(_Decoder):
    def __init__(self, emit: Emit) -> None:
        super().__init__(emit)
        self.rest = b""
        self.done = False

    def feed(self, line: bytes) -> None:
        if self.done:
            return
        data = self.rest + line.translate(None, _B64_KEEP)
        end = data.find(b"=")
        if end >= 0:  # padding: the data ends here
            self.rest = data[:end]
            self.done = True
            return
        cut = len(data) - len(data) % 4
        if cut:
            self.emit(binascii.a2b_base64(data[:cut]))
        self.rest = data[cut:]

    def close(self) -> None:
        rest = self.rest
        if rest:
            rest += b"=" * (-len(rest) % 4)
            with contextlib.suppress(binascii.Error):
                self.emit(binascii.a2b_base64(rest))


class _Held(_Decoder):
    """Writes each line once the next one has come; the last one without its line ending."""

    def __init__(self, emit: Emit) -> None:
        super().__init__(emit)
        self.prev: bytes | None = None

    def decode(self, line: bytes) -> bytes:
        return line

    def feed(self, line: bytes) -> None:
        if self.prev is not None:
            self.emit(self.decode(self.prev))
        self.prev = line

    def close(self) -> None:
        if self.prev is not None:
            self.emit(self.decode(_strip_eol(self.prev)))
            self.prev = None


class _QuotedPrintable(_Held):
    def decode(self, line: bytes) -> bytes:
        return binascii.a2b_qp(line)


def _decoder(cte: str, emit: Emit) -> _Decoder:
    if cte == "base64":
        return _Base64(emit)
    if cte == "quoted-printable":
        return _QuotedPrintable(emit)
    return _Held(emit)


def split(fp: IO[bytes], *, spool_dir: str | None = None) -> Split:
    """The skeleton of the message in ``fp`` (read from its start) and its spooled parts."""
    fp.seek(0)
    return _Splitter(fp, spool_dir).run()


def spool_dir_of(data_dir: os.PathLike[str] | str) -> str:
    """``<data_dir>/spool`` (created): where message and part files go when they leave memory."""
    path = os.path.join(os.fspath(data_dir), "spool")
    os.makedirs(path, exist_ok=True)
    return path


__all__ = ["MARKER", "RawMessage", "Split", "SpoolWriter", "SpooledPart", "new_spool", "split", "spool_dir_of"]
