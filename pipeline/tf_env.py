"""Import TensorFlow quietly and only when needed.

``import tensorflow`` costs seconds and prints C++ log noise; every module that needs
it calls :func:`tensorflow` at the point of use, so importing ``pipeline`` stays cheap
(the dashboard's first paint must not wait for TensorFlow).
"""

from __future__ import annotations

import os
from types import ModuleType


def quiet_tensorflow_logs() -> None:
    """Hide TensorFlow's C++ info/warning logs unless the user chose a level."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def tensorflow() -> ModuleType:
    """Return the ``tensorflow`` module, importing it quietly on first use."""
    quiet_tensorflow_logs()
    import tensorflow as tf

    return tf


def keras() -> ModuleType:
    """Return the ``keras`` module (Keras 3 on the TensorFlow backend)."""
    quiet_tensorflow_logs()
    import keras as k

    return k
