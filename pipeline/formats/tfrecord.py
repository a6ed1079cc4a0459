"""TFRecord files without TensorFlow: write, append, and read up to damage.

A TFRecord file is a sequence of records, each framed as TensorFlow's `io/record_writer.cc` writes it:

    uint64 length            little-endian
    uint32 masked_crc(length bytes)
    byte   data[length]
    uint32 masked_crc(data)

where `masked_crc(b) = ((c >> 15) | (c << 17)) + 0xa282ead8` (mod 2^32) and `c` is the CRC-32C
(Castagnoli) of `b`, computed by `google-crc32c` (Google's C library). Files written here are byte
for byte what `tf.io.TFRecordWriter` writes (uncompressed), and TensorFlow reads them
(`tests/integration/test_tfrecord_tensorflow.py`).

Reading never raises on damage. A record whose data fails its checksum is skipped and counted
(its length was checked, so the records after it are still found); a length that fails its
checksum, or a record cut short by the end of the file (a writer that died mid-append), ends the
reading there, and the bytes left unread are counted. `ReadReport` says what was read and skipped::

    from pipeline.formats import tfrecord

    tfrecord.write_records(path, [b"first", b"second"])      # the whole file, atomically
    with tfrecord.RecordWriter(path) as writer:              # appends, one thread or many
        writer.write(b"third")
    report = tfrecord.ReadReport()
    for record in tfrecord.iter_records(path, report):
        ...
    print(report.describe())   # "3 records" or e.g. "2 records; 1 corrupt record skipped; ..."
"""

from __future__ import annotations

import os
import struct
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import google_crc32c

from pipeline.state import atomic_write_bytes

_LENGTH = struct.Struct("<Q")
_CRC = struct.Struct("<I")
HEADER_BYTES = _LENGTH.size + _CRC.size
FOOTER_BYTES = _CRC.size
_MASK_DELTA = 0xA282EAD8


def masked_crc(data: bytes) -> int:
    """TensorFlow's masked CRC-32C of `data` (`tsl::crc32c::Mask`)."""
    crc = google_crc32c.value(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _MASK_DELTA) & 0xFFFFFFFF


def encode_record(data: bytes) -> bytes:
    """One record as it appears in the file: header, data, footer."""
    length = _LENGTH.pack(len(data))
    return b"".join((length, _CRC.pack(masked_crc(length)), data, _CRC.pack(masked_crc(data))))


def write_records(path: Path | str, records: Iterable[bytes]) -> int:
    """Replace the file at `path` with `records`, whole or not at all (a hidden temporary file in
    the same folder, then a rename); the number of records written."""
    encoded = [encode_record(bytes(record)) for record in records]
    atomic_write_bytes(Path(path), b"".join(encoded))
    return len(encoded)


