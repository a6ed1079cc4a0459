"""The pure pieces behind exploring any model: pictures to image inputs, outputs classified and
tabled by kind, tf.Example tables, and warm-up records read without TensorFlow."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dashboard import example_editor, input_images, output_charts, predict_inputs
from pipeline.client import warmup_records
from pipeline.client.signatures import Signature, TensorSpec

ROOT = Path(__file__).resolve().parents[2]


def test_a_picture_is_resized_scaled_and_previewed_as_sent() -> None:
    red = input_images.solid_png((255, 0, 0), size=32)
    array = input_images.image_array(red, 8, 8, 3, "−1–1")
    assert array.shape == (8, 8, 3)
    assert np.allclose(array[..., 0], 1.0) and np.allclose(array[..., 1:], -1.0)
    assert input_images.preview(array, "−1–1")[0, 0].tolist() == [255, 0, 0]
    grey = input_images.image_array(red, 4, 2, 1, "0–255")
    assert grey.shape == (4, 2, 1) and 70 < grey[0, 0, 0] < 80  # red's luminance
    assert input_images.guess_scale(grey) == "0–255" and input_images.guess_scale(array) == "−1–1"
    with pytest.raises(ValueError, match="not a PNG or JPEG"):
        input_images.image_array(b"not a picture", 8, 8, 3, "0–1")


def test_a_picture_with_table_inputs_gets_the_combined_editor_and_two_pictures_json() -> None:
    def kind(*specs: TensorSpec) -> str:
        return predict_inputs.editor_kind(Signature("s", "predict", {s.key: s for s in specs}))

    image = TensorSpec("image", "DT_FLOAT", (-1, 4, 4, 3))
    gain, tag = TensorSpec("gain", "DT_FLOAT", (-1,)), TensorSpec("tag", "DT_STRING", (-1,))
    assert kind(image) == "image" and kind(gain, tag) == "table"
    assert kind(image, gain, tag) == "mixed"
    mixed = Signature("s", "predict", {"gain": gain, "image": image, "tag": tag})
    assert predict_inputs.image_key(mixed) == "image"
    assert list(predict_inputs.table_part(mixed).inputs) == ["gain", "tag"]
    assert kind(image, TensorSpec("mask", "DT_FLOAT", (-1, 4, 4, 1))) == "json"  # two pictures per example
    assert kind(image, TensorSpec("delta", "DT_FLOAT", ())) == "json"  # one input has no batch dimension


def test_probabilities_get_argmax_top_k_and_their_class_names() -> None:
    probabilities = [[0.1, 0.7, 0.2], [0.5, 0.25, 0.25]]
    assert output_charts.is_probabilities(probabilities)
    assert not output_charts.is_probabilities([[0.5, 0.6]])
    assert not output_charts.is_probabilities([[2.0, -1.0]])
    table = output_charts.output_table("scores", probabilities, labels=[["a", "b", "c"]] * 2)
    assert table["argmax"].tolist() == ["b", "a"]
    assert table["top 3"].tolist()[0] == "b 0.700, c 0.200, a 0.100"
    figure = output_charts.probabilities_figure(probabilities[0], ["a", "b", "c"], "example 1")
    assert "argmax b (0.700)" in figure.layout.title.text


def test_outputs_become_tables_by_shape_and_dtype() -> None:
    assert output_charts.output_table("y", [[3.0], [6.0]])["y"].tolist() == [3.0, 6.0]
    assert output_charts.output_table("tier", ["low", "high"])["tier"].tolist() == ["low", "high"]
    assert list(output_charts.output_table("v", [[1.0, 2.0]]).columns) == ["v[0]", "v[1]"]
    assert output_charts.output_table("big", [[[1, 2]], [[3, 4]]])["big"].tolist() == ["[[1, 2]]", "[[3, 4]]"]
    lines = output_charts.sweep_series("p", [[0.2, 0.8], [0.4, 0.6]])
    assert lines == {"p[0]": [0.2, 0.4], "p[1]": [0.8, 0.6]}
    assert output_charts.sweep_series("tier", ["a", "b"]) == {}
    assert output_charts.slope([0, 1, 2], [3, 5, 7]) == pytest.approx(2.0)


def test_examples_table_round_trips_typed_features() -> None:
    frame = example_editor.frame_of([{"x": [1.5], "color": ["red"], "n": [3]}, {"x": [-1.0], "n": [4]}])
    assert frame["x"].dtype == "float64" and frame["n"].dtype == "Int64"
    assert example_editor.frame_examples(frame) == [{"x": 1.5, "color": "red", "n": 3}, {"x": -1.0, "n": 4}]
    several = example_editor.frame_of([{"v": [1.0, 2.0]}])
    assert example_editor.frame_examples(several) == [{"v": [1.0, 2.0]}]
    with pytest.raises(ValueError, match="Example 1 has no feature"):
        example_editor.frame_examples(pd.DataFrame({"x": [None]}, dtype="float64"))
    with pytest.raises(ValueError, match='needs "examples"'):
        example_editor.check_body({"instances": [1.0]})


def test_warmup_records_are_read_without_tensorflow(tmp_path: Path) -> None:
    """A TFRecord of PredictionLogs (a predict with three typed inputs, a classify) read as plain
    values, in a fresh interpreter that must not import TensorFlow: records are CRC-checked
    (`pipeline.formats.tfrecord`), one that is not a PredictionLog or fails its checksum is skipped,
    and reading stops at a record cut short."""
    script = r'''
import sys
from pathlib import Path
from pipeline import tf_protos
from pipeline.formats.tfrecord import encode_record
folder = Path(sys.argv[1]) / "assets.extra"
folder.mkdir(parents=True)
log_class = tf_protos.message_class("tensorflow.serving.PredictionLog")
predict = log_class()
request = predict.predict_log.request
request.model_spec.signature_name = "serving_default"
count = request.inputs["count"]; count.dtype = 9; count.tensor_shape.dim.add().size = 1
count.int64_val.append(2)
city = request.inputs["city"]; city.dtype = 7; city.tensor_shape.dim.add().size = 1
city.string_val.append(b"paris")
corrupt = bytearray(encode_record(predict.SerializeToString()))
corrupt[-5] ^= 0xFF  # the data's last byte: its checksum fails
classify = log_class()
example = classify.classify_log.request.input.example_list.examples.add()
example.features.feature["x"].float_list.value.append(1.5)
records = [encode_record(predict.SerializeToString()), encode_record(b"damaged"), bytes(corrupt),
           encode_record(classify.SerializeToString())]
(folder / "tf_serving_warmup_requests").write_bytes(b"".join(records)[:-2])  # the last record cut short
from pipeline.client.warmup_records import read_warmup_requests
print([(r.kind, r.signature, r.inputs, r.examples) for r in read_warmup_requests(sys.argv[1])])
print(sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "tensorflow_serving")))
'''
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    found, tensorflow = done.stdout.strip().splitlines()
    assert found == "[('predict', 'serving_default', {'city': ['paris'], 'count': [2]}, [])]"
    assert tensorflow == "[]"
    assert warmup_records.read_warmup_requests(tmp_path / "missing") == []
