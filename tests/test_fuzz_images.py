"""Seeded fuzzing of jtex.image.load: damaged files end in a JtexError, nothing else.

Small PNG, JPEG, GIF, BMP, TIFF and WebP files in several modes are damaged
by seeded mutations (bit flips, byte edits, truncations, size or length
fields set to extremes, PNG chunk lengths changed, bytes cut out or put in).
A separate Python process loads each, at full size and shrunk, so a crash
or a hang in a codec fails the test instead of the test run. The contract:
only JtexError escapes, with a one-line message naming the file; anything
that loads is a finite float32 (H, W, 3) array in [0, 1]; and a PNG that
loads has exactly its undamaged pixels (CRCs catch every change to them).
"""

import io
import json
import os
import struct
import subprocess
import sys

import numpy as np
from PIL import Image

from jtex import image

from conftest import ROOT

MUTANTS = 600  # files, each loaded twice
SEED = 20240917


def seed_files() -> dict[str, bytes]:
    """Undamaged files, small (16 x 12), in the formats and modes load() reads."""
    rng = np.random.default_rng(0)
    rgb = Image.fromarray((rng.random((12, 16, 3)) * 255).astype(np.uint8))
    rgba = Image.fromarray((rng.random((12, 16, 4)) * 255).astype(np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6
    files = {
        "rgb16.png": image._encode_png16((rng.random((12, 16, 3)) * 65535).astype(np.uint16)),
        "la16.png": image._encode_png16((rng.random((12, 16, 2)) * 65535).astype(np.uint16)),
    }
    cases = [
        ("rgb.png", rgb, "PNG", {}),
        ("rgba.png", rgba, "PNG", {}),
        ("p.png", rgb.convert("P"), "PNG", {"transparency": 3}),
        ("exif.png", rgb.convert("L"), "PNG", {"exif": exif}),
        ("g16.png", Image.fromarray((rng.random((12, 16)) * 65535).astype(np.uint16)), "PNG", {}),
        ("rgb.jpg", rgb, "JPEG", {"quality": 90}),
        ("progressive.jpg", rgb, "JPEG", {"progressive": True, "exif": exif}),
        ("cmyk.jpg", rgb.convert("CMYK"), "JPEG", {}),
        ("rgb.gif", rgb, "GIF", {}),
        ("anim.gif", rgb, "GIF", {"save_all": True, "append_images": [rgb.rotate(90)]}),
        ("rgb.bmp", rgb, "BMP", {}),
        ("p.bmp", rgb.convert("P"), "BMP", {}),
        ("rgba.bmp", rgba, "BMP", {}),
        ("rgb.tif", rgb, "TIFF", {}),
        ("deflate.tif", rgba, "TIFF", {"compression": "tiff_deflate"}),
        ("lzw.tif", rgb, "TIFF", {"compression": "tiff_lzw"}),
        ("jpeg.tif", rgb, "TIFF", {"compression": "jpeg"}),
        ("f.tif", Image.fromarray(rng.random((12, 16)).astype(np.float32)), "TIFF", {}),
        ("lossy.webp", rgb, "WEBP", {"quality": 80}),
        ("lossless.webp", rgba, "WEBP", {"lossless": True}),
    ]
    for name, im, fmt, options in cases:
        buffer = io.BytesIO()
        im.save(buffer, format=fmt, **options)
        files[name] = buffer.getvalue()
    return files


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """One seeded random damage to a file's bytes."""
    data = bytearray(data)
    kind = rng.integers(6)
    if kind == 0:  # flip 1 to 4 bits
        for _ in range(rng.integers(1, 5)):
            data[rng.integers(len(data))] ^= 1 << rng.integers(8)
    elif kind == 1:  # cut the file short
        data = data[: rng.integers(1, len(data))]
    elif kind == 2:  # overwrite 1 to 3 bytes
        for _ in range(rng.integers(1, 4)):
            data[rng.integers(len(data))] = rng.integers(256)
    elif kind == 3:  # a 2- or 4-byte field (a size, a count, an offset) set to an extreme
        at, width = rng.integers(len(data) - 4), int(rng.choice([2, 4]))
        value = int(rng.choice([0, 1, 0xFF, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, rng.integers(1 << 31)]))
        data[at : at + width] = (
            value.to_bytes(8, "big")[-width:] if rng.integers(2) else value.to_bytes(8, "little")[:width]
        )
    elif kind == 4 and data.startswith(b"\x89PNG"):  # a PNG chunk's length changed
        starts, pos = [], 8
        while pos + 8 <= len(data):
            starts.append(pos)
            pos += 12 + struct.unpack(">I", data[pos : pos + 4])[0]
        at = starts[rng.integers(len(starts))]
        (length,) = struct.unpack(">I", data[at : at + 4])
        length = max(0, length + int(rng.integers(-8, 9))) if rng.integers(2) else int(rng.integers(1 << 32))
        data[at : at + 4] = struct.pack(">I", length)
    else:  # cut out, or put in, a run of up to 15 bytes
        at = rng.integers(len(data))
        insert = bytes(rng.integers(0, 256, rng.integers(1, 16), dtype=np.uint8)) if rng.integers(2) else b""
        data[at : at + (0 if insert else rng.integers(1, 16))] = insert
    return bytes(data)


# Runs in its own process: a crash or a hang there cannot take the test run with it.
_WORKER = """
import json, sys
import numpy as np
from jtex import image
from jtex.errors import JtexError
for path in sys.argv[1:]:
    for kwargs in ({}, {"width": 7}):
        try:
            x = image.load(path, **kwargs)
            out = {"shape": list(x.shape), "dtype": str(x.dtype), "finite": bool(np.isfinite(x).all()),
                   "min": float(x.min()), "max": float(x.max()), "sum": float(x.astype(np.float64).sum())}
        except JtexError as e:
            out = {"jtex": str(e)}
        except BaseException as e:
            out = {"other": f"{type(e).__name__}: {e}"}
        print(json.dumps({"path": path, "kwargs": kwargs, **out}), flush=True)
"""


def test_damaged_images_give_jtex_errors_or_valid_arrays(tmp_path):
    seeds = seed_files()
    rng = np.random.default_rng(SEED)
    names = sorted(seeds)
    paths, origin = [], {}
    for name in names:  # the undamaged files too, as a reference
        paths.append(tmp_path / f"seed_{name}")
        paths[-1].write_bytes(seeds[name])
    for i in range(MUTANTS):
        name = names[i % len(names)]
        path = tmp_path / f"{i:04d}_{name}"
        path.write_bytes(mutate(seeds[name], rng))
        paths.append(path)
        origin[str(path)] = str(tmp_path / f"seed_{name}")

    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1"}
    run = subprocess.run(
        [sys.executable, "-c", _WORKER, *map(str, paths)], capture_output=True, text=True, env=env, timeout=60
    )
    results = [json.loads(line) for line in run.stdout.splitlines()]
    done = len(results) // 2
    assert run.returncode == 0, f"the worker died on {paths[done] if done < len(paths) else '?'}: {run.stderr[-2000:]}"
    assert len(results) == 2 * len(paths)

    others = [r for r in results if "other" in r]
    assert not others, others[:5]
    loaded = {}
    for r in results:
        if "jtex" in r:
            assert r["path"] in r["jtex"] and "\n" not in r["jtex"], r
            continue
        assert len(r["shape"]) == 3 and r["shape"][2] == 3 and r["dtype"] == "float32", r
        assert r["finite"] and 0.0 <= r["min"] and r["max"] <= 1.0, r
        if r["kwargs"] == {}:
            loaded[r["path"]] = r
    for seed in names:
        assert str(tmp_path / f"seed_{seed}") in loaded  # every undamaged file loads
    errors = sum("jtex" in r for r in results)
    assert len(results) // 5 < errors < len(results) * 4 // 5  # the damage is neither all fatal nor all harmless

    # PNG: every change to the pixel data breaks a CRC, so whatever loads is undamaged.
    for path, r in loaded.items():
        if path.endswith(".png") and path in origin:
            same = loaded[origin[path]]
            assert (r["shape"], r["sum"]) == (same["shape"], same["sum"]), path