class RecordWriter:
    """Appends records to a TFRecord file (created if missing); thread-safe, one `write` call per
    record; one writer per file at a time. `flush()` makes what was written durable (fsync).

    Opening an existing file first reads it through (`scan`): if reading stops early (a record
    cut short by a writer that died, or a length failing its checksum), the file is cut back to
    where reading stops, since readers would never see records appended after that point.
    `opened` is that scan's report (what was kept, and how many bytes were cut)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self.opened = scan(self.path) if self.path.exists() else ReadReport()
        if self.opened.stopped_at is not None:
            os.truncate(self.path, self.opened.stopped_at)
        self._file: BinaryIO | None = open(self.path, "ab")  # noqa: SIM115 - closed by close()

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write(self, record: bytes) -> None:
        """Append one record (buffered; `flush()` or `close()` to make it durable)."""
        encoded = encode_record(bytes(record))
        with self._lock:
            self._open().write(encoded)

    def write_all(self, records: Iterable[bytes]) -> int:
        """Append every record; how many."""
        count = 0
        for record in records:
            self.write(record)
            count += 1
        return count

    def flush(self) -> None:
        """Write the buffer out and fsync the file."""
        with self._lock:
            handle = self._open()
            handle.flush()
            os.fsync(handle.fileno())

    def close(self) -> None:
        """Flush, fsync and close; later writes raise ValueError."""
        with self._lock:
            if self._file is None:
                return
            handle, self._file = self._file, None
        try:
            handle.flush()
            os.fsync(handle.fileno())
        finally:
            handle.close()

    def _open(self) -> BinaryIO:
        if self._file is None:
            raise ValueError(f"the TFRecord writer of {self.path} is closed")
        return self._file


@dataclass
class ReadReport:
    """What reading a TFRecord file found: records read, records skipped, where it stopped."""

    records: int = 0
    """Records whose length and data passed their checksums (the ones yielded)."""
    corrupt: int = 0
    """Records skipped because their data failed its checksum."""
    stopped_at: int | None = None
    """Byte offset where reading stopped before the end: a length that failed its checksum, or a
    record cut short by the end of the file. None when the file was read to its end."""
    unread_bytes: int = 0
    """Bytes from `stopped_at` to the end of the file, not read."""
    reason: str = ""
    """Why reading stopped early (empty when it did not)."""

    @property
    def damaged(self) -> bool:
        """Whether anything was skipped or left unread."""
        return bool(self.corrupt or self.stopped_at is not None)

    def describe(self) -> str:
        """One line for people: `3 records`, or what was skipped and where reading stopped."""
        parts = [f"{self.records} record{'s' * (self.records != 1)}"]
        if self.corrupt:
            plural = "s" * (self.corrupt != 1)
            parts.append(f"{self.corrupt} corrupt record{plural} skipped (bad data checksum)")
        if self.stopped_at is not None:
            parts.append(f"stopped at byte {self.stopped_at}: {self.reason}; "
                         f"{self.unread_bytes} bytes not read")
        return "; ".join(parts)


def iter_records(path: Path | str, report: ReadReport | None = None) -> Iterator[bytes]:
    """Every good record of the TFRecord file at `path`, in order, read as a stream; skips and
    stops at damage as the module says, counting it in `report` (a fresh `ReadReport` if None).
    OSError if the file cannot be opened."""
    report = report if report is not None else ReadReport()
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        yield from read_stream(handle, size, report)


def read_stream(handle: BinaryIO, size: int, report: ReadReport) -> Iterator[bytes]:
    """`iter_records` on an open binary stream of `size` bytes, from its current position (0)."""
    offset = 0
    while offset < size:
        header = handle.read(HEADER_BYTES)
        if len(header) < HEADER_BYTES:
            _stop(report, offset, size, "the last record's header is cut short")
            return
        length_bytes = header[:_LENGTH.size]
        if _CRC.unpack(header[_LENGTH.size:])[0] != masked_crc(length_bytes):
            _stop(report, offset, size, "a record length fails its checksum")
            return
        (length,) = _LENGTH.unpack(length_bytes)
        if length + FOOTER_BYTES > size - offset - HEADER_BYTES:
            _stop(report, offset, size, "the last record is cut short")
            return
        data = handle.read(length)
        footer = handle.read(FOOTER_BYTES)
        if len(data) < length or len(footer) < FOOTER_BYTES:  # the file shrank while being read
            _stop(report, offset, size, "the last record is cut short")
            return
        offset += HEADER_BYTES + length + FOOTER_BYTES
        if _CRC.unpack(footer)[0] != masked_crc(data):
            report.corrupt += 1
            continue
        report.records += 1
        yield data


def scan(path: Path | str) -> ReadReport:
    """Read the whole file only to report on it (records, corrupt, where reading stops)."""
    report = ReadReport()
    for _ in iter_records(path, report):
        pass
    return report


def _stop(report: ReadReport, offset: int, size: int, reason: str) -> None:
    report.stopped_at = offset
    report.unread_bytes = size - offset
    report.reason = reason
