"""Datasets: read from CRM_DATASETS_DIR, downloaded and checked where missing."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import pytest

from crm_ml import datasets
from crm_ml.errors import DatasetError

SHARED = Path(__file__).resolve().parents[3] / "shared" / "datasets"


def test_missing_folder_without_download_says_what_to_set(env, tmp_path: Path) -> None:
    env.setenv("CRM_DATASETS_DIR", str(tmp_path / "nowhere"))
    env.setenv("CRM_ALLOW_DOWNLOAD", "0")
    with pytest.raises(DatasetError, match="Set CRM_DATASETS_DIR"):
        datasets.path_of("leads")


def test_failed_download_says_what_to_set(env, tmp_path: Path, monkeypatch) -> None:
    env.setenv("CRM_DATASETS_DIR", str(tmp_path))

    def offline(*_a, **_k):
        raise OSError("Temporary failure in name resolution")

    monkeypatch.setattr(datasets.urllib.request, "urlopen", offline)
    with pytest.raises(DatasetError, match="CRM_DATASETS_DIR.*Download failed"):
        datasets.path_of("leads")
    assert not (tmp_path / "Leads.csv.gz").exists()


def test_excel_origins_are_explained(env, tmp_path: Path) -> None:
    env.setenv("CRM_DATASETS_DIR", str(tmp_path))
    with pytest.raises(DatasetError, match="convert it as MANIFEST.md describes"):
        datasets.path_of("retail_2009")


class _Resp(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.mark.skipif(not (SHARED / "Leads.csv.gz").is_file(), reason="needs ../shared/datasets")
def test_download_is_checked_and_stored(env, tmp_path: Path, monkeypatch) -> None:
    """The origin's bytes (served here from the shared copy) pass the sha256 check."""
    env.setenv("CRM_DATASETS_DIR", str(tmp_path))
    raw = gzip.decompress((SHARED / "Leads.csv.gz").read_bytes())
    monkeypatch.setattr(datasets.urllib.request, "urlopen", lambda *_a, **_k: _Resp(raw))
    path = datasets.path_of("leads")
    assert gzip.decompress(path.read_bytes()) == raw


def test_tampered_download_is_refused(env, tmp_path: Path, monkeypatch) -> None:
    env.setenv("CRM_DATASETS_DIR", str(tmp_path))
    monkeypatch.setattr(datasets.urllib.request, "urlopen", lambda *_a, **_k: _Resp(b"evil"))
    with pytest.raises(DatasetError, match="sha256"):
        datasets.path_of("leads")
    assert not (tmp_path / "Leads.csv.gz").exists()


def test_online_retail_join_matches_the_manifest() -> None:
    df = datasets.read_online_retail()
    assert len(df) == 1_044_847
    assert df["Customer ID"].nunique() == 5_942
    assert df["Invoice"].nunique() == 53_628
    assert df["StockCode"].nunique() == 5_305
    assert int(df["Invoice"].str.startswith("C").sum()) == 19_165
    assert str(df["InvoiceDate"].min()) == "2009-12-01 07:45:00"
