"""A small client for the TensorFlow Serving REST API (our embedded server or a real one).

Everything the dashboard asks a model server goes through :class:`ServingClient`; every way
a call can fail ends in one exception type, :class:`ClientError`, whose ``str()`` is a
sentence a user can act on (start the server, train a version, fix the URL...). No
Streamlit and no process control here (starting a local server is `local_server`'s job):
the client is usable from a notebook or a script::

    from pipeline.client.rest import ServingClient
    from pipeline.client import sessions
from pipeline.client import sessions
from pipeline.client.errors import ClientError

    client = ServingClient("http://127.0.0.1:8501")
    try:
        print(client.model_status("linear_model"))
        result = client.predict("linear_model", instances=[[1.0, 2.0], [5.0, 7.0]])
        print(result.values, f"{result.latency_s * 1000:.1f} ms")  # [[3.0], [6.0]] ...
    except ClientError as error:
        print(error)  # e.g. "No model server answers at http://127.0.0.1:8501 ... Start it ..."

Responses are parsed with :func:`json.loads`, which accepts the bare ``NaN``/``Infinity``
tokens TF Serving writes for non-finite floats; request bodies are written with
:func:`json.dumps`, which emits them (TF Serving accepts them for float inputs).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import requests

from pipeline.client import sessions
from pipeline.client.errors import ClientError
from pipeline.client.urls import Version, model_url, normalize_url

PROMETHEUS_PATH = "/monitoring/prometheus/metrics"
MODEL_LIST_PATH = "/v1/models:list"
"""Our server's model listing (an extension, docs/serving.md); TF Serving answers it with a 400."""
Body = dict[str, Any] | None
INIT_OP_SIGNATURE = "__saved_model_init_op"
"""A signature TF2 exports add for initialisation; it cannot be called for predictions."""


@dataclass(frozen=True)
class PredictResult:
    """One successful predict/classify/regress call, with everything needed to show or replay it."""

    url: str
    request: dict[str, Any]
    response: dict[str, Any]
    status_code: int
    latency_s: float
    """Wall-clock round trip of the HTTP call (send, server work, receive, parse)."""
    values: Any = field(init=False)
    """``predictions`` (row request), ``outputs`` (columnar) or ``results`` (classify/regress)."""

    def __post_init__(self) -> None:
        for key in ("predictions", "outputs", "results"):
            if key in self.response:
                object.__setattr__(self, "values", self.response[key])
                return
        object.__setattr__(self, "values", None)


def _http_hint(status: int, message: str) -> str:
    if "Could not find any versions" in message:
        return ("The server has no version of this model: train and export one (it is picked up within "
                "seconds), or check the model name and the server's base path.")
    if "Servable not found for request: Latest(" in message:
        return ("No version of this model is AVAILABLE yet: train and export one, or check the model name.")
    if "Servable not found" in message or "Could not find version" in message:
        return "That version is not loaded: pick a version whose state is AVAILABLE, or 'latest'."
    if "Unrecognized servable version label" in message:
        return "No such label: labels are set in the server's models.config (version_labels)."
    if "not found in signature def" in message or "No signature was found" in message:
        return "Pick a signature listed in the model's metadata (usually serving_default)."
    if status in (400, 413):
        return "The server rejected the request: check the input rows and the signature."
    if status >= 500:
        return "The server failed while answering; its log says why."
    return "See the server's message above."


def _down_hint(base_url: str) -> str:
    return f"Start a model server at {base_url}, or fix the server URL."


