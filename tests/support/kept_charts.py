"""Reading ``dashboard/kept_chart.py``'s charts out of an AppTest run."""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
from streamlit.testing.v1 import AppTest


def _plain(value: Any) -> Any:
    """``value`` with Plotly's typed arrays (``{"dtype": "f8", "bdata": ...}``) as plain lists."""
    if isinstance(value, dict):
        if set(value) >= {"dtype", "bdata"}:
            array = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
            if "shape" in value:
                array = array.reshape([int(n) for n in str(value["shape"]).split(",")])
            return array.tolist()
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def kept_figures(at: AppTest) -> dict[str, dict[str, Any]]:
    """Every kept Plotly chart on the page, by its key: the Plotly figure (data, layout, config)
    the browser is asked to draw, typed arrays read back as lists."""
    found: dict[str, dict[str, Any]] = {}
    for element in at.get("bidi_component"):
        if element.proto.component_name == "kept_plotly_chart":
            data = json.loads(element.proto.json)
            found[data["key"]] = _plain(json.loads(data["figure"]))
    return found
