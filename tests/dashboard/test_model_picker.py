"""The sidebar's model picker under AppTest: a link's ``?model=NAME`` opens that model (even one the
dashboard never saw), a typed name is opened and remembered, and the list gathers the server's
listing, the embedded server's models.config and the user's models.config."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard import model_sources
from pipeline.client.errors import ClientError
from pipeline.client.rest import ServingClient

PORTS = itertools.count(47100)


def page() -> None:
    import streamlit as st

    from dashboard import model_picker, session

    model = model_picker.render()
    st.markdown(f"model={model} base={session.base_path().name}")


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    run_dir = tmp_path / "run"
    monkeypatch.setenv("SERVING_RUN_DIR", str(run_dir))
    monkeypatch.setenv("MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.delenv("MODEL_BASE_PATH", raising=False)
    monkeypatch.delenv("MODEL_CONFIG_FILE", raising=False)
    # a fresh URL per test: the server's listing is cached per URL
    monkeypatch.setenv("SERVING_URL", f"http://127.0.0.1:{next(PORTS)}")
    monkeypatch.setattr(ServingClient, "list_models", lambda self: (_ for _ in ()).throw(
        ClientError("Malformed request: GET /v1/models:list", url=self.base_url, status_code=400)))
    return run_dir


def run(query: dict[str, str] | None = None) -> AppTest:
    at = AppTest.from_function(page, default_timeout=30)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, at.exception
    return at


def type_name(at: AppTest, name: str) -> AppTest:
    """Type a name into the picker that is not among its options, as the browser sends it."""
    picker = at.selectbox(key="model_picker")
    picker.options.append(name)  # AppTest only selects listed options; the browser sends the text
    return picker.set_value(name).run()


def captions(at: AppTest) -> list[str]:
    return [c.value for c in at.caption]


def shown(at: AppTest) -> str:
    return next(m.value for m in at.markdown if m.value.startswith("model="))


def test_the_default_model_without_a_link(env: Path) -> None:
    at = run()
    assert shown(at) == "model=linear_model base=linear_model"
    assert at.selectbox(key="model_picker").options == ["linear_model"]


def test_a_link_opens_a_model_the_dashboard_never_saw(env: Path) -> None:
    at = run({"model": "half_plus_two"})
    assert shown(at) == "model=half_plus_two base=half_plus_two"
    assert at.selectbox(key="model_picker").value == "half_plus_two"
    assert "half_plus_two" in at.selectbox(key="model_picker").options


def test_a_link_with_a_bad_name_keeps_the_model_and_says_why(env: Path) -> None:
    at = run({"model": "../etc"})
    assert shown(at) == "model=linear_model base=linear_model"
    assert any("The link's model was not opened" in e.value for e in at.error)


def test_a_typed_name_is_opened_put_in_the_url_and_remembered(env: Path) -> None:
    at = run()
    type_name(at, "text_model")
    assert shown(at) == "model=text_model base=text_model"
    assert at.query_params["model"] == "text_model"
    assert model_sources.remembered(env) == ["text_model"]
    assert "`text_model`: typed here before" in captions(at)  # the whole name, under the box
    fresh = run()  # a new session offers it
    assert "text_model" in fresh.selectbox(key="model_picker").options


def test_models_from_the_server_and_both_models_config_files(env: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ServingClient, "list_models", lambda self: ["image_classifier", "linear_model"])
    env.mkdir(parents=True)
    (env / "models.config").write_text('model_config_list { config { name: "linear_model" base_path: "/m" } '
                                       'config { name: "local_one" base_path: "/l" } }')
    theirs = tmp_path / "theirs.config"
    theirs.write_text('model_config_list { config { name: "multi_io" base_path: "/models/multi_io" } }')
    monkeypatch.setenv("MODEL_CONFIG_FILE", str(theirs))
    at = run()
    options = at.selectbox(key="model_picker").options
    assert options == ["linear_model", "image_classifier", "local_one", "multi_io"]
    assert "`linear_model`: listed by the server; in the embedded server's models.config" in captions(at)
    at.text_input(key="model_picker_config_input").set_value(str(tmp_path / "nope.config")).run()
    assert any("does not exist" in e.value for e in at.error)
    assert "multi_io" not in at.selectbox(key="model_picker").options
