"""Compare two versions (or labels): the same request sent to both, every output side by side with
the difference of numeric ones; for the tutorial's model each version's answers against its own
truth (one true column when they share it, one per version and a note when not)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import charts, messages, output_charts, predict_requests, predict_tutorial, session, tutorial
from dashboard.predict_requests import Request
from pipeline.client import local_server
from pipeline.client.errors import ClientError
from pipeline.store import serving_config

COMPARE_KEY = "predict_compare"
LABEL_PREFIX = "label "


def known_labels() -> list[str]:
    """The model's labels in the embedded server's models.config (a remote server's are unknown)."""
    path = session.settings().run_dir / local_server.MODELS_CONFIG_NAME
    return sorted(serving_config.labels_of(path, session.model_name()))


def _target(choice: str | int) -> dict[str, Any]:
    if isinstance(choice, str) and choice.startswith(LABEL_PREFIX):
        return {"label": choice[len(LABEL_PREFIX):]}
    return {"version": int(choice)}


def _name(choice: str | int) -> str:
    return choice if isinstance(choice, str) else f"version {choice}"


def _one_per_example(values: Any, rows: int) -> np.ndarray | None:
    array = output_charts.as_array(values)
    if array is None or len(array) != rows or array.ndim > 2 or (array.ndim == 2 and array.shape[1] != 1):
        return None
    return array.reshape(rows)


def render_tutorial(outcome: dict[str, Any]) -> None:
    """Two versions of the tutorial's model against their truths."""
    x = np.asarray(next(iter(outcome["request"].inputs.values())), dtype=np.float64)
    answers = outcome["answers"]
    predicted = {name: np.asarray(tutorial.prediction_values(next(iter(a.outputs.values())), len(x)))
                 for name, a in answers.items()}
    truths, same, note = predict_tutorial.compare_truths(x, {name: a.version for name, a in answers.items()})
    shown = predict_tutorial.sample_index(len(x))
    first = next(iter(truths.values()))
    figure_truth = first[shown] if same else {k: t[shown] for k, t in truths.items()}
    st.plotly_chart(charts.compare_versions_figure(figure_truth, {k: p[shown] for k, p in predicted.items()}),
                    key="predict_chart_compare")
    st.caption(note)
    table = pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1]})
    if same:
        table["true (x·w0 + b0)"] = first
    for name, values in predicted.items():
        if not same:
            table[f"true for {name}"] = truths[name]
        table[name] = values
    (la, pa), (lb, pb) = predicted.items()
    table[f"{lb} − {la}"] = pb - pa
    st.dataframe(table, hide_index=True, key="predict_compare_table")


def render_generic(outcome: dict[str, Any]) -> None:
    """Every output of two answers side by side, with the difference of numeric ones."""
    answers = outcome["answers"]
    rows = outcome["request"].rows
    (la, a), (lb, b) = answers.items()
    table = pd.DataFrame({"example": np.arange(1, rows + 1)}) if rows else pd.DataFrame()
    for name in dict.fromkeys([*a.outputs, *b.outputs]):
        left, right = _one_per_example(a.outputs.get(name), rows), _one_per_example(b.outputs.get(name), rows)
        if left is not None and right is not None:
            table[f"{name} ({la})"], table[f"{name} ({lb})"] = left, right
            table[f"{name}: {lb} − {la}"] = right - left
        else:
            for label, answer in ((la, a), (lb, b)):
                values = answer.outputs.get(name)
                table[f"{name} ({label})"] = [str(v) for v in values] if isinstance(values, list) and len(
                    values) == rows else str(values)
    st.dataframe(table, hide_index=True, key="predict_compare_table")
    numeric = {f"{name} ({label})": _one_per_example(answer.outputs.get(name), rows)
               for label, answer in answers.items() for name in answer.outputs}
    numeric = {k: v for k, v in numeric.items() if v is not None}
    if numeric and rows > 1:
        st.plotly_chart(output_charts.values_figure(np.arange(1, rows + 1), numeric, "example", "value"),
                        key="predict_chart_compare")


def render(versions: list[int], request: Request | None, tutorial_model: bool, hint: str) -> None:
    """The same request sent to two versions or labels, compared."""
    st.subheader("Compare two versions")
    labels = [f"{LABEL_PREFIX}{name}" for name in known_labels()]
    choices: list[str | int] = [*versions, *labels]
    if len(choices) < 2:
        st.info(hint)
        return
    a_col, b_col, go_col = st.columns([2, 2, 2], vertical_alignment="bottom")
    first = a_col.selectbox("First", choices, index=1, key="compare_a", format_func=_name)
    second = b_col.selectbox("Second", choices, index=0, key="compare_b", format_func=_name)
    if go_col.button("Compare", key="predict_compare_send", disabled=request is None or first == second,
                     icon=":material/compare:"):
        answers = {}
        try:
            for choice in (first, second):
                sent = replace(request, target=_target(choice))  # type: ignore[arg-type]
                answers[_name(choice)] = predict_requests.send(sent)
        except ClientError as exc:
            st.session_state.pop(COMPARE_KEY, None)
            messages.show_serving_error(exc)
        except ValueError as exc:
            st.session_state.pop(COMPARE_KEY, None)
            st.warning(f"The server answered, but not as the signature says: {exc}")
        else:
            st.session_state[COMPARE_KEY] = {"request": request, "answers": answers,
                                             "tutorial": tutorial_model}
    outcome = st.session_state.get(COMPARE_KEY)
    if not outcome:
        return
    if outcome["tutorial"]:
        render_tutorial(outcome)
    else:
        render_generic(outcome)
    st.caption(" · ".join(f"{name}{f' (version {a.version})' if a.version and 'label' in name else ''}: "
                          f"{a.result.latency_s * 1000:.1f} ms" for name, a in outcome["answers"].items()))
