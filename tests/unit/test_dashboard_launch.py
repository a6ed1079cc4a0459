"""Launch checks of the dashboard (dashboard/launch.py): pure functions over Streamlit options."""

from __future__ import annotations

from dashboard.launch import (
    apply_runtime_fixes,
    launch_problems,
    points_at_dashboard,
    refusal_text,
    safe_command,
)

SAFE = {"server.address": "127.0.0.1", "server.port": 8502, "browser.gatherUsageStats": False}


def test_the_checkout_settings_are_safe() -> None:
    assert launch_problems(SAFE, serving_port=8501) == []
    assert launch_problems({**SAFE, "server.address": "::1"}, 8501) == []
    assert launch_problems({**SAFE, "server.address": "localhost"}, 8501) == []


def test_streamlit_defaults_are_refused_each_for_its_reason() -> None:
    defaults = {"server.address": None, "server.port": 8501, "browser.gatherUsageStats": True}
    problems = launch_problems(defaults, serving_port=8501)
    assert [p.option for p in problems] == ["server.address", "browser.gatherUsageStats", "server.port"]
    text = refusal_text(problems)
    assert "every interface" in text and "usage statistics" in text and "port 8501" in text
    assert safe_command() in text and "make run" in text
    open_address = launch_problems({**SAFE, "server.address": "0.0.0.0"}, 8501)
    assert [p.option for p in open_address] == ["server.address"]


def test_client_options_are_fixed_at_runtime() -> None:
    options = {"client.showErrorDetails": "full", "client.toolbarMode": "minimal"}
    changed = apply_runtime_fixes(options.get, options.__setitem__)
    assert changed == ["client.showErrorDetails"] and options["client.showErrorDetails"] == "none"
    assert apply_runtime_fixes(options.get, options.__setitem__) == []


def test_a_serving_url_on_the_dashboard_port_is_the_dashboard() -> None:
    assert points_at_dashboard("http://127.0.0.1:8502", 8502)
    assert points_at_dashboard("http://localhost:8502/", 8502)
    assert not points_at_dashboard("http://127.0.0.1:8501", 8502)
    assert not points_at_dashboard("http://models.example.com:8502", 8502)


def test_an_open_address_is_allowed_only_when_asked_for_explicitly() -> None:
    open_address = {**SAFE, "server.address": "0.0.0.0"}
    assert launch_problems(open_address, 8501, allow_open_address=True) == []
    defaults = {**SAFE, "server.address": None}  # Streamlit's default: not a choice anyone made
    assert [p.option for p in launch_problems(defaults, 8501, allow_open_address=True)] == ["server.address"]
