"""Predict on models that are not the tutorial's, under AppTest with a fake server at the client's
boundary: each model opened by ``?model=NAME`` starts with a valid example and answers Send; the
editors (table of typed inputs, text lines, pictures, typed fields, tf.Example features, JSON)
check what they hold before anything is sent; links carry the model, transport and format and send;
the history follows the newest request; two versions are compared with their own truths."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from dashboard import input_images
from pipeline.client.errors import ClientError
from pipeline.client.grpc import GrpcClient, GrpcExamplesResult
from pipeline.client.rest import PredictResult, ServingClient
from pipeline.client.urls import model_url

PAGE = str(Path(__file__).resolve().parents[2] / "dashboard" / "views" / "predict.py")
BASE = "http://127.0.0.1:8501"
PREDICT, CLASSIFY = "tensorflow/serving/predict", "tensorflow/serving/classify"


def tensor(dtype: str, *dims: int) -> dict:
    return {"dtype": dtype, "tensor_shape": {"dim": [{"size": str(d)} for d in dims]}}


def signature(inputs: dict, outputs: dict, method: str = PREDICT) -> dict:
    return {"serving_default": {"inputs": inputs, "outputs": outputs, "method_name": method}}


MODELS: dict[str, dict[str, Any]] = {
    "multi_io": signature({"count": tensor("DT_INT64", -1), "features": tensor("DT_FLOAT", -1, 2),
                           "city": tensor("DT_STRING", -1)},
                          {"score": tensor("DT_FLOAT", -1), "tier": tensor("DT_STRING", -1)}),
    "text_model": signature({"text": tensor("DT_STRING", -1)}, {"probabilities": tensor("DT_FLOAT", -1, 2)}),
    "image_classifier": signature({"image": tensor("DT_FLOAT", -1, 4, 4, 3)},
                                  {"output_0": tensor("DT_FLOAT", -1, 3)}),
    "tf1_classifier": signature({"inputs": tensor("DT_STRING")},
                                {"classes": tensor("DT_STRING", -1, 3), "scores": tensor("DT_FLOAT", -1, 3)},
                                CLASSIFY),
    "counter": signature({"delta": tensor("DT_FLOAT")}, {"output": tensor("DT_FLOAT")}),
    "linear_model": signature({"inputs": tensor("DT_FLOAT", -1, 2)}, {"output_0": tensor("DT_FLOAT", -1, 1)}),
    "grid_model": signature({"grid": tensor("DT_INT32", -1, 2, 5)}, {"total": tensor("DT_FLOAT", -1)}),
}


def answer(model: str, inputs: dict[str, Any], version: int) -> dict[str, Any]:
    """What each fake model answers, per example."""
    if model == "multi_io":
        scores = [2 * f[0] - f[1] + 0.5 * c + (c == 0) for c, f in zip(inputs["count"], inputs["features"],
                                                                        strict=True)]
        return {"score": scores, "tier": ["high" if s > 5 else "low" for s in scores]}
    if model == "text_model":
        return {"probabilities": [[0.1, 0.9] if "good" in t else [0.8, 0.2] for t in inputs["text"]]}
    if model == "image_classifier":
        means = [[sum(p[c] for row in image for p in row) / 16 for c in range(3)]
                 for image in inputs["image"]]
        return {"output_0": [[m / (sum(row) or 1) for m in row] for row in means]}
    if model == "counter":
        return {"output": inputs["delta"] + 1.0}
    if model == "grid_model":
        return {"total": [float(sum(sum(row) for row in grid)) for grid in inputs["grid"]]}
    w, b = ((2.0, -1.0), 3.0) if version == 3 else ((200.0, -100.0), 3.0)
    return {"output_0": [[w[0] * x1 + w[1] * x2 + b] for x1, x2 in inputs["inputs"]]}


class Fake:
    """TF Serving's REST API for the models above (versions 2 and 3 of each)."""

    def __init__(self) -> None:
        self.bodies: list[tuple[str, str, dict]] = []

    def model_status(self, client, model, version=None, label=None):
        if model not in MODELS:
            raise ClientError(f"Could not find any versions of model {model}", url=BASE, status_code=404)
        return [{"version": str(v), "state": "AVAILABLE", "status": {"error_code": "OK"}} for v in (3, 2)]

    def metadata(self, client, model, version=None, label=None):
        self.model_status(client, model)
        return {"model_spec": {"name": model, "version": str(version or 3)},
                "metadata": {"signature_def": {"signature_def": MODELS[model]}}}

    def predict_body(self, client, model, body, version=None, label=None):
        url = model_url(BASE, model, version, label, verb="predict")
        self.bodies.append((model, "predict", body))
        signature = MODELS[model][body.get("signature_name", "serving_default")]
        keys = list(signature["inputs"])
        if "instances" in body:
            rows = body["instances"]
            inputs = ({k: [r[k] for r in rows] for k in keys} if len(keys) > 1 else {keys[0]: rows})
        else:
            inputs = body["inputs"] if isinstance(body["inputs"], dict) else {keys[0]: body["inputs"]}
        outputs = answer(model, inputs, version or 3)
        if "instances" in body:
            names = list(outputs)
            rows = len(next(iter(outputs.values())))
            response = {"predictions": outputs[names[0]] if len(names) == 1 else
                        [{n: outputs[n][i] for n in names} for i in range(rows)]}
        else:
            response = {"outputs": outputs[next(iter(outputs))] if len(outputs) == 1 else outputs}
        return PredictResult(url=url, request=body, response=response, status_code=200, latency_s=0.004)

    def classify(self, client, model, examples, *, context=None, version=None, label=None,
                 signature_name=None):
        self.bodies.append((model, "classify", {"examples": examples}))
        results = [[["a", 0.6], ["b", 0.3], ["c", 0.1]] for _ in examples]
        return PredictResult(url=model_url(BASE, model, version, label, verb="classify"),
                             request={"examples": examples}, response={"results": results}, status_code=200,
                             latency_s=0.003)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Fake:
    server = Fake()
    monkeypatch.setenv("SERVING_RUN_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.delenv("MODEL_BASE_PATH", raising=False)
    monkeypatch.setattr(ServingClient, "list_models", lambda self: sorted(MODELS))
    for name in ("model_status", "metadata", "predict_body", "classify"):
        method = getattr(server, name)
        monkeypatch.setattr(ServingClient, name, lambda client, *a, _m=method, **k: _m(client, *a, **k))
    return server


def open_model(model: str, **params: str) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=30)
    at.query_params["model"] = model
    for key, value in params.items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, at.exception
    return at


