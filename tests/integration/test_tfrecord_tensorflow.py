"""`pipeline/formats/tfrecord.py` against TensorFlow itself: the same bytes as `tf.io.TFRecordWriter`,
TensorFlow reads our files (`tf.data.TFRecordDataset`), and we read TensorFlow's, damaged ones too
(where TensorFlow's own reader stops with DataLossError)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.formats import tfrecord
from pipeline.tf_env import tensorflow

pytestmark = pytest.mark.slow


def some_records() -> list[bytes]:
    rng = np.random.default_rng(7)
    sizes = [0, 1, 11, 12, 255, 256, 65_537, 3, 1_000_000]
    return [rng.integers(0, 256, size, dtype=np.uint8).tobytes() for size in sizes]


def tf_write(path: Path, records: list[bytes]) -> None:
    tf = tensorflow()
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record)


def tf_read(path: Path) -> list[bytes]:
    tf = tensorflow()
    return [item.numpy() for item in tf.data.TFRecordDataset(str(path))]


def test_our_bytes_are_tensorflows_and_tensorflow_reads_them(tmp_path: Path) -> None:
    records = some_records()
    ours, theirs = tmp_path / "ours.tfrecord", tmp_path / "theirs.tfrecord"
    tfrecord.write_records(ours, records)
    tf_write(theirs, records)
    assert ours.read_bytes() == theirs.read_bytes()
    assert tf_read(ours) == records


def test_appended_files_are_tensorflows_too(tmp_path: Path) -> None:
    records = some_records()
    ours, theirs = tmp_path / "ours.tfrecord", tmp_path / "theirs.tfrecord"
    for half in (records[:4], records[4:]):
        with tfrecord.RecordWriter(ours) as writer:
            writer.write_all(half)
    tf_write(theirs, records)
    assert ours.read_bytes() == theirs.read_bytes()


def test_we_read_what_tensorflow_wrote(tmp_path: Path) -> None:
    records = some_records()
    path = tmp_path / "theirs.tfrecord"
    tf_write(path, records)
    report = tfrecord.scan(path)
    assert list(tfrecord.iter_records(path)) == records
    assert report.records == len(records) and not report.damaged


def test_a_cut_file_reads_up_to_the_cut_where_tensorflow_stops_with_an_error(tmp_path: Path) -> None:
    tf = tensorflow()
    records = some_records()
    path = tmp_path / "cut.tfrecord"
    tf_write(path, records)
    data = path.read_bytes()
    path.write_bytes(data[:-10])  # the last record (1,000,000 bytes) cut short
    assert list(tfrecord.iter_records(path)) == records[:-1]
    assert tfrecord.scan(path).unread_bytes == len(tfrecord.encode_record(records[-1])) - 10
    with pytest.raises(tf.errors.DataLossError):
        tf_read(path)
