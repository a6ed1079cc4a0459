"""Predict on a model whose examples are a picture and a table row together (``image_mixed``:
``image`` float32 [-1, 4, 4, 3], ``gain`` float32 [-1], ``tag`` string [-1]), under AppTest against
a real model server started here on loopback: the page opens with the version's warm-up example and
Send answers it at once; picture i goes with table row i, and a different count of pictures and
rows is refused naming both inputs; Reset puts back the example's picture and row; bad cells and
bad pictures name their input; what-if sweeps a table column or a region's brightness, from the
combined editor and from the JSON editor, and the real model's answers move as its formula says
(brightness = gain * mean(image) + 1 for tag plus).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from dashboard import input_images, what_if
from tests.server.harness import REPO, Server, start_server
from tests.support import explore_models

PAGE = str(REPO / "dashboard" / "views" / "predict.py")
MODEL = "image_mixed"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    """``image_mixed`` built in a child process (TensorFlow stays out of this one) and served by
    ``python -m pipeline.serving --model_config_file``, as a team's server would serve it."""
    root = tmp_path_factory.mktemp("mixed-models")
    built = subprocess.run([sys.executable, "-m", "tests.support.explore_models", str(root), MODEL], cwd=REPO,
                           capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-2000:]
    config = root / "models.config"
    config.write_text(explore_models.models_config(root, (MODEL,)))
    server = start_server([f"--model_config_file={config}"], root / "server.log")
    try:
        yield server, root
    finally:
        server.stop()


