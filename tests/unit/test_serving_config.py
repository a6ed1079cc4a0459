"""The embedded server's models.config (pipeline.store.serving_config): every model folder, labels."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.store import serving_config as sc


def _versions(folder: Path, *numbers: int) -> Path:
    for n in numbers:
        (folder / str(n)).mkdir(parents=True)
    return folder


def test_the_server_config_lists_every_model_folder_and_tf_serving_parses_it(tmp_path):
    from pipeline.serving.model_config import parse_model_config_text

    models = tmp_path / "models"
    _versions(models / "linear_model", 1, 2)
    _versions(models / "other", 1)
    (models / "empty").mkdir()
    path = tmp_path / "run" / "models.config"
    written = sc.write_for_server(path, "linear_model", models / "linear_model")
    assert [m.name for m in written] == ["linear_model", "other"]
    parsed = parse_model_config_text(path.read_text())  # the server's own parser accepts it
    assert [(c.name, c.base_path) for c in parsed] == [("linear_model", (models / "linear_model").resolve()),
                                                        ("other", (models / "other").resolve())]
    assert str(parsed[0].policy) == "latest 2"


def test_labels_are_written_kept_across_restarts_and_removed(tmp_path):
    from pipeline.serving.model_config import parse_model_config_text

    base = _versions(tmp_path / "models" / "linear_model", 1, 2)
    path = tmp_path / "models.config"
    sc.write_for_server(path, "linear_model", base)
    sc.set_label(path, "linear_model", "stable", 1)
    sc.set_label(path, "linear_model", "canary", 2)
    assert sc.labels_of(path, "linear_model") == {"stable": 1, "canary": 2}
    assert parse_model_config_text(path.read_text())[0].labels == {"stable": 1, "canary": 2}
    sc.write_for_server(path, "linear_model", base)  # a restart keeps the labels
    assert sc.labels_of(path, "linear_model") == {"stable": 1, "canary": 2}
    sc.set_label(path, "linear_model", "canary", None)
    assert sc.labels_of(path, "linear_model") == {"stable": 1}


@pytest.mark.parametrize("label", ["", "3", "has space", "x" * 65, "-dash"])
def test_bad_labels_are_refused_with_the_rule(tmp_path, label):
    with pytest.raises(ValueError, match="start with a letter"):
        sc.set_label(tmp_path / "models.config", "linear_model", label, 1)


def test_a_new_model_is_added_to_a_running_servers_config(tmp_path):
    path = tmp_path / "models.config"
    assert not sc.ensure_model(path, "other", tmp_path / "other")  # no config: no embedded server
    sc.write_for_server(path, "linear_model", tmp_path / "linear_model")
    assert sc.ensure_model(path, "other", tmp_path / "other")
    assert not sc.ensure_model(path, "other", tmp_path / "other")
    assert [m.name for m in sc.read(path)] == ["linear_model", "other"]


def test_an_unreadable_config_is_named(tmp_path):
    path = tmp_path / "models.config"
    path.write_text("model_config_list { config { name: ")
    with pytest.raises(ValueError, match="models.config"):
        sc.read(path)
    assert sc.labels_of(path, "linear_model") == {}


def test_a_label_change_keeps_the_fields_it_does_not_touch(tmp_path):
    """A hand-edited config (a logging config, an `all` policy, comments, another layout) keeps
    everything but the label that changed: protobuf reads it, not a subset parser."""
    path = tmp_path / "models.config"
    path.write_text("""# written by hand
model_config_list: {
  config: { name: 'linear_model' base_path: '/models/linear_model' model_platform: 'tensorflow'
            model_version_policy: { all: {} }
            logging_config: { sampling_config: { sampling_rate: 0.25 } } }
  config { name: "other" base_path: "/models/other" }
}
""")
    assert sc.set_label(path, "linear_model", "stable", 3).labels == {"stable": 3}
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    def config_list_on_disk():
        config = text_format.Parse(path.read_text(), model_server_config_pb2.ModelServerConfig())
        return config.model_config_list

    config_list = config_list_on_disk()
    entry = config_list.config[0]
    assert entry.logging_config.sampling_config.sampling_rate == 0.25
    assert entry.model_version_policy.WhichOneof("policy_choice") == "all"
    assert dict(entry.version_labels) == {"stable": 3}
    assert [e.name for e in config_list.config] == ["linear_model", "other"]
    sc.write_for_server(path, "linear_model", tmp_path / "linear_model")  # a restart keeps it too
    entry = config_list_on_disk().config[0]
    assert entry.logging_config.sampling_config.sampling_rate == 0.25
    assert dict(entry.version_labels) == {"stable": 3}


def test_reading_the_config_never_imports_tensorflow():
    """The dashboard reads and writes models.config; TF Serving's config message must not pull
    TensorFlow (3 s of import) into its process."""
    import subprocess
    import sys

    code = ("import sys\nfrom pipeline.store import serving_config\n"
            "serving_config.parse('model_config_list { config { name: \"m\" base_path: \"/m\" } }')\n"
            "print(sorted(m for m in sys.modules if m == 'tensorflow' or m.startswith('tensorflow.')))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[2], check=True)
    assert done.stdout.strip() == "[]"


def test_every_model_of_the_embedded_server_logs_its_requests_under_the_run_folder(tmp_path):
    """A model without a logging_config gets one (every request, files under <run>/traffic/<model>/);
    one the user wrote is kept; the server's own parser takes both."""
    from pipeline.serving.model_config import LoggingConfig, parse_model_config_text

    models = tmp_path / "models"
    _versions(models / "linear_model", 1)
    _versions(models / "other", 1)
    path = tmp_path / "run" / "models.config"
    path.parent.mkdir()
    path.write_text('model_config_list { config { name: "other" base_path: "/m/other" '
                    'logging_config { log_collector_config { type: "file" filename_prefix: "/logs/other" } '
                    'sampling_config { sampling_rate: 0.1 } } } }')
    sc.write_for_server(path, "linear_model", models / "linear_model")
    assert sc.ensure_model(path, "third", tmp_path / "third")
    parsed = {c.name: c.logging for c in parse_model_config_text(path.read_text())}
    run = (tmp_path / "run").resolve()
    assert parsed == {
        "linear_model": LoggingConfig("file", str(run / "traffic" / "linear_model" / "requests"), 1.0),
        "other": LoggingConfig("file", "/logs/other", 0.1),
        "third": LoggingConfig("file", str(run / "traffic" / "third" / "requests"), 1.0)}
    assert sc.logging_prefix(path, "third") == str(run / "traffic" / "third" / "requests")
    assert sc.logging_prefix(path, "nobody") is None
    assert sc.logging_prefix(tmp_path / "missing.config", "third") is None
    sc.write_for_server(path, "linear_model", models / "linear_model", log_requests=False)  # kept as is
    assert parse_model_config_text(path.read_text())[0].logging == parsed["linear_model"]
