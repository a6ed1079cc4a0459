"""Pictures as an image model's input: decode a PNG/JPEG, resize it to the signature's H×W with C
channels and scale its values to the range the model expects; and back, for a preview of exactly
what is sent. Pure functions (Pillow, numpy), no Streamlit."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, UnidentifiedImageError

SCALES = {"0–1": (0.0, 1.0), "0–255": (0.0, 255.0), "−1–1": (-1.0, 1.0)}
"""The value ranges a picture's 0–255 pixels can be mapped to (the model's preprocessing)."""
MAX_PIXELS = 40_000_000
"""Larger pictures are refused before they are decoded (a decompression bomb costs memory)."""
MODES = {1: "L", 3: "RGB", 4: "RGBA"}


def image_array(data: bytes, height: int, width: int, channels: int, scale: str) -> np.ndarray:
    """The picture in ``data`` as a float ``(height, width, channels)`` array in the ``scale``
    range (a key of :data:`SCALES`), resized with bilinear filtering. ``ValueError`` with a
    readable reason when it is not a picture Pillow reads, or too large."""
    if channels not in MODES:
        raise ValueError(f"{channels} channels: a picture has 1 (grey), 3 (RGB) or 4 (RGBA)")
    try:
        with Image.open(io.BytesIO(data)) as picture:
            if picture.width * picture.height > MAX_PIXELS:
                raise ValueError(f"the picture has {picture.width}×{picture.height} pixels; "
                                 f"at most {MAX_PIXELS:,} are read")
            converted = picture.convert(MODES[channels]).resize((width, height), Image.Resampling.BILINEAR)
            pixels = np.asarray(converted, dtype=np.float64)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise ValueError(f"not a PNG or JPEG picture Pillow can read ({type(exc).__name__})") from None
    pixels = pixels.reshape(height, width, channels)
    low, high = SCALES[scale]
    return low + pixels / 255.0 * (high - low)


def preview(array: np.ndarray, scale: str) -> np.ndarray:
    """An ``(H, W, C)`` input in the ``scale`` range as 0–255 pixels to show (values outside the
    range clipped; one channel shown grey)."""
    low, high = SCALES[scale]
    pixels = np.clip((np.asarray(array, dtype=np.float64) - low) / (high - low), 0.0, 1.0) * 255.0
    pixels = pixels.round().astype(np.uint8)
    return pixels[..., 0] if pixels.ndim == 3 and pixels.shape[-1] == 1 else pixels


def guess_scale(values: np.ndarray) -> str:
    """The range an example's values fit best (a warm-up image tells how the model is fed)."""
    array = np.asarray(values, dtype=np.float64)
    if array.size and array.min() < 0:
        return "−1–1"
    if array.size and array.max() > 1.0:
        return "0–255"
    return "0–1"


def solid_png(color: tuple[int, ...], size: int = 16) -> bytes:
    """A PNG of one colour (RGB or grey), for examples and tests."""
    mode = "L" if len(color) == 1 else "RGB"
    out = io.BytesIO()
    Image.new(mode, (size, size), color[0] if mode == "L" else color).save(out, format="PNG")
    return out.getvalue()