def texts(elements) -> list[str]:
    return [e.value for e in elements]


def frames(at: AppTest, column: str):
    return [d.value for d in at.dataframe if column in d.value.columns]


def test_a_multi_input_model_opens_with_a_valid_example_and_answers_by_output_name(fake: Fake) -> None:
    at = open_model("multi_io")
    assert at.data_editor[0].value.columns.tolist() == ["city", "count", "features[0]", "features[1]"]
    at.button(key="predict_send").click().run()
    assert not at.error and not at.exception
    (model, verb, body), = fake.bodies
    assert (model, verb) == ("multi_io", "predict")
    assert body == {"instances": [{"city": "example", "count": 0, "features": [0.0, 0.0]}]}
    assert frames(at, "score")[0]["score"].tolist() == [1.0]  # count 0: the fake adds one
    assert frames(at, "tier")[0]["tier"].tolist() == ["low"]
    assert [t.label for t in at.tabs][:2] == ["score", "tier"]


def test_bad_cells_are_named_and_block_send(fake: Fake) -> None:
    at = AppTest.from_file(PAGE, default_timeout=30)
    at.query_params["model"] = "multi_io"
    at.session_state["predict_editor"] = {"edited_rows": {}, "added_rows": [{"city": "rome", "count": 3}],
                                          "deleted_rows": []}
    at.run()
    assert any("Row 2, column features[0]: empty; Row 2, column features[1]: empty (2 cells cannot be sent)"
               in e for e in texts(at.error))
    assert at.button(key="predict_send").disabled
    csv = b"id,count,features[0],features[1],city\n1,1.5,1,2,paris\n2,2,x,2,rome\n"
    at.file_uploader(key="predict_csv").upload("rows.csv", csv, "text/csv").run()
    assert any("Line 2, column count: '1.5' is not a whole int64 number; Line 3, column features[0]: 'x' is "
               "not a number (2 cells cannot be sent)" in e for e in texts(at.error))
    assert fake.bodies == []


def test_columnar_format_sends_every_input_by_name(fake: Fake) -> None:
    at = open_model("multi_io")
    at.radio(key="predict_format").set_value("columnar")
    at.button(key="predict_send").click().run()
    assert fake.bodies[-1][2] == {"inputs": {"city": ["example"], "count": [0], "features": [[0.0, 0.0]]}}
    assert frames(at, "score")[0]["score"].tolist() == [1.0]