@pytest.fixture
def page(served: tuple[Server, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> AppTest:
    """The Predict page on ``?model=image_mixed``, pointed at that server and its models folder."""
    server, root = served
    monkeypatch.setenv("SERVING_URL", server.url)
    monkeypatch.setenv("MODELS_DIR", str(root))
    monkeypatch.setenv("SERVING_RUN_DIR", str(tmp_path / "run"))
    monkeypatch.delenv("MODEL_BASE_PATH", raising=False)
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.query_params["model"] = MODEL
    at.run()
    assert not at.exception, at.exception
    return at


def texts(elements) -> list[str]:
    return [e.value for e in elements]


def column(at: AppTest, name: str) -> list:
    return next(d.value[name].tolist() for d in at.dataframe if name in d.value.columns)


def swept_outputs(at: AppTest) -> tuple[str, np.ndarray, dict]:
    label, swept, answer = at.session_state[what_if.RESULT_KEY]
    return label, np.asarray(swept), answer.outputs


def test_the_warmup_example_is_a_picture_and_a_row_and_send_answers_at_once(page: AppTest) -> None:
    at = page
    assert any("started from version 1's warm-up requests" in c for c in texts(at.caption))
    assert at.data_editor[0].value.to_dict("list") == {"gain": [3.0], "tag": ["plus"]}
    assert len(at.get("image")) == 1  # the warm-up picture, previewed
    assert not at.button(key="predict_send").disabled
    at.button(key="predict_send").click().run()
    assert not at.exception and not at.error, texts(at.error)
    assert column(at, "brightness") == [pytest.approx(2.0)]  # 3 · mean(red) + 1, from the real model
    assert column(at, "argmax") == ["0"]
    response = next(c for c in texts(at.code) if '"predictions"' in c)
    assert '"brightness": 2.0' in response


def test_pictures_go_with_rows_and_a_different_count_is_refused_naming_both(page: AppTest) -> None:
    at = page
    uploader = at.file_uploader(key="predict_image_files")
    uploader.upload("red.png", input_images.solid_png((255, 0, 0)), "image/png")
    uploader.upload("blue.png", input_images.solid_png((0, 0, 255)), "image/png").run()
    problem = ("Input 'image' has 2 pictures but the table ('gain', 'tag') has 1 row: every example needs "
               "one of each.")
    assert any(problem in e for e in texts(at.error))
    assert at.button(key="predict_send").disabled
    at.number_input(key="predict_random_count").set_value(1)
    at.button(key="predict_add_random").click().run()
    assert not at.error, texts(at.error)
    at.button(key="predict_send").click().run()
    assert not at.exception and not at.error, texts(at.error)
    assert column(at, "argmax") == ["0", "2"]  # picture 1 is red, picture 2 blue
    gains = at.data_editor[0].value["gain"].tolist()
    plus = [1.0 if t == "plus" else 0.0 for t in at.data_editor[0].value["tag"].tolist()]
    assert column(at, "brightness") == pytest.approx([g / 3 + p for g, p in zip(gains, plus, strict=True)],
                                                     abs=1e-5)


def test_reset_to_the_example_puts_back_its_picture_as_well_as_its_row(page: AppTest) -> None:
    at = page
    uploader = at.file_uploader(key="predict_image_files")
    uploader.upload("red.png", input_images.solid_png((255, 0, 0)), "image/png")
    uploader.upload("blue.png", input_images.solid_png((0, 0, 255)), "image/png").run()
    assert at.button(key="predict_send").disabled  # 2 pictures, 1 row
    at.button(key="predict_reset").click().run()
    assert not at.exception and not at.error, texts(at.error)
    assert at.data_editor[0].value.to_dict("list") == {"gain": [3.0], "tag": ["plus"]}
    assert [c for c in texts(at.caption) if c.startswith("What is sent as `image` (1 picture")]
    assert not at.button(key="predict_send").disabled
    at.button(key="predict_send").click().run()
    assert column(at, "brightness") == [pytest.approx(2.0)]  # the warm-up picture again, not red or blue


def test_bad_cells_and_bad_pictures_name_their_input_and_block_send(page: AppTest) -> None:
    at = page
    at.session_state["predict_editor"] = {"edited_rows": {"0": {"gain": None}}, "added_rows": [],
                                          "deleted_rows": []}
    at.run()
    assert any("Row 1, column gain: empty" in e for e in texts(at.error))
    assert at.button(key="predict_send").disabled
    at.session_state["predict_editor"] = {"edited_rows": {}, "added_rows": [], "deleted_rows": []}
    at.file_uploader(key="predict_image_files").upload("notes.png", b"not a picture", "image/png").run()
    assert any(e.startswith("Input 'image', notes.png: not a PNG or JPEG picture") for e in texts(at.error))
    assert at.button(key="predict_send").disabled


def test_what_if_sweeps_a_table_column_or_a_region_of_the_picture(page: AppTest) -> None:
    at = page
    assert at.selectbox(key="what_if_column").value == "gain"
    at.button(key="what_if_send").click().run()
    assert not at.exception and not at.error, texts(at.error)
    label, swept, outputs = swept_outputs(at)
    assert label == "gain" and len(swept) == 25
    assert outputs["brightness"] == pytest.approx(swept / 3 + 1, abs=1e-5)  # the red picture's mean is 1/3
    at.radio(key="what_if_target").set_value("the brightness of a region of `image`").run()
    at.button(key="what_if_send").click().run()
    assert not at.exception and not at.error, texts(at.error)
    label, swept, outputs = swept_outputs(at)
    assert label == "image brightness of a region [0:4, 0:4]" and list(swept[[0, -1]]) == [0.0, 1.0]
    assert outputs["brightness"] == pytest.approx(3 * swept + 1, abs=1e-5)  # the whole picture at v: mean v
    assert np.allclose(outputs["probabilities"], 1 / 3, atol=1e-5)  # grey: no colour wins
    assert any(c.key == "what_if_chart" for c in at.get("plotly_chart"))


def test_what_if_is_offered_from_the_json_editor(page: AppTest) -> None:
    at = page
    at.toggle(key="predict_json_mode").set_value(True).run()
    assert at.text_area(key="predict_json").value.startswith('{"instances": [{"gain": 3.0, "image": ')
    assert at.selectbox(key="what_if_input").options == ["gain", "image"]
    at.button(key="what_if_send").click().run()
    assert not at.exception and not at.error, texts(at.error)
    label, swept, outputs = swept_outputs(at)
    assert label == "gain" and outputs["brightness"] == pytest.approx(swept / 3 + 1, abs=1e-5)
    at.selectbox(key="what_if_input").set_value("image").run()
    at.slider(key="what_if_cols").set_value((0, 2)).run()
    at.button(key="what_if_send").click().run()
    label, swept, outputs = swept_outputs(at)
    assert label == "image brightness of a region [0:4, 0:2]"
    # half the picture at v (all channels), the other half red: mean (v + 1/3) / 2
    assert outputs["brightness"] == pytest.approx(3 * (swept + 1 / 3) / 2 + 1, abs=1e-5)
