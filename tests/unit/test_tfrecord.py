"""TFRecord files without TensorFlow (`pipeline/formats/tfrecord.py`): TensorFlow's exact bytes,
appends, and reading up to damage with a report of what was skipped.

Pure: the known bytes below were written by `tf.io.TFRecordWriter`; comparing with TensorFlow live
is tests/integration/test_tfrecord_tensorflow.py.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from pipeline.formats import tfrecord

RECORDS = [b"hello", b"", b"\x00\xff" * 3]
WRITTEN_BY_TENSORFLOW = bytes.fromhex(  # tf.io.TFRecordWriter, RECORDS in order
    "0500000000000000eab2043e68656c6c6fbb1f1c19"
    "000000000000000029039807d8ea82a2"
    "06000000000000007369d53700ff00ff00ff4c812478")


def records_and_report(path: Path) -> tuple[list[bytes], tfrecord.ReadReport]:
    report = tfrecord.ReadReport()
    return list(tfrecord.iter_records(path, report)), report


def test_written_bytes_are_tensorflows(tmp_path: Path) -> None:
    path = tmp_path / "file.tfrecord"
    assert tfrecord.write_records(path, RECORDS) == 3
    assert path.read_bytes() == WRITTEN_BY_TENSORFLOW
    assert b"".join(tfrecord.encode_record(r) for r in RECORDS) == WRITTEN_BY_TENSORFLOW


def test_a_file_tensorflow_wrote_reads_whole(tmp_path: Path) -> None:
    path = tmp_path / "tf.tfrecord"
    path.write_bytes(WRITTEN_BY_TENSORFLOW)
    records, report = records_and_report(path)
    assert records == RECORDS
    assert report == tfrecord.ReadReport(records=3) and not report.damaged
    assert report.describe() == "3 records"


def test_writing_replaces_the_file_whole_and_leaves_no_temporaries(tmp_path: Path) -> None:
    path = tmp_path / "file.tfrecord"
    tfrecord.write_records(path, [b"old"] * 5)
    tfrecord.write_records(path, [b"new"])
    assert records_and_report(path)[0] == [b"new"]
    assert [p.name for p in tmp_path.iterdir()] == ["file.tfrecord"]


def test_appends_from_many_threads_all_read_back(tmp_path: Path) -> None:
    path = tmp_path / "log.tfrecord"
    with tfrecord.RecordWriter(path) as writer:
        writer.write(b"first")

    def append(thread: int) -> None:
        for i in range(200):
            writer.write(f"{thread}-{i}".encode() * (i % 7))

    with tfrecord.RecordWriter(path) as writer:
        assert writer.opened == tfrecord.ReadReport(records=1)
        threads = [threading.Thread(target=append, args=(t,)) for t in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    records, report = records_and_report(path)
    assert records[0] == b"first" and len(records) == 801 and not report.damaged
    assert sorted(records[1:]) == sorted(f"{t}-{i}".encode() * (i % 7) for t in range(4) for i in range(200))
    with pytest.raises(ValueError, match="is closed"):
        writer.write(b"late")


def test_a_corrupt_record_is_skipped_and_counted_and_the_rest_is_read(tmp_path: Path) -> None:
    path = tmp_path / "file.tfrecord"
    tfrecord.write_records(path, [b"one", b"two", b"three"])
    data = bytearray(path.read_bytes())
    second_data = len(tfrecord.encode_record(b"one")) + tfrecord.HEADER_BYTES
    data[second_data] ^= 0x01  # a flipped bit in "two"
    path.write_bytes(bytes(data))
    records, report = records_and_report(path)
    assert records == [b"one", b"three"]
    assert report == tfrecord.ReadReport(records=2, corrupt=1) and report.damaged
    assert report.describe() == "2 records; 1 corrupt record skipped (bad data checksum)"


def test_a_bad_length_stops_the_reading_there(tmp_path: Path) -> None:
    path = tmp_path / "file.tfrecord"
    tfrecord.write_records(path, [b"one", b"two", b"three"])
    data = bytearray(path.read_bytes())
    second = len(tfrecord.encode_record(b"one"))
    data[second] ^= 0x40  # the second record's length
    path.write_bytes(bytes(data))
    records, report = records_and_report(path)
    assert records == [b"one"]
    assert report.stopped_at == second and report.unread_bytes == len(data) - second
    assert report.reason == "a record length fails its checksum"
    assert report.describe() == (f"1 record; stopped at byte {second}: a record length fails its checksum; "
                                 f"{len(data) - second} bytes not read")


@pytest.mark.parametrize("cut", [1, tfrecord.HEADER_BYTES, tfrecord.HEADER_BYTES + 2,
                                 len(tfrecord.encode_record(b"three")) - 1])
def test_a_record_cut_short_ends_the_reading_and_the_next_writer_cuts_it_off(tmp_path: Path,
                                                                             cut: int) -> None:
    """A writer that died mid-append leaves part of a record: readers stop before it, and the next
    writer removes it, so what it appends is read."""
    path = tmp_path / "log.tfrecord"
    tfrecord.write_records(path, [b"one", b"two"])
    whole = path.stat().st_size
    with path.open("ab") as handle:
        handle.write(tfrecord.encode_record(b"three")[:cut])
    records, report = records_and_report(path)
    assert records == [b"one", b"two"]
    assert report.stopped_at == whole and report.unread_bytes == cut
    assert "cut short" in report.reason
    with tfrecord.RecordWriter(path) as writer:
        assert writer.opened.stopped_at == whole and writer.opened.records == 2
        writer.write(b"four")
    assert records_and_report(path) == ([b"one", b"two", b"four"], tfrecord.ReadReport(records=3))


def test_an_empty_file_has_no_records_and_no_damage(tmp_path: Path) -> None:
    path = tmp_path / "empty.tfrecord"
    path.write_bytes(b"")
    assert tfrecord.scan(path) == tfrecord.ReadReport()
    assert tfrecord.scan(path).describe() == "0 records"


def test_a_missing_file_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        tfrecord.scan(tmp_path / "nope.tfrecord")


def test_the_masked_crc_is_tensorflows() -> None:
    # tsl::crc32c: Value("123456789") = 0xe3069283; Mask(c) = ((c >> 15) | (c << 17)) + 0xa282ead8
    crc = 0xE3069283
    assert tfrecord.masked_crc(b"123456789") == ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) \
        & 0xFFFFFFFF
