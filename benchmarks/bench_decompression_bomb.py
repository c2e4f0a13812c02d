"""Peak memory of reading an x3p whose mask is a PNG bomb: the decoder as it was, and load_scan now.

Run by hand: ``python benchmarks/bench_decompression_bomb.py [side]`` (default 10,000: a
10,000 x 10,000 RGB mask, 300 MB decoded, inside an x3p of about 40 KB). Each reading runs in
its own process and reports its peak resident set (``/usr/bin/time -f %M``). Baseline: a process
that imports the same libraries and reads nothing, so the figures compare what reading adds.
"""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np
import x3pio

REPO = Path(__file__).resolve().parents[1]


def png_bomb(side: int) -> bytes:
    """A valid PNG of ``side`` x ``side`` black RGB pixels, deflated row by row (a few hundred KB)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    packer = zlib.compressobj(9)
    row = b"\x00" + b"\x00\x00\x00" * side
    idat = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def x3p_with_mask(mask: bytes) -> bytes:
    buffer = io.BytesIO()
    x3pio.write(buffer, np.random.default_rng(3).normal(size=(60, 80)) * 1e-6, x_scale=6.25e-6, y_scale=6.25e-6)
    with zipfile.ZipFile(buffer) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    members["bindata/mask.png"] = mask
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, body in members.items():
            archive.writestr(name, body)
    return out.getvalue()


def peak_mb(code: str) -> tuple[float, str]:
    result = subprocess.run(["/usr/bin/time", "-f", "%M", sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    return int(result.stderr.strip().splitlines()[-1]) / 1024, result.stdout.strip()


def main(side: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bomb.x3p"
        path.write_bytes(x3p_with_mask(png_bomb(side)))
        readings = {
            "baseline (imports only)": "import cv2, numpy, x3pio, PIL.Image, zipfile",
            "decoder as it was (cv2.imdecode of the mask)": (
                "import cv2, numpy as np, zipfile\n"
                f"png = zipfile.ZipFile({str(path)!r}).read('bindata/mask.png')\n"
                "print(cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR).shape)"
            ),
            "load_scan now": (
                f"import sys; sys.path.insert(0, {str(REPO)!r})\n"
                "from ballistics.scan import load_scan\n"
                f"try:\n    load_scan({str(path)!r})\nexcept Exception as exc:\n    print(type(exc).__name__)"
            ),
        }
        print(f"x3p of {path.stat().st_size:,} bytes holding a {side:,} x {side:,} mask")
        for label, code in readings.items():
            mb, said = peak_mb(code)
            print(f"{label:46} peak {mb:8.1f} MB   {said}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
