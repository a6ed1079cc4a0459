"""The Predict page's pictures for an image input: the uploader (PNG/JPEG, resized to the signature's
H×W with C channels, scaled to the range the user picks), the preview of exactly what is sent, and
the prefilled example's pictures when nothing is uploaded. Used by the image and mixed editors of
:mod:`dashboard.predict_inputs`."""

from __future__ import annotations

from typing import Any

import numpy as np
import streamlit as st

from dashboard import input_images
from pipeline.client.signatures import FLOAT_DTYPES, TensorSpec

IMAGES_KEY, SCALE_KEY = "predict_images", "predict_image_scale"
"""The example's pictures (set by the page's reset) and the chosen scale."""
UPLOADS_KEY, UPLOADS_ROUND_KEY = "predict_image_files", "predict_image_files_round"


def start_from(example: list[Any] | None) -> None:
    """Start over from the prefilled example's pictures (``None``: the signature has no image
    input), with the scale guessed from their values and the uploader emptied."""
    for key in (IMAGES_KEY, SCALE_KEY):
        st.session_state.pop(key, None)
    forget_uploads()
    if example is None:
        return
    arrays = [np.asarray(v, dtype=np.float64) for v in example]
    st.session_state[IMAGES_KEY] = [(f"example {i + 1}", a) for i, a in enumerate(arrays)]
    st.session_state[SCALE_KEY] = input_images.guess_scale(np.stack(arrays)) if arrays else "0–1"


def uploads_key() -> str:
    """The picture uploader's widget key. A browser keeps a file uploader's files for as long as its
    key lives, so :func:`forget_uploads` moves to a new key to empty it."""
    round_ = st.session_state.get(UPLOADS_ROUND_KEY, 0)
    return UPLOADS_KEY if round_ == 0 else f"{UPLOADS_KEY}_{round_}"


def forget_uploads() -> None:
    """Empty the picture uploader, when it holds files: the pictures shown are the example's again."""
    if not st.session_state.get(uploads_key()):
        return
    st.session_state.pop(uploads_key(), None)
    st.session_state[UPLOADS_ROUND_KEY] = st.session_state.get(UPLOADS_ROUND_KEY, 0) + 1


def image_inputs(spec: TensorSpec, pictures: list[tuple[str, np.ndarray]]) -> list[Any]:
    """The pictures as the input's examples (nested lists; whole numbers for an integer dtype)."""
    arrays = [np.asarray(a, dtype=np.float64) for _, a in pictures]
    if spec.dtype not in FLOAT_DTYPES:
        arrays = [np.round(a) for a in arrays]
    return [a.tolist() for a in arrays]


def pictures(key: str, spec: TensorSpec) -> tuple[list[tuple[str, np.ndarray]], str | None, str]:
    """The pictures one image input holds (uploads, else the prefilled example), previewed: a list
    of (name, array in the chosen range), the first unreadable upload (named with the input) and
    the scale. The one place pictures are read, resized and scaled for the Predict page."""
    _, height, width, channels = spec.shape or (-1, 1, 1, 1)
    scale = st.radio(f"Pixel values sent for `{key}`", list(input_images.SCALES), key=SCALE_KEY,
                     horizontal=True,
                     help="How the model expects its pictures: 0–255 pixels mapped to this range.")
    uploads = st.file_uploader(f"Pictures for `{key}` (PNG or JPEG), resized to {height}×{width} with "
                               f"{channels} channel{'s' if channels != 1 else ''}; one example each",
                               type=["png", "jpg", "jpeg"], accept_multiple_files=True,
                               key=uploads_key())
    problem = None
    pictures = list(st.session_state.get(IMAGES_KEY, []))
    if uploads:
        pictures = []
        for upload in uploads:
            try:
                pictures.append((upload.name, input_images.image_array(upload.getvalue(), height, width,
                                                                       channels, scale)))
            except ValueError as exc:
                problem = problem or f"Input '{key}', {upload.name}: {exc}"
                st.error(f"Input '{key}', {upload.name}: {exc}", icon=":material/image:")
    if pictures:
        st.caption(f"What is sent as `{key}` ({len(pictures)} picture{'s' if len(pictures) != 1 else ''}, "
                   f"values in {scale}, shown at {height}×{width}):")
        shown = pictures[:12]
        st.image([input_images.preview(a, scale) for _, a in shown], caption=[n for n, _ in shown], width=96)
    return pictures, problem, scale
