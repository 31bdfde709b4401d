"""Images as the readers and the app open them: decoded to RGB the same way everywhere.

``load_image`` opens a path or encoded bytes (EXIF rotation applied, decompression bombs
refused) and raises `DataFormatError` naming the file; ``to_rgb`` converts any Pillow mode
without turning transparency black or clipping 16-bit grey; ``decode_base64`` reads the
base64 (or ``data:`` URL) images that CCRK, CCLM and WIT rows carry inline.
"""

from __future__ import annotations

import base64
import binascii
import io
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from ccr_demo.data.errors import DataFormatError

_EXIF_ORIENTATION = 0x0112


def decode_base64(text: Any, at: str) -> bytes:
    """The bytes of a base64 image (plain or a ``data:`` URL), or DataFormatError naming ``at``."""
    if not isinstance(text, str) or not text:
        raise DataFormatError(f"{at}: base64 image is not a non-empty string")
    if text.startswith("data:"):  # data URL: "data:image/png;base64,...."
        text = text.partition(",")[2]
    try:
        return base64.b64decode(text)
    except (binascii.Error, ValueError) as e:
        raise DataFormatError(f"{at}: invalid base64 image ({e})") from None


def to_rgb(im: Image.Image) -> Image.Image:
    """Convert any Pillow mode to RGB without the usual surprises.

    Alpha is composited on white (a plain convert turns transparent pixels black), and
    16/32-bit grey is rescaled (a plain convert clips it to white).
    """
    if im.mode == "RGB":
        return im
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode.startswith("I") or im.mode == "F":
        a = np.asarray(im, dtype=np.float32)
        peak = float(a.max()) if a.size else 0.0
        if im.mode.startswith("I;16") or (im.mode == "I" and peak > 255):
            a = a / 257.0
        elif im.mode == "F" and peak <= 1.0:
            a = a * 255.0
        im = Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "L")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        im = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return im.convert("RGB")


def load_image(source: str | Path | bytes | bytearray | memoryview, *, name: str | None = None,
               max_pixels: int | None = None) -> Image.Image:
    """Open a path or encoded bytes as an RGB image, or raise DataFormatError naming it.

    ``max_pixels`` guards against decompression bombs (default: ``Image.MAX_IMAGE_PIXELS``;
    Pillow's own limit still applies, the smaller wins). Truncated files are errors unless
    the caller has set ``ImageFile.LOAD_TRUNCATED_IMAGES``.
    """
    is_path = isinstance(source, (str, Path))
    label = name or (str(source) if is_path else "image bytes")
    limit = Image.MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    try:
        fp = source if is_path else io.BytesIO(bytes(source))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # checked below
            im = Image.open(fp)
        w, h = im.size
        if limit is not None and w * h > limit:
            raise DataFormatError(
                f"{label}: image is {w}x{h} = {w * h} pixels, over the limit of {limit} "
                "(decompression-bomb guard; raise max_pixels if the file is trusted)")
        im.load()
        if im.getexif().get(_EXIF_ORIENTATION, 1) != 1:  # camera photos stored rotated
            im = ImageOps.exif_transpose(im)
        return to_rgb(im)
    except DataFormatError:
        raise
    except FileNotFoundError:
        raise DataFormatError(f"{label}: image file not found") from None
    except Image.DecompressionBombError as e:
        raise DataFormatError(f"{label}: decompression-bomb guard: {e}") from None
    except UnidentifiedImageError:
        raise DataFormatError(f"{label}: not an image file (Pillow cannot identify it)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        hint = "" if ImageFile.LOAD_TRUNCATED_IMAGES else " (truncated or corrupt)"
        raise DataFormatError(f"{label}: cannot decode image{hint}: {e}") from None
