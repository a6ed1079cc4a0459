"""Recorded traffic: read the server's request logs, replay them on two versions, make warm-up files.

The model server writes each model's requests as TF Serving's `PredictionLog` records when its
`logging_config` asks (`pipeline/serving/request_logs.py`, files laid out by
`pipeline/serving/log_files.py`). This package reads them back for people and tools, without
TensorFlow and without the dashboard:

- `logs`: find and read log files up to any damage (`read_logs`, `LogReader` for files that grow);
- `select`: filters and the time window, newest first;
- `answers`: previews, answers as named arrays, and comparing two answers;
- `replay`: send logged requests to two targets (versions, labels, or the recorded answer) over
  REST or gRPC and compare, request by request;
- `export`: a version's warm-up file, TFRecord and JSON downloads;
- `python -m pipeline.traffic show|replay|to-warmup` (`__main__`).

The dashboard's Traffic page is built on the same functions.
"""