class ServingClient:
    """Speaks TF Serving's REST API at ``base_url``; every failure raises :class:`ClientError`.

    Thread-safe: each exchange borrows a ``requests.Session`` from the server's pool
    (`pipeline.client.sessions`: one pool per base URL, kept-alive connections reused by every
    thread and every client of that server, closed at exit), so one client can be shared by every
    dashboard session, and clients are cheap to make.
    """

    def __init__(self, base_url: str, timeout: float = 5.0):
        self.base_url = normalize_url(base_url)
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"ServingClient({self.base_url!r}, timeout={self.timeout})"

    # -- transport ---------------------------------------------------------------------------------

    def _send(self, method: str, url: str, body: Body = None) -> tuple[requests.Response, float]:
        """One HTTP exchange; transport failures become ClientError, any HTTP answer is returned."""
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        start = time.perf_counter()
        try:
            with sessions.pool_for(self.base_url).session() as session:
                response = session.request(method, url, data=data, headers=headers, timeout=self.timeout)
        except requests.Timeout:
            raise ClientError(
                f"No answer within {self.timeout:g} s", url=url,
                hint="The server may be busy (loading a version, a large batch) or the host unreachable: "
                "try again, or check the URL.") from None
        except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                requests.exceptions.InvalidSchema) as exc:
            raise ClientError(f"Not a usable URL: {exc}", url=url,
                               hint="Use the form http://host:port.") from None
        except requests.ConnectionError as exc:
            text = str(exc).lower()
            if "refused" in text:
                reason = "connection refused"
            elif "resolve" in text or "name or service" in text:
                reason = "host not found"
            else:
                reason = "connection failed"
            raise ClientError(f"No model server answers at {self.base_url} ({reason})", url=url,
                               hint=_down_hint(self.base_url)) from None
        except requests.RequestException as exc:
            raise ClientError(f"Request failed: {exc}", url=url,
                               hint="Check the URL.") from None
        return response, time.perf_counter() - start

    def _call(self, method: str, url: str, body: Body = None) -> tuple[dict[str, Any], int, float]:
        """A JSON API call: returns (answer object, HTTP status, latency) for a 2xx JSON object."""
        response, latency = self._send(method, url, body)
        try:
            answer = json.loads(response.content)  # bytes: no charset guessing on big answers
        except ValueError:
            kind = response.headers.get("Content-Type", "no content type")
            raise ClientError(
                f"The server answered with {kind} instead of JSON", url=url, status_code=response.status_code,
                hint=f"Is {self.base_url} a TensorFlow Serving REST endpoint (usually port 8501)? "
                "Check the URL.") from None
        if not response.ok:
            message = answer.get("error") if isinstance(answer, dict) else None
            if message is None:
                message = response.content.decode("utf-8", "replace").strip()[:500]
            message = str(message)
            status = response.status_code
            raise ClientError(message or response.reason or "error", url=url, status_code=status,
                               hint=_http_hint(status, message))
        if not isinstance(answer, dict):
            raise ClientError("The server answered with JSON that is not an object", url=url,
                               status_code=response.status_code,
                               hint="Is this a TensorFlow Serving REST endpoint? Check the URL.")
        return answer, response.status_code, latency

    # -- the API -----------------------------------------------------------------------------------

    def model_status(self, model: str, version: Version = None,
                     label: str | None = None) -> list[dict[str, Any]]:
        """``model_version_status`` entries (newest version first, as TF Serving lists them).

        A model with no version at all is a ClientError (404 ``Could not find any versions``).
        """
        url = model_url(self.base_url, model, version, label)
        answer, status, _ = self._call("GET", url)
        statuses = answer.get("model_version_status")
        if not isinstance(statuses, list):
            raise ClientError("The answer has no model_version_status list", url=url, status_code=status,
                               hint="Is this a TensorFlow Serving REST endpoint? Check the URL.")
        return statuses

    def metadata(self, model: str, version: Version = None, label: str | None = None) -> dict[str, Any]:
        """The model's metadata: ``model_spec`` (the version served) and its signature defs."""
        answer, _, _ = self._call("GET", model_url(self.base_url, model, version, label, metadata=True))
        return answer

    def predict(self, model: str, *, instances: Any = None, inputs: Any = None, version: Version = None,
                label: str | None = None, signature_name: str | None = None) -> PredictResult:
        """POST ``:predict`` with exactly one of ``instances`` (row format, answered with
        ``predictions``) or ``inputs`` (columnar, answered with ``outputs``). Numpy arrays are
        accepted and sent as lists."""
        if (instances is None) == (inputs is None):
            raise ValueError("give exactly one of instances= (row format) or inputs= (columnar format)")
        body: dict[str, Any] = {"signature_name": signature_name} if signature_name else {}
        if instances is not None:
            body["instances"] = _jsonable(instances)
        else:
            body["inputs"] = _jsonable(inputs)
        return self._infer(model, "predict", body, version, label)

    def classify(self, model: str, examples: Sequence[dict[str, Any]], *, context: Body = None,
                 version: Version = None, label: str | None = None,
                 signature_name: str | None = None) -> PredictResult:
        """POST ``:classify`` with tf.Example-style ``examples``; ``values`` are the ``results``."""
        body = _example_body(examples, context, signature_name)
        return self._infer(model, "classify", body, version, label)

    def regress(self, model: str, examples: Sequence[dict[str, Any]], *, context: Body = None,
                version: Version = None, label: str | None = None,
                signature_name: str | None = None) -> PredictResult:
        """POST ``:regress`` with tf.Example-style ``examples``; ``values`` are the ``results``."""
        body = _example_body(examples, context, signature_name)
        return self._infer(model, "regress", body, version, label)

    def _infer(self, model: str, verb: str, body: dict[str, Any], version: Version,
               label: str | None) -> PredictResult:
        url = model_url(self.base_url, model, version, label, verb=verb)
        answer, status, latency = self._call("POST", url, body)
        return PredictResult(url=url, request=body, response=answer, status_code=status, latency_s=latency)

    def ping(self) -> float:
        """Round-trip seconds of one cheap request; ClientError if no HTTP answer comes back.

        Any HTTP answer counts (``GET /v1/models`` is a 400 ``Missing model name`` on TF Serving):
        the question is whether a server listens, not whether a model is ready.
        """
        _, latency = self._send("GET", f"{self.base_url}/v1/models")
        return latency

    def is_up(self) -> bool:
        """True when anything answers HTTP at ``base_url``."""
        try:
            self.ping()
        except ClientError:
            return False
        return True

    def is_streamlit(self) -> bool:
        """True when a Streamlit app (such as this dashboard) answers at ``base_url`` instead of a
        model server: its health route ``/_stcore/health`` says ``ok``. Anything answers
        :meth:`ping`, so a URL pointing at the dashboard would otherwise look like a healthy server."""
        try:
            response, _ = self._send("GET", f"{self.base_url}/_stcore/health")
        except ClientError:
            return False
        return response.status_code == 200 and response.text.strip() == "ok"

    def list_models(self) -> list[str]:
        """The names of the models the server serves, from our server's listing extension
        (``GET /v1/models:list``). ClientError when the server offers no listing (TF Serving's
        REST API has none: it answers 400 ``Malformed request``) or cannot be reached."""
        url = self.base_url + MODEL_LIST_PATH
        answer, status, _ = self._call("GET", url)
        models = answer.get("models")
        if not isinstance(models, list):
            raise ClientError("The answer has no models list", url=url, status_code=status,
                              hint="This server offers no model listing: name the model instead.")
        return [str(m["name"]) for m in models if isinstance(m, dict) and "name" in m]

    def predict_body(self, model: str, body: dict[str, Any], *, version: Version = None,
                     label: str | None = None) -> PredictResult:
        """POST an exact ``:predict`` body (as recorded in the request history) again."""
        return self._infer(model, "predict", dict(body), version, label)

    def metrics_text(self, path: str = PROMETHEUS_PATH) -> str:
        """The Prometheus exposition text; ClientError when the server does not export metrics."""
        url = self.base_url + path
        response, _ = self._send("GET", url)
        if not response.ok:
            raise ClientError(
                "The server exports no Prometheus metrics here", url=url, status_code=response.status_code,
                hint="Start the embedded server with --enable_prometheus (the dashboard does), or TF Serving "
                "with a --monitoring_config_file enabling prometheus_config.")
        return response.text