def test_a_text_model_takes_a_file_of_lines_and_shows_probabilities(fake: Fake) -> None:
    at = open_model("text_model")
    at.file_uploader(key="predict_lines").upload("texts.txt", b"so good\n\nawful\n", "text/plain").run()
    assert at.data_editor[0].value["text"].tolist() == ["so good", "awful"]
    at.button(key="predict_send").click().run()
    assert fake.bodies[-1][2] == {"instances": ["so good", "awful"]}
    table = frames(at, "argmax")[0]
    assert table["argmax"].tolist() == ["1", "0"] and table["top 2"].tolist()[0] == "1 0.900, 0 0.100"
    assert len(at.get("plotly_chart")) == 1  # the bars of the chosen example


def test_a_picture_is_resized_scaled_previewed_and_sent(fake: Fake) -> None:
    at = open_model("image_classifier")
    assert len(at.get("image")) == 1  # the example built from the signature, previewed
    at.radio(key="predict_image_scale").set_value("0–255").run()
    at.file_uploader(key="predict_image_files").upload("red.png", input_images.solid_png((255, 0, 0)),
                                                         "image/png").run()
    at.button(key="predict_send").click().run()
    (image,) = fake.bodies[-1][2]["instances"]
    assert len(image) == 4 and len(image[0]) == 4 and image[0][0] == [255.0, 0.0, 0.0]
    assert frames(at, "argmax")[0]["argmax"].tolist() == ["0"]


def test_a_classify_signature_takes_examples_and_answers_labels_and_scores(fake: Fake) -> None:
    at = open_model("tf1_classifier")
    assert at.data_editor[0].value.to_dict("list") == {"x": [1.0]}
    at.button(key="predict_send").click().run()
    assert fake.bodies[-1][1:] == ("classify", {"examples": [{"x": 1.0}]})
    table = frames(at, "label")[0]
    assert table[["label", "score"]].values.tolist() == [["a", 0.6], ["b", 0.3], ["c", 0.1]]


