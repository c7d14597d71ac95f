"""Page images of a PDF, rendered with pypdfium2 (for the model reader, ``--pdf-reader``).

Pages are rendered in greyscale so that the longer side is :data:`LONG_SIDE` pixels (the
size OpenAI and Anthropic take without scaling down further) and written as PNG here, with
zlib: no imaging library is needed.
"""

from __future__ import annotations

import struct
import zlib

from papercoder.errors import PaperError

LONG_SIDE = 1568
"""Pixels on the longer side of a rendered page: small sub- and superscripts stay legible."""
MAX_SCALE = 4.0


def png_grey(width: int, height: int, stride: int, pixels: bytes) -> bytes:
    """An 8-bit greyscale PNG of ``pixels`` (rows of ``stride`` bytes)."""
    rows = b"".join(b"\x00" + pixels[y * stride:y * stride + width] for y in range(height))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + \
            struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) +
            chunk(b"IDAT", zlib.compress(rows, 6)) + chunk(b"IEND", b""))


def render_pages(data: bytes, pages: list[int], *, name: str = "the PDF",
                 long_side: int = LONG_SIDE) -> dict[int, bytes]:
    """PNG images of the given 0-based pages of a PDF."""
    try:
        import pypdfium2 as pdfium
    except ImportError:
        raise PaperError("Rendering pages needs pypdfium2, which is not installed; run "
                         "`pip install pypdfium2` (a papercoder dependency).") from None
    out: dict[int, bytes] = {}
    try:
        doc = pdfium.PdfDocument(data)
    except Exception as e:  # noqa: BLE001 - PdfiumError and friends on a damaged file
        raise PaperError(f"{name} could not be opened for rendering ({type(e).__name__}); "
                         "use --pdf-reader default.") from None
    try:
        for i in pages:
            if not 0 <= i < len(doc):
                continue
            page = doc[i]
            try:
                w, h = page.get_size()
                scale = min(MAX_SCALE, long_side / max(w, h, 1.0))
                bitmap = page.render(scale=scale, grayscale=True)
                try:
                    if bitmap.n_channels != 1:
                        raise PaperError(f"page {i + 1} of {name} did not render in greyscale")
                    out[i] = png_grey(bitmap.width, bitmap.height, bitmap.stride,
                                      bytes(bitmap.buffer))
                finally:
                    bitmap.close()
            finally:
                page.close()
    except PaperError:
        raise
    except Exception as e:  # noqa: BLE001 - pdfium errors on a damaged page
        raise PaperError(f"{name} could not be rendered ({type(e).__name__}); use "
                         "--pdf-reader default.") from None
    finally:
        doc.close()
    return out
