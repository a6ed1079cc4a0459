"""The examples table (dashboard/input_table.py): one row per example across typed inputs, CSV files
read by their header (extra columns left out, every bad cell counted), random rows in a range."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dashboard import input_table as it
from pipeline.client.signatures import Signature, TensorSpec

MULTI = Signature("serving_default", "predict", {
    "count": TensorSpec("count", "DT_INT64", (-1,)), "features": TensorSpec("features", "DT_FLOAT", (-1, 2)),
    "city": TensorSpec("city", "DT_STRING", (-1,)), "flag": TensorSpec("flag", "DT_BOOL", (-1, 1))})
TUTORIAL = Signature("serving_default", "predict", {"inputs": TensorSpec("inputs", "DT_FLOAT", (-1, 2))})
TUTORIAL_LAYOUT = it.table_layout(TUTORIAL, {"inputs": ["x1", "x2"]})


def test_one_column_per_value_and_back_to_typed_inputs() -> None:
    layout = it.table_layout(MULTI)
    assert layout.names == ["count", "features[0]", "features[1]", "city", "flag"]
    assert layout.numeric == ["count", "features[0]", "features[1]"]
    inputs = {"count": [2, 9], "features": [[1.0, 2.0], [3.0, 0.0]], "city": ["paris", "rome"],
              "flag": [[True], [False]]}
    frame = it.frame_of(layout, inputs)
    assert frame["count"].dtype == "Int64" and frame["flag"].dtype == "boolean"
    assert it.as_lists(it.frame_inputs(layout, frame)) == inputs


def test_the_tutorials_columns_keep_their_names_and_10000_rows_stay_one_array() -> None:
    rows = np.random.default_rng(0).uniform(-10, 10, size=(10_000, 2))
    inputs = it.frame_inputs(TUTORIAL_LAYOUT, pd.DataFrame(rows, columns=["x1", "x2"]))
    assert inputs["inputs"].shape == (10_000, 2) and np.array_equal(inputs["inputs"], rows)


def test_every_bad_cell_is_counted_and_the_first_ones_named() -> None:
    frame = pd.DataFrame({"x1": ["1", "a", "3", "", "5", "6", "7", "x"],
                          "x2": ["b", "1", "1", "1", "?", "!", "1", "1"]})
    with pytest.raises(ValueError) as error:
        it.frame_inputs(TUTORIAL_LAYOUT, frame)
    message = str(error.value)
    assert message.startswith("Row 1, column x2: 'b' is not a number; Row 2, column x1: 'a' is not a number; "
                              "Row 4, column x1: empty;")
    assert "and 1 more (6 cells cannot be sent)" in message and "nothing was sent" in message


def test_a_csv_with_extra_columns_is_read_by_its_header() -> None:
    frame, notes = it.parse_csv(b"id,x2,x1,y\n1,2,3,4\n2,5,6,7\n", TUTORIAL_LAYOUT)
    assert frame.values.tolist() == [[3.0, 2.0], [6.0, 5.0]]
    assert notes == ["Columns id, y left out: the model does not take them."]


def test_a_csv_without_a_header_needs_exactly_the_columns() -> None:
    frame, notes = it.parse_csv(b"0,0\n-1,4.5\n", TUTORIAL_LAYOUT)
    assert frame.values.tolist() == [[0.0, 0.0], [-1.0, 4.5]] and notes == []
    with pytest.raises(ValueError, match="3 column\\(s\\) and no header"):
        it.parse_csv(b"0,0,9\n", TUTORIAL_LAYOUT)
    frame, notes = it.parse_csv(b"a,b\n1,2\n", TUTORIAL_LAYOUT)
    assert frame.values.tolist() == [[1.0, 2.0]] and "read as x1, x2" in notes[0]


def test_a_csv_names_every_bad_line_and_a_missing_column() -> None:
    with pytest.raises(ValueError, match=r"Line 3, column x1: empty; Line 3, column x2: 'abc' is not a "
                                         r"number \(2 cells cannot be sent\)"):
        it.parse_csv(b"x1,x2\n1,2\n,abc\n", TUTORIAL_LAYOUT)
    with pytest.raises(ValueError, match="has no column features\\[1\\]"):
        it.parse_csv(b"count,features[0],city,flag\n1,2,a,true\n", it.table_layout(MULTI))
    with pytest.raises(ValueError, match="Line 2, column count: '1.5' is not a whole int64 number"):
        it.parse_csv(b"count,features[0],features[1],city,flag\n1.5,1,2,a,true\n", it.table_layout(MULTI))


def test_csv_limits() -> None:
    with pytest.raises(ValueError, match="50,001 rows.*pipeline.batch"):
        it.parse_csv(b"x1,x2\n" + b"1,2\n" * 50_001, TUTORIAL_LAYOUT)
    with pytest.raises(ValueError, match="is empty"):
        it.parse_csv(b"", TUTORIAL_LAYOUT)


def test_random_rows_stay_in_the_range_and_the_dtype() -> None:
    layout = it.table_layout(MULTI)
    frame = it.random_frame(layout, 200, -3.5, 7.2, np.random.default_rng(1), texts=["paris"])
    assert frame["features[0]"].between(-3.5, 7.2).all() and frame["count"].between(-3, 7).all()
    assert set(frame["city"]) == {"paris"} and frame["flag"].dtype == "boolean"
    it.frame_inputs(layout, frame)  # valid as they are
