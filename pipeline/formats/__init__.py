"""Deployment formats of a version, written inside its folder beside the SavedModel.

- `tflite`: `<version>/model.tflite` (`export_tflite`) and `LiteRTModel` to run it with LiteRT.
- `tfjs`: `<version>/tfjs/model.json` + shards (`export_tfjs`), `publish_for_browser` and
  `zip_tfjs` for the dashboard; `graph_model` is the TensorFlow-free layout underneath.
- `tfrecord`: TFRecord files without TensorFlow (TensorFlow's exact bytes; appends; reading up to
  damage with a report), for warm-up files.
- `export_all(version_path)`: both, each failure returned as a `FormatError`, never raised.

`python -m pipeline.formats --model-base-path DIR [--version N | --all]` converts versions that
already exist. Importing this package does not import TensorFlow.
"""

from pipeline.formats.convert import export_all
from pipeline.formats.errors import FormatError

__all__ = ["FormatError", "export_all"]
