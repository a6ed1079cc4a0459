"""Contract test of the one private TensorFlow API the server relies on (`session_callable.py`).

If a TensorFlow upgrade removes `Session._make_callable_from_options`, changes what it accepts, or
makes it check feed shapes, these fail, instead of the server silently answering differently from TF
Serving (the public `Session.run` refuses `[1.0, 2.0, 5.0]` for a `[-1, 1]` placeholder).
"""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.serving import session_callable
from tests.support import upstream_models as um

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory):
    import tensorflow as tf

    path = um.half_plus_two(tmp_path_factory.mktemp("hpt") / "1")
    graph = tf.Graph()
    session = tf.compat.v1.Session(graph=graph)
    with graph.as_default():
        tf.compat.v1.saved_model.loader.load(session, ["serve"], str(path))
    yield session
    session.close()


def test_tensorflow_still_has_the_private_callable_factory() -> None:
    assert session_callable.available()
    assert "Session callables active" in session_callable.status()


def test_it_accepts_callable_options_and_skips_the_feed_shape_check(session) -> None:
    from tensorflow.core.protobuf import config_pb2

    call = session._make_callable_from_options(config_pb2.CallableOptions(feed=["x:0"], fetch=["y:0"]))
    rank_one = np.array([1.0, 2.0, 5.0], np.float32)          # the placeholder is [-1, 1]
    np.testing.assert_array_equal(call(rank_one)[0], [2.5, 3.0, 4.5])
    with pytest.raises(ValueError, match="Cannot feed value of shape"):
        session.run("y:0", {"x:0": rank_one})                 # what the public path does instead


def test_make_callable_runs_by_tensor_name(session) -> None:
    run = session_callable.make_callable(session, ["x:0"], ["y:0", "y2:0"])
    y, y2 = run(np.array(2.0, np.float32))
    assert (y, y2) == (3.0, 4.0)


def test_without_the_private_method_the_public_run_answers_with_its_shape_check(session, monkeypatch) -> None:
    from tensorflow.python.client.session import BaseSession

    monkeypatch.delattr(BaseSession, "_make_callable_from_options")
    assert not session_callable.available()
    assert "Session.run" in session_callable.status()
    run = session_callable.make_callable(session, ["x:0"], ["y:0"])
    np.testing.assert_array_equal(run(np.array([[2.0]], np.float32))[0], [[3.0]])
    with pytest.raises(ValueError, match="Cannot feed value of shape"):
        run(np.array([1.0, 2.0], np.float32))