def test_a_classify_signature_is_sent_over_grpc_too(fake: Fake, monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[tuple] = []

    def classify(client, model, examples, *, context=None, version=None, label=None, signature="x"):
        sent.append((model, examples, signature))
        return GrpcExamplesResult(model, 3, signature, [[["a", 0.7], ["b", 0.3]] for _ in examples], 0.002)

    monkeypatch.setattr(GrpcClient, "classify", classify)
    at = open_model("tf1_classifier")
    at.radio(key="predict_transport").set_value("gRPC").run()
    assert not at.button(key="predict_send").disabled
    at.button(key="predict_send").click().run()
    assert not at.exception, at.exception
    assert sent == [("tf1_classifier", [{"x": 1.0}], "serving_default")]
    assert fake.bodies == []  # nothing went over REST
    table = frames(at, "label")[0]
    assert table[["label", "score"]].values.tolist() == [["a", 0.7], ["b", 0.3]]


def test_a_signature_without_a_batch_dimension_gets_typed_fields_and_columnar(fake: Fake) -> None:
    at = open_model("counter")
    at.number_input(key="predict_field::delta::0").set_value(2.5)
    at.button(key="predict_send").click().run()
    assert fake.bodies[-1][2] == {"inputs": 2.5}
    assert at.radio(key="predict_format").value == "columnar"


def test_the_json_editor_checks_dtype_and_shape_before_sending(fake: Fake) -> None:
    at = open_model("multi_io")
    at.toggle(key="predict_json_mode").set_value(True).run()
    body = json.loads(at.text_area(key="predict_json").value)
    assert body == {"instances": [{"city": "example", "count": 0, "features": [0.0, 0.0]}]}
    at.text_area(key="predict_json").set_value(json.dumps({"instances": [{"city": "a", "count": 1,
                                                                          "features": [1.0]}]})).run()
    assert any("Input 'features', row 1: expected shape [2]" in e for e in texts(at.error))
    assert at.button(key="predict_send").disabled
    at.text_area(key="predict_json").set_value(json.dumps({"inputs": {"city": ["a"], "count": [9],
                                                                      "features": [[3.0, 0.0]]}})).run()
    at.button(key="predict_send").click().run()
    assert fake.bodies[-1][2] == {"inputs": {"city": ["a"], "count": [9], "features": [[3.0, 0.0]]}}
    assert frames(at, "score")[0]["score"].tolist() == [10.5]


def test_a_link_carries_model_transport_format_inputs_and_sends(fake: Fake) -> None:
    inputs = json.dumps({"inputs": {"city": ["rome"], "count": [9], "features": [[3.0, 0.0]]}})
    at = open_model("multi_io", format="columnar", inputs=inputs, send="1", version="2")
    assert fake.bodies == [("multi_io", "predict", {"inputs": {"city": ["rome"], "count": [9],
                                                               "features": [[3.0, 0.0]]}})]
    assert at.radio(key="predict_format").value == "columnar"
    assert at.selectbox(key="predict_target").value == 2
    link = next(c for c in texts(at.code) if "send=1" in c)
    assert "model=multi_io" in link and "version=2" in link and "format=columnar" in link


def test_history_follows_the_newest_request_and_says_why_a_big_one_cannot_be_replayed(fake: Fake) -> None:
    at = open_model("linear_model")
    for _ in range(3):
        at.button(key="predict_send").click().run()
    newest = at.selectbox(key="history_pick").value
    at.number_input(key="predict_random_count").set_value(3000)
    at.button(key="predict_add_random").click().run()
    at.button(key="predict_send").click().run()
    assert at.selectbox(key="history_pick").value != newest  # the 3,002-row request, not the one before
    assert at.button(key="history_replay").disabled
    assert any("cannot be replayed: the history keeps bodies up to 32 KB" in c for c in texts(at.caption))


def test_two_versions_are_compared_each_against_its_own_truth(fake: Fake, tmp_path: Path) -> None:
    for version, w in ((2, [200.0, -100.0]), (3, [2.0, -1.0])):
        record = tmp_path / "models" / "linear_model" / str(version) / "assets.extra" / "run.json"
        record.parent.mkdir(parents=True)
        record.write_text(json.dumps({"true": {"w": w, "b": 3.0}}))
    at = open_model("linear_model")
    at.button(key="predict_compare_send").click().run()
    assert any("different truths" in c and "w0 = [200.0, -100.0]" in c for c in texts(at.caption))
    table = frames(at, "true for version 2")[0]
    assert table["true for version 2"].tolist() == [3.0, 3.0 + 200 * 5 - 100 * 7]
    assert table["true for version 3"].tolist() == [3.0, 6.0]


def test_the_tutorials_what_if_line_has_the_learned_weight_as_its_slope(fake: Fake) -> None:
    at = open_model("linear_model")
    at.button(key="what_if_send").click().run()
    assert any("slope, 2, is the weight the model learned for x1" in i for i in texts(at.info))
    (_, _, body), = fake.bodies
    assert len(body["instances"]) == 25


def test_training_stays_the_tutorials_model(fake: Fake) -> None:
    train = str(Path(PAGE).parent / "train.py")
    at = AppTest.from_file(train, default_timeout=30)
    at.query_params["model"] = "multi_io"
    at.run()
    assert any("`multi_io` serves another kind of model (city string [-1], count int64 [-1], features "
               "float32 [-1, 2])" in w for w in texts(at.warning))
    assert at.button(key="train_submit").disabled
    at = AppTest.from_file(train, default_timeout=30)
    at.query_params["model"] = "linear_model"
    at.run()
    assert not at.warning and not at.button(key="train_submit").disabled


def test_what_if_sweeps_an_element_of_an_input_only_json_can_edit(fake: Fake) -> None:
    at = open_model("grid_model")  # int32 [-1, 2, 5]: no table, no picture; the JSON editor
    assert at.toggle(key="predict_json_mode").disabled
    at.text_area(key="predict_json").set_value(json.dumps({"inputs": {"grid": [
        [[1, 1, 1, 1, 1], [1, 1, 1, 1, 1]], [[0, 0, 0, 0, 0], [0, 0, 0, 0, 7]]]}})).run()
    at.number_input(key="what_if_example").set_value(2).run()  # columnar: two examples along dimension 0
    assert at.selectbox(key="what_if_element").options[-1] == "grid[1, 4]"
    at.selectbox(key="what_if_element").set_value(9).run()
    at.button(key="what_if_send").click().run()
    assert not at.exception and not at.error, texts(at.error)
    (_, _, body), = fake.bodies
    sent = body["inputs"]  # one input: columnar without its name, as TF Serving takes it
    assert len(sent) == 25 and sent[0] == [[0, 0, 0, 0, 0], [0, 0, 0, 0, 0]]  # from 0 ...
    assert sent[-1] == [[0, 0, 0, 0, 0], [0, 0, 0, 0, 7]] and all(isinstance(v, int) for v in sent[12][1])
    assert any(c.key == "what_if_chart" for c in at.get("plotly_chart"))


def test_without_a_batch_dimension_the_page_says_why_there_is_no_what_if(fake: Fake) -> None:
    at = open_model("counter")
    captions = texts(at.caption)
    assert any("No what-if here" in c and "typed fields: one example per request" in c for c in captions)
    at.toggle(key="predict_json_mode").set_value(True).run()
    captions = texts(at.caption)
    assert any("No what-if here" in c and "input `delta` (float32 []) has none" in c for c in captions)
    assert not [b for b in at.button if b.key == "what_if_send"]
