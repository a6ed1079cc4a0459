"""Model status and metadata over real HTTP, with version policies and labels from a models.config."""

from __future__ import annotations

import json

from tests.server.harness import Server, error_of, ok_json

AVAILABLE_OK = {"state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}


def versions(server: Server, model: str) -> list[str]:
    return [entry["version"] for entry in ok_json(server.get(f"/v1/models/{model}"))["model_version_status"]]


def test_p26_status_of_the_only_aspired_version(main_server: Server) -> None:
    expected = {"model_version_status": [{"version": "123", **AVAILABLE_OK}]}
    assert ok_json(main_server.get("/v1/models/half_plus_two")) == expected
    assert ok_json(main_server.get("/v1/models/half_plus_two/versions/123")) == expected
    # Status ignores labels (TF Serving honours only an explicit version), even unknown ones.
    assert ok_json(main_server.get("/v1/models/half_plus_two/labels/whatever")) == expected


def test_status_errors(main_server: Server) -> None:
    assert error_of(main_server.get("/v1/models/half_plus_two/versions/124"), 404) == (
        "Could not find version 124 of model half_plus_two")
    assert error_of(main_server.get("/v1/models/foo"), 404) == "Could not find any versions of model foo"
    assert error_of(main_server.get("/v1/models/foo/versions/18446744073709551615"), 400) == (
        "Failed to convert version: 18446744073709551615 to numeric.")


def test_policy_all_lists_every_version_newest_first(main_server: Server) -> None:
    status = ok_json(main_server.get("/v1/models/hpt_all"))["model_version_status"]
    assert status == [{"version": "124", **AVAILABLE_OK}, {"version": "123", **AVAILABLE_OK}]


def test_policy_latest_two_and_zero_padded_version_names(main_server: Server) -> None:
    assert versions(main_server, "hpt_latest2") == ["3", "2"]
    assert versions(main_server, "default") == ["123"]  # directory 00000123


def test_latest_version_labels_and_versions_route_predictions(main_server: Server) -> None:
    def predict(path: str) -> list[float]:
        response = main_server.post(f"/v1/models/hpt_all{path}:predict", {"instances": [2.0]})
        return ok_json(response)["predictions"]

    assert predict("") == [4.0]                 # highest AVAILABLE version: 124, y = 0.5 x + 3
    assert predict("/versions/123") == [3.0]    # y = 0.5 x + 2
    assert predict("/labels/stable") == [3.0]
    assert predict("/labels/canary") == [4.0]
    nope = main_server.post("/v1/models/hpt_all/labels/nope:predict", {"instances": [1.0]})
    assert error_of(nope, 400) == "Unrecognized servable version label: nope"
    # A label pointing at a version that is not loaded serves nothing.
    ghost = main_server.post("/v1/models/hpt_all/labels/ghost:predict", {"instances": [1.0]})
    assert error_of(ghost, 404) == "Servable not found for request: Specific(hpt_all, 999)"


def test_metadata_shape_of_tf_serving(main_server: Server) -> None:
    body = ok_json(main_server.get("/v1/models/half_plus_two/metadata"))
    assert body["model_spec"] == {"name": "half_plus_two", "signature_name": "", "version": "123"}
    signatures = body["metadata"]["signature_def"]["signature_def"]  # doubled nesting, as TF Serving
    expected = {"serving_default", "classify_x_to_y", "regress_x_to_y", "__saved_model_init_op"}
    assert expected <= set(signatures)
    classify = signatures["classify_x_to_y"]
    assert classify["method_name"] == "tensorflow/serving/classify"
    assert classify["inputs"]["inputs"]["dtype"] == "DT_STRING"
    batch, one = {"size": "-1", "name": ""}, {"size": "1", "name": ""}  # sizes are strings
    assert classify["inputs"]["inputs"]["tensor_shape"] == {"dim": [batch], "unknown_rank": False}
    assert classify["outputs"]["scores"]["tensor_shape"]["dim"] == [batch, one]
    default = signatures["serving_default"]
    assert default["method_name"] == "tensorflow/serving/predict"
    assert default["inputs"]["x"]["dtype"] == "DT_FLOAT"
    assert default["inputs"]["x"]["tensor_shape"] == {"dim": [], "unknown_rank": True}
    assert default["defaults"] == {}


def test_metadata_by_version_and_label(main_server: Server) -> None:
    by_version = ok_json(main_server.get("/v1/models/hpt_all/versions/123/metadata"))
    assert by_version["model_spec"]["version"] == "123"
    by_label = ok_json(main_server.get("/v1/models/hpt_all/labels/canary/metadata"))
    assert by_label["model_spec"] == {"name": "hpt_all", "signature_name": "", "version": "124"}
    assert ok_json(main_server.get("/v1/models/hpt_all/metadata"))["model_spec"]["version"] == "124"


def test_metadata_errors(main_server: Server) -> None:
    assert error_of(main_server.get("/v1/models/foo/metadata"), 404) == (
        "Servable not found for request: Latest(foo)")
    assert error_of(main_server.get("/v1/models/half_plus_two/versions/50/metadata"), 404) == (
        "Servable not found for request: Specific(half_plus_two, 50)")
    assert error_of(main_server.get("/v1/models/half_plus_two/labels/nope/metadata"), 400) == (
        "Unrecognized servable version label: nope")


def test_paths_are_case_insensitive_and_percent_decoded(main_server: Server) -> None:
    assert versions(main_server, "half%5Fplus%5Ftwo") == ["123"]
    upper = ok_json(main_server.get("/V1/MODELS/half_plus_two/VERSIONS/123"))
    assert upper["model_version_status"][0]["version"] == "123"
    # Query strings are ignored, as by TF Serving.
    assert json.loads(main_server.get("/v1/models/half_plus_two?x=1").text)["model_version_status"]