def _jsonable(value: Any) -> Any:
    return value.tolist() if hasattr(value, "tolist") else value


def _example_body(examples: Sequence[dict[str, Any]], context: Body,
                  signature_name: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"signature_name": signature_name} if signature_name else {}
    if context is not None:
        body["context"] = context
    body["examples"] = list(examples)
    return body


# -- reading answers ---------------------------------------------------------------------------------

STATE_WORDS = {"START": "waiting to load (START)", "END": "unloaded (END)"}
"""TF Serving's version states a person would misread, said in words (TF Serving's own in brackets);
the others (LOADING, AVAILABLE, UNLOADING) read as they are."""


def state_words(state: str) -> str:
    """A ``model_version_status`` state as a page shows it: ``END`` -> ``unloaded (END)``."""
    return STATE_WORDS.get(state, state)


def available_versions(statuses: Sequence[dict[str, Any]]) -> list[int]:
    """Versions whose state is ``AVAILABLE`` (they can serve requests), highest first."""
    found = {int(s["version"]) for s in statuses
             if s.get("state") == "AVAILABLE" and str(s.get("version")).isdigit()}
    return sorted(found, reverse=True)


def _signature_defs(metadata: dict[str, Any]) -> dict[str, Any]:
    # TF Serving nests the map twice: metadata.signature_def.signature_def (spec 1.3).
    outer = metadata.get("metadata", {}).get("signature_def", {})
    defs = outer.get("signature_def", outer) if isinstance(outer, dict) else {}
    return defs if isinstance(defs, dict) else {}


def signature_names(metadata: dict[str, Any]) -> list[str]:
    """Callable signatures in the metadata, ``serving_default`` first, the init op left out."""
    names = [n for n in _signature_defs(metadata) if n != INIT_OP_SIGNATURE]
    return sorted(names, key=lambda n: (n != "serving_default", n))


def signature_rows(metadata: dict[str, Any]) -> list[dict[str, str]]:
    """One row per signature input/output: signature, kind, tensor key, dtype, shape, graph name,
    method. Shapes read like ``saved_model_cli``: ``(-1, 2)``, or ``unknown rank``."""
    rows = []
    defs = _signature_defs(metadata)
    for name in signature_names(metadata):
        sig = defs[name]
        for kind in ("inputs", "outputs"):
            for key, info in sorted((sig.get(kind) or {}).items()):
                shape_info = info.get("tensor_shape", {})
                if shape_info.get("unknown_rank"):
                    shape = "unknown rank"
                else:
                    dims = [str(d.get("size", "-1")) for d in shape_info.get("dim", [])]
                    shape = "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"
                rows.append({"signature": name, "kind": kind[:-1], "key": key,
                             "dtype": info.get("dtype", ""), "shape": shape, "name": info.get("name", ""),
                             "method": sig.get("method_name", "")})
    return rows


def served_version(metadata: dict[str, Any]) -> int | None:
    """The version that answered a metadata request (``model_spec.version``), if stated."""
    version = str(metadata.get("model_spec", {}).get("version", ""))
    return int(version) if version.isdigit() else None
