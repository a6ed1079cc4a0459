"""Logged requests out: a version's warm-up file, a TFRecord download, or JSON.

A request log holds the record type of a warm-up file (`PredictionLog`), so `warmup_records`
copies the chosen requests that were answered OK, each without its response (TF Serving replays
only the request) and with its `log_metadata`, and `write_warmup` writes them as the version's
`assets.extra/tf_serving_warmup_requests` (atomically, at most 1,000 records as TF Serving reads).
Before writing, every request is checked against the version's own signatures (read from its
`saved_model.pb` without TensorFlow): the signature must exist and a predict request must carry
exactly its inputs, since a warm-up request that fails makes the version fail to load.

`json_entries` gives each request as JSON: its facts (time, model, version, label, API,
transport, status, latency) and the whole `PredictionLog` in protobuf's JSON mapping.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline import tf_protos
from pipeline.client.warmup import MAX_WARMUP_RECORDS
from pipeline.client.warmup_records import WARMUP_PATH
from pipeline.formats import tfrecord
from pipeline.traffic.logs import Logged

DEFAULT_SIGNATURE = "serving_default"


def warmup_records(entries: Sequence[Logged]) -> tuple[list[bytes], list[str]]:
    """(records, why others were left out): OK requests only, each a `PredictionLog` with its
    request and metadata, no response. ValueError past `MAX_WARMUP_RECORDS`."""
    records, skipped = [], []
    for entry in entries:
        if not entry.ok:
            skipped.append(f"{entry.id}: not answered OK ({entry.status or 'no response logged'})")
            continue
        try:
            log = entry.prediction_log()
        except (OSError, ValueError) as error:
            skipped.append(f"{entry.id}: {error}")
            continue
        getattr(log, f"{entry.api}_log").ClearField("response")
        records.append(log.SerializeToString())
    if len(records) > MAX_WARMUP_RECORDS:
        raise ValueError(f"TF Serving reads at most {MAX_WARMUP_RECORDS} warm-up records, not "
                         f"{len(records)}: choose fewer requests")
    return records, skipped


def check_for_version(records: Sequence[bytes], version_dir: Path | str) -> None:
    """ValueError naming the first record the version at `version_dir` would fail to replay: a
    signature it lacks, or predict inputs other than the signature's."""
    from pipeline.model_dir import ModelDirError, read_signatures

    try:
        signatures = read_signatures(version_dir, tf_protos.message_class("tensorflow.SavedModel"))
    except ModelDirError as error:
        raise ValueError(f"cannot read the version's signatures: {error.message}") from None
    log_class = tf_protos.message_class("tensorflow.serving.PredictionLog")
    for index, data in enumerate(records, start=1):
        log = log_class.FromString(data)
        kind = log.WhichOneof("log_type")
        request = getattr(log, kind).request
        multi = kind == "multi_inference_log"
        specs = [t.model_spec for t in request.tasks] if multi else [request.model_spec]
        for spec in specs:
            name = spec.signature_name or DEFAULT_SIGNATURE
            if name not in signatures:
                raise ValueError(f"request {index} names signature {name!r}, which the version does not "
                                 f"have (it has {', '.join(sorted(signatures)) or 'none'})")
            if kind == "predict_log":
                wanted, sent = set(signatures[name].inputs), set(request.inputs)
                if wanted != sent:
                    raise ValueError(f"request {index} sends inputs {sorted(sent)}, signature {name!r} takes "
                                     f"{sorted(wanted)}")


def write_warmup(entries: Sequence[Logged], version_dir: Path | str) -> tuple[Path, int, list[str]]:
    """Write the chosen requests as the version's warm-up file (replacing any, whole or not at
    all); (its path, records written, requests left out and why). ValueError when none fits or
    one would fail the version's load (the earlier file, if any, is left as it was)."""
    records, skipped = warmup_records(entries)
    if not records:
        raise ValueError("no request answered OK among those chosen: nothing to warm up with")
    check_for_version(records, version_dir)
    path = Path(version_dir) / WARMUP_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    tfrecord.write_records(path, records)
    return path, len(records), skipped


def whole_records(entries: Sequence[Logged]) -> list[bytes]:
    """The chosen requests' records as logged (request, response and metadata); a record that can
    no longer be read (its file removed by a size cap) is left out."""
    records = []
    for entry in entries:
        try:
            records.append(entry.record())
        except OSError:
            continue
    return records


def as_tfrecord(records: Sequence[bytes]) -> bytes:
    """Records as the bytes of one TFRecord file (what TensorFlow and TF Serving read)."""
    return b"".join(tfrecord.encode_record(r) for r in records)


def json_entries(entries: Sequence[Logged]) -> list[dict[str, Any]]:
    """Each request's facts and its `PredictionLog` in protobuf's JSON mapping (a record that can
    no longer be read says why instead)."""
    from google.protobuf import json_format

    found = []
    for entry in entries:
        item: dict[str, Any] = {
            "time": entry.time.isoformat() if entry.time else None, "model": entry.model,
            "version": entry.version, "label": entry.label, "signature": entry.signature, "api": entry.api,
            "transport": entry.transport, "status": entry.status, "message": entry.message,
            "latency_ms": entry.latency_ms, "source": str(entry.source), "offset": entry.offset}
        try:
            item["prediction_log"] = json_format.MessageToDict(entry.prediction_log(),
                                                               preserving_proto_field_name=True)
        except (OSError, ValueError) as error:
            item["error"] = str(error)
        found.append(item)
    return found


def json_text(entries: Sequence[Logged]) -> str:
    return json.dumps(json_entries(entries), indent=1, allow_nan=True)
