"""Contract test of the one private TensorFlow API the server relies on (`tf_fastcall.py`).

If a TensorFlow upgrade removes `ConcreteFunction._call_flat`, changes how signature functions
describe their inputs, or makes the flat call answer differently, these fail, instead of every
servable silently falling back to the slower public call.
"""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.serving import tf_fastcall
from tests.server.harness import Models


@pytest.fixture(scope="module")
def loaded_signature(models: Models):
    import tensorflow as tf

    return tf.saved_model.load(str(models.half_plus_two)).signatures["serving_default"]


def test_tensorflow_still_has_call_flat() -> None:
    assert tf_fastcall.available()
    assert "fast call active" in tf_fastcall.status()


def test_signature_functions_still_describe_flat_keyword_inputs(loaded_signature) -> None:
    import tensorflow as tf

    specs = tf_fastcall.flat_specs(loaded_signature, {"x": tf.TensorShape(None)})
    assert specs == (("x", np.dtype(np.float32), None),)


def test_the_flat_call_answers_exactly_as_the_public_call(loaded_signature) -> None:
    specs = tf_fastcall.flat_specs(loaded_signature, {"x": None})
    inputs = {"x": np.array([[1.0], [2.0], [5.0]], np.float32)}
    assert tf_fastcall.accepts(specs, inputs)
    flat = tf_fastcall.call(loaded_signature, specs, inputs)
    public = loaded_signature(**inputs)
    assert flat.keys() == public.keys() == {"y"}
    np.testing.assert_array_equal(flat["y"].numpy(), public["y"].numpy())
    np.testing.assert_array_equal(flat["y"].numpy(), [[2.5], [3.0], [4.5]])


def test_inputs_the_specs_refuse_take_the_public_call(loaded_signature) -> None:
    specs = tf_fastcall.flat_specs(loaded_signature, {"x": None})
    assert not tf_fastcall.accepts(specs, {"x": np.array([[1.0]], np.float64)})  # TF casts/refuses


def test_servables_use_the_fast_call(models: Models) -> None:
    from pipeline.serving.servable import Servable

    servable = Servable.load("half_plus_two", 1, models.half_plus_two)
    assert all(signature.flat_inputs is not None for signature in servable.signatures.values()
               if signature.method_name == "tensorflow/serving/predict")


def test_without_call_flat_signatures_keep_the_public_call(loaded_signature, monkeypatch) -> None:
    class Plain:
        """A signature function as a TensorFlow without `_call_flat` would give it."""

        function_type = loaded_signature.function_type

        def __call__(self, **inputs):
            return loaded_signature(**inputs)

    assert tf_fastcall.flat_specs(Plain(), {"x": None}) is None
