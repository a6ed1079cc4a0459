"""TensorFlow Lite export of a version (`<version>/model.tflite`) and a LiteRT runner for it.

The file sits inside the version folder, where `tensorflow_model_server --prefer_tflite_model`
looks for it and where deleting the version takes it along. It is converted from the SavedModel's
`serving_default` signature with `tf.lite.TFLiteConverter`, written to a hidden temporary file in
the same folder, fsynced and renamed, so a server never reads half a file and the SavedModel is
never touched. It runs with LiteRT (`ai-edge-litert`), the runtime that replaces the deprecated
`tf.lite.Interpreter`.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.formats.errors import FormatError
from pipeline.state import atomic_write_bytes, remove_leftovers

TFLITE_FILE = "model.tflite"
SIGNATURE = "serving_default"
_IDENTIFIER = b"TFL3"  # FlatBuffer file identifier of every .tflite model, at bytes 4..8


def tflite_path(version_path: Path | str) -> Path:
    """Where a version's `.tflite` model lives (whether or not it has been exported)."""
    return Path(version_path) / TFLITE_FILE


def convert_saved_model(version_path: Path | str, signature: str = SIGNATURE) -> bytes:
    """The `.tflite` flatbuffer of a version's `signature`; FormatError if TFLite cannot convert it."""
    from pipeline.model_dir import ModelDirError, read_meta_graph
    from pipeline.tf_env import tensorflow

    path = Path(version_path)
    try:
        read_meta_graph(path)
    except ModelDirError as error:
        raise FormatError(f"TFLite export of {path}: {error.message}") from error
    tf = tensorflow()
    try:
        converter = tf.lite.TFLiteConverter.from_saved_model(str(path), signature_keys=[signature])
        return converter.convert()
    except Exception as error:  # ConverterError, ValueError, ...: the text is what the user needs
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise FormatError(f"TFLite export of {path} failed: {first_line}") from error


def export_tflite(version_path: Path | str) -> Path:
    """Write `<version>/model.tflite` from the SavedModel atomically and return its path."""
    path = Path(version_path)
    data = convert_saved_model(path)
    remove_leftovers(path, TFLITE_FILE)
    return atomic_write_bytes(tflite_path(path), data)


class LiteRTModel:
    """One `.tflite` model loaded in LiteRT, answering `predict(rows)` for any batch size.

    Thread-safe (an interpreter is not, so calls are serialised). Construction refuses a file
    that is not a TensorFlow Lite model with a FormatError naming the file.
    """

    def __init__(self, path: Path | str, signature: str = SIGNATURE, num_threads: int | None = None) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._interpreter = _open_interpreter(self.path, num_threads)
        signatures = self._interpreter.get_signature_list()
        if signature not in signatures and signatures:
            raise FormatError(f"{self.path} has no signature '{signature}' (it has {', '.join(signatures)})")
        self.signature = signature if signature in signatures else None
        self._runner = self._interpreter.get_signature_runner(signature) if self.signature else None

    @property
    def input_names(self) -> list[str]:
        """The signature's input keys (the SavedModel's), e.g. `["inputs"]`."""
        if self._runner is not None:
            return list(self._runner.get_input_details())
        return [d["name"] for d in self._interpreter.get_input_details()]

    @property
    def output_names(self) -> list[str]:
        """The signature's output keys, e.g. `["output_0"]`."""
        if self._runner is not None:
            return list(self._runner.get_output_details())
        return [d["name"] for d in self._interpreter.get_output_details()]

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the signature on named inputs (cast to the model's dtypes); outputs by name."""
        with self._lock:
            if self._runner is not None:
                details = self._runner.get_input_details()
                feed = {k: np.asarray(v, dtype=details[k]["dtype"]) for k, v in inputs.items()}
                try:
                    return {k: np.array(v) for k, v in self._runner(**feed).items()}
                except (ValueError, RuntimeError) as error:
                    raise FormatError(f"LiteRT could not run {self.path.name}: {error}") from error
            return self._run_plain(inputs)

    def predict(self, rows: Any) -> np.ndarray:
        """The model's only output for `rows` (shape `[batch, features]`), batch resized as needed."""
        names = self.input_names
        if len(names) != 1:
            raise FormatError(f"{self.path.name} has {len(names)} inputs; use run() with named inputs")
        outputs = self.run({names[0]: np.asarray(rows)})
        if len(outputs) != 1:
            raise FormatError(f"{self.path.name} has {len(outputs)} outputs; use run() to get them by name")
        return next(iter(outputs.values()))

    def _run_plain(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """A model without signatures: feed inputs by tensor name, resizing for the batch."""
        interpreter = self._interpreter
        for detail in interpreter.get_input_details():
            value = np.asarray(inputs[detail["name"]], dtype=detail["dtype"])
            interpreter.resize_tensor_input(detail["index"], value.shape)
        interpreter.allocate_tensors()
        for detail in interpreter.get_input_details():
            interpreter.set_tensor(detail["index"], np.asarray(inputs[detail["name"]], dtype=detail["dtype"]))
        interpreter.invoke()
        outputs = interpreter.get_output_details()
        return {d["name"]: np.array(interpreter.get_tensor(d["index"])) for d in outputs}


def _open_interpreter(path: Path, num_threads: int | None) -> Any:
    """A LiteRT interpreter for `path`, or a FormatError a user can read instead of a FlatBuffer trace."""
    try:
        with path.open("rb") as handle:
            head = handle.read(8)
    except OSError as error:
        raise FormatError(f"Cannot read TensorFlow Lite model {path}: {error.strerror or error}") from error
    if len(head) < 8 or head[4:8] != _IDENTIFIER:
        raise FormatError(f"{path} is not a TensorFlow Lite model (corrupt or not a .tflite file); "
                          "export the version again")
    from ai_edge_litert.interpreter import Interpreter

    try:
        interpreter = Interpreter(model_path=str(path), num_threads=num_threads)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as error:
        raise FormatError(f"{path} is a damaged TensorFlow Lite model and LiteRT cannot load it: "
                          f"{str(error).strip().splitlines()[0] if str(error).strip() else error}") from error
    return interpreter
