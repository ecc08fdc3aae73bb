"""Load the CRM from the public datasets.

What goes where:

* Online Retail II (both years, joined as MANIFEST.md says) -> customers,
  accounts, products, orders, order_lines. Every row read is kept or dropped
  for one named reason, checked in this order and counted:

  1. ``no_customer_id``: no customer to attribute the line to (guest checkout);
  2. ``cancellation``: invoices starting with ``C`` are *kept* as orders of kind
     ``cancellation`` (status ``cancelled``) with their negative quantities,
     so refunds and return rates can be answered; lines with a non-product code
     are not kept (they only credit postage or fees);
  3. ``non_product_code``: postage, carriage, manual entries, bank charges,
     Amazon fees, discounts, samples, test and gift-voucher codes (see
     :data:`NON_PRODUCT_CODES`): fees, not goods;
  4. ``non_positive_quantity_or_price``: stock adjustments, damages and bad-debt
     write-offs (quantity <= 0 or price <= 0 outside cancellations).

* Bank Marketing (``bank-additional-full``) and X Education -> leads, with the
  raw features (``duration`` included in the JSON: the model drops it) and the
  outcome. Lead ids: bank row *i* (0-based) is lead ``i + 1``; X Education row
  *j* is lead ``41189 + j``.
* Sales reps ``rep:1`` .. ``rep:8`` (ids 1-8) and ``manager:1`` (id 101) over all
  of them. Ownership is round-robin, deterministic: lead *n* belongs to rep
  ``(n - 1) % 8 + 1``; customers sorted by id, the *k*-th (0-based) account
  belongs to rep ``k % 8 + 1``. Round-robin rather than by country because 90%
  of Online Retail's customers are in the United Kingdom.

Customer names, e-mails and lead names are synthetic (the datasets carry none),
derived from the ids so that every load gives the same values; e-mails use the
reserved ``example.com`` domain.

Idempotency: each dataset group is recorded in ``data_loads`` with the sha256 of
its source files; a load whose hash is already recorded does nothing. Every
group is written in one transaction, so an interrupted load leaves no partial
state.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, delete, func, insert, select

from crm_ml import datasets
from crm_ml.db import models as m
from crm_ml.db.session import get_engine

__all__ = [
    "CHUNK",
    "LoadSummary",
    "MANAGER_ID",
    "NON_PRODUCT_CODES",
    "NON_PRODUCT_PREFIXES",
    "N_REPS",
    "ProgressFn",
    "REPS",
    "RetailTables",
    "is_non_product",
    "load_all",
    "load_leads",
    "load_reps",
    "load_retail",
    "prepare_leads",
    "prepare_retail",
    "synthetic_name",
    "table_counts",
]

logger = logging.getLogger(__name__)

ProgressFn = Callable[[str, int, int], None]
"""``progress(task, done, total)``: called as rows are written."""

N_REPS = 8
MANAGER_ID = 101
CHUNK = 20_000

NON_PRODUCT_CODES = frozenset(
    {"POST", "DOT", "M", "m", "C2", "D", "S", "B", "BANK CHARGES", "ADJUST", "ADJUST2",
     "AMAZONFEE", "PADS", "CRUK", "TEST001", "TEST002"}
)
NON_PRODUCT_PREFIXES = ("gift_0001_", "TEST")

_FIRST = ["Olivia", "Liam", "Emma", "Noah", "Amelia", "Oliver", "Ava", "Elijah", "Sophia",
          "James", "Isla", "William", "Mia", "Lucas", "Grace", "Henry", "Chloe", "Jack",
          "Freya", "Leo", "Ella", "Oscar", "Lily", "Arthur", "Ivy", "Theo", "Ruby", "Harry",
          "Zoe", "George", "Maya", "Charlie"]
_LAST = ["Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies",
         "Patel", "Robinson", "Wright", "Thompson", "Evans", "Walker", "White", "Roberts",
         "Green", "Hall", "Wood", "Jackson", "Clarke", "Khan", "Lewis", "Harris", "Martin",
         "Cooper", "King", "Lee", "Baker", "Moore", "Allen", "Young", "Murphy", "Garcia",
         "Novak", "Schmidt", "Dubois", "Rossi", "Silva", "Jansen", "Nielsen"]

REPS = [
    (1, "rep:1", "Alice Morgan"), (2, "rep:2", "Ben Carter"), (3, "rep:3", "Chloe Park"),
    (4, "rep:4", "Daniel Okafor"), (5, "rep:5", "Elena Rossi"), (6, "rep:6", "Farid Haddad"),
    (7, "rep:7", "Grace Liu"), (8, "rep:8", "Hugo Martin"),
]


def synthetic_name(n: int) -> tuple[str, str]:
    """Deterministic first and last name for id ``n``.

    The id is mixed (MurmurHash3's finalizer) before picking the names: ids that
    share a remainder (a rep's leads are every eighth id) still get every first
    name, so a top five does not read "James, James, James...".
    """
    h = n & 0xFFFFFFFF
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    h ^= h >> 16
    return _FIRST[h % len(_FIRST)], _LAST[(h // len(_FIRST)) % len(_LAST)]


def is_non_product(codes: pd.Series) -> pd.Series:
    """Mask of stock codes that are fees or adjustments, not goods."""
    mask = codes.isin(NON_PRODUCT_CODES)
    for prefix in NON_PRODUCT_PREFIXES:
        mask |= codes.str.startswith(prefix)
    return mask


@dataclass
class LoadSummary:
    """What a load read, kept and dropped, and why."""

    dataset: str
    rows_read: int = 0
    rows_kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    kept: dict[str, int] = field(default_factory=dict)
    facts: dict[str, int] = field(default_factory=dict)
    skipped: bool = False
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "rows_read": self.rows_read,
                "rows_kept": self.rows_kept, "dropped": self.dropped, "kept": self.kept,
                "facts": self.facts, "seconds": round(self.seconds, 2)}


@dataclass
class RetailTables:
    """Online Retail II split into CRM tables (plain records) and its summary."""

    customers: pd.DataFrame
    products: pd.DataFrame
    orders: pd.DataFrame
    lines: pd.DataFrame
    summary: LoadSummary


def prepare_retail(df: pd.DataFrame, *, dataset: str = "online_retail_ii") -> RetailTables:
    """Split raw Online Retail II rows into CRM tables, counting every decision.

    Args:
        df: Rows in :func:`crm_ml.datasets.read_online_retail`'s shape.
        dataset: Name recorded in the summary.

    Returns:
        The tables to insert and the summary of what was kept and dropped.
    """
    s = LoadSummary(dataset=dataset, rows_read=len(df))
    s.facts = {
        "distinct_customer_ids": int(df["Customer ID"].nunique()),
        "invoices": int(df["Invoice"].nunique()),
        "stock_codes": int(df["StockCode"].nunique()),
    }
    has_customer = df["Customer ID"].notna()
    cancel = df["Invoice"].str.startswith("C")
    non_product = is_non_product(df["StockCode"])
    positive = (df["Quantity"] > 0) & (df["Price"] > 0)

    s.dropped["no_customer_id"] = int((~has_customer).sum())
    s.kept["cancellation_lines"] = int((has_customer & cancel & ~non_product).sum())
    s.dropped["cancellation_fee_lines"] = int((has_customer & cancel & non_product).sum())
    rest = has_customer & ~cancel
    s.dropped["non_product_code"] = int((rest & non_product).sum())
    rest = rest & ~non_product
    s.dropped["non_positive_quantity_or_price"] = int((rest & ~positive).sum())
    sale_mask = rest & positive
    s.kept["sale_lines"] = int(sale_mask.sum())
    keep = sale_mask | (has_customer & cancel & ~non_product)
    s.rows_kept = int(keep.sum())

    kept = df.loc[keep].copy()
    kept["customer_id"] = kept["Customer ID"].astype("int64")
    kept["kind"] = np.where(kept["Invoice"].str.startswith("C"), "cancellation", "sale")
    kept["amount"] = kept["Quantity"] * kept["Price"]

    # Customers: every id seen, with their most frequent country.
    seen = df.loc[has_customer, ["Customer ID", "Country", "InvoiceDate"]]
    by_cust = seen.groupby("Customer ID", sort=True)
    country = seen.groupby(["Customer ID", "Country"]).size().reset_index(name="n")
    country = country.sort_values(["Customer ID", "n", "Country"], ascending=[True, False, True])
    country = country.drop_duplicates("Customer ID").set_index("Customer ID")["Country"]
    customers = pd.DataFrame({"id": by_cust.size().index.astype("int64")})
    customers["country"] = country.reindex(customers["id"]).to_numpy()
    customers["first_seen"] = by_cust["InvoiceDate"].min().to_numpy()
    names = [synthetic_name(int(i)) for i in customers["id"]]
    customers["name"] = [f"{a} {b}" for a, b in names]
    customers["email"] = [f"{a}.{b}.{i}@example.com".lower() for (a, b), i in
                          zip(names, customers["id"], strict=True)]
    s.facts["customers"] = len(customers)
    # MANIFEST.md's definition of a valid purchase line: a customer id, a positive
    # quantity and price, not a cancellation (fee codes included).
    valid = has_customer & ~cancel & positive
    s.facts["valid_purchase_rows"] = int(valid.sum())
    s.facts["customers_with_valid_purchase"] = int(df.loc[valid, "Customer ID"].nunique())
    s.facts["customers_with_product_purchase"] = int(
        kept.loc[kept["kind"] == "sale", "customer_id"].nunique())

    # Products: codes in kept lines; most frequent description, median sale price.
    desc = kept[kept["Description"].fillna("").str.strip() != ""]
    desc = desc.groupby(["StockCode", "Description"]).size().reset_index(name="n")
    desc = desc.sort_values(["StockCode", "n", "Description"], ascending=[True, False, True])
    desc = desc.drop_duplicates("StockCode").set_index("StockCode")["Description"]
    price = kept[kept["kind"] == "sale"].groupby("StockCode")["Price"].median()
    any_price = kept.groupby("StockCode")["Price"].median()
    codes = pd.Index(sorted(kept["StockCode"].unique()))
    products = pd.DataFrame({"stock_code": codes})
    products["description"] = desc.reindex(codes).fillna("").str.strip().to_numpy()
    products.loc[products["description"] == "", "description"] = "(no description)"
    products["unit_price"] = (price.reindex(codes).fillna(any_price.reindex(codes)).abs()
                              .round(2).to_numpy())

    # Orders: one row per kept invoice.
    g = kept.groupby("Invoice", sort=True)
    orders = pd.DataFrame({
        "id": g.size().index,
        "customer_id": g["customer_id"].first().to_numpy(),
        "invoiced_at": g["InvoiceDate"].min().to_numpy(),
        "country": g["Country"].first().to_numpy(),
        "kind": g["kind"].first().to_numpy(),
        "total": g["amount"].sum().round(2).to_numpy(),
    })
    last = orders["invoiced_at"].max()
    age = (last - orders["invoiced_at"]).dt.days
    orders["status"] = np.select(
        [orders["kind"] == "cancellation", age <= 1, age <= 6],
        ["cancelled", "processing", "shipped"], default="delivered")
    s.facts["orders_sale"] = int((orders["kind"] == "sale").sum())
    s.facts["orders_cancellation"] = int((orders["kind"] == "cancellation").sum())

    lines = pd.DataFrame({
        "order_id": kept["Invoice"].to_numpy(),
        "stock_code": kept["StockCode"].to_numpy(),
        "quantity": kept["Quantity"].astype("int64").to_numpy(),
        "unit_price": kept["Price"].round(2).to_numpy(),
    })
    s.facts["products"] = len(products)
    return RetailTables(customers, products, orders, lines, s)


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """DataFrame rows as dicts of plain Python values (None for missing)."""
    out = df.astype(object).where(df.notna(), None)
    recs = out.to_dict("records")
    for rec in recs:
        for key, value in rec.items():
            if isinstance(value, pd.Timestamp):
                rec[key] = value.to_pydatetime()
            elif isinstance(value, np.generic):
                rec[key] = value.item()
    return recs


def _insert(conn: Connection, table: Any, rows: Sequence[dict[str, Any]], task: str,
            progress: ProgressFn | None) -> None:
    total = len(rows)
    for start in range(0, total, CHUNK):
        conn.execute(insert(table), list(rows[start:start + CHUNK]))
        if progress:
            progress(task, min(start + CHUNK, total), total)
    if progress and total == 0:
        progress(task, 0, 0)


def _already(conn: Connection, dataset: str, data_hash: str) -> bool:
    row = conn.execute(
        select(m.DataLoad.id).where(m.DataLoad.dataset == dataset,
                                    m.DataLoad.data_hash == data_hash)
    ).first()
    return row is not None


# Tables derived from each dataset group, children first (for a replacing load).
_RETAIL_TABLES = [m.Recommendation, m.Segment, m.ChurnScore, m.OrderLine, m.Order,
                  m.Account, m.Product, m.Customer]
_LEAD_TABLES = [m.LeadScore, m.Lead]


def load_reps(conn: Connection) -> int:
    """Create the eight reps and their manager if missing; return how many were added."""
    existing = set(conn.execute(select(m.SalesRep.handle)).scalars())
    added = 0
    if "manager:1" not in existing:
        conn.execute(insert(m.SalesRep), [{"id": MANAGER_ID, "handle": "manager:1",
                                            "name": "Maria Lopez", "role": "manager",
                                            "email": "maria.lopez@example.com",
                                            "manager_id": None}])
        added += 1
    rows = [{"id": i, "handle": h, "name": n, "role": "rep", "manager_id": MANAGER_ID,
             "email": n.lower().replace(" ", ".") + "@example.com"}
            for i, h, n in REPS if h not in existing]
    if rows:
        conn.execute(insert(m.SalesRep), rows)
    return added + len(rows)


def load_retail(conn: Connection, tables: RetailTables, *, data_hash: str,
                progress: ProgressFn | None = None, replace: bool = True) -> LoadSummary:
    """Write prepared Online Retail tables in the caller's transaction."""
    s = tables.summary
    if _already(conn, s.dataset, data_hash):
        s.skipped = True
        return s
    if replace:
        for table in _RETAIL_TABLES:
            conn.execute(delete(table))
    load_reps(conn)
    customers = tables.customers.copy()
    _insert(conn, m.Customer, _records(customers[["id", "name", "email", "country",
                                                  "first_seen"]].assign(anonymized=False)),
            "customers", progress)
    accounts = pd.DataFrame({
        "id": np.arange(1, len(customers) + 1),
        "customer_id": customers["id"].to_numpy(),
        "rep_id": np.arange(len(customers)) % N_REPS + 1,
        "name": customers["name"].to_numpy(),
        "opened_at": customers["first_seen"].to_numpy(),
    })
    _insert(conn, m.Account, _records(accounts), "accounts", progress)
    _insert(conn, m.Product, _records(tables.products), "products", progress)
    _insert(conn, m.Order, _records(tables.orders), "orders", progress)
    _insert_lines(conn, tables.lines, progress)
    conn.execute(insert(m.DataLoad), [{"dataset": s.dataset, "data_hash": data_hash,
                                       "summary": s.as_dict()}])
    return s


def _insert_lines(conn: Connection, lines: pd.DataFrame, progress: ProgressFn | None) -> None:
    """Insert order lines fast: plain tuples through the driver's executemany."""
    total = len(lines)
    cols = ["order_id", "stock_code", "quantity", "unit_price"]
    arrays = [lines[c].tolist() for c in cols]
    stmt = insert(m.OrderLine)
    for start in range(0, total, CHUNK * 5):
        stop = min(start + CHUNK * 5, total)
        batch = [dict(zip(cols, row, strict=True))
                 for row in zip(*(a[start:stop] for a in arrays), strict=True)]
        conn.execute(stmt, batch)
        if progress:
            progress("order_lines", stop, total)


def prepare_leads(bank: pd.DataFrame, xedu: pd.DataFrame) -> tuple[list[dict[str, Any]],
                                                                   LoadSummary]:
    """Turn Bank Marketing and X Education rows into lead records."""
    s = LoadSummary(dataset="leads", rows_read=len(bank) + len(xedu))
    records: list[dict[str, Any]] = []

    def add(frame: pd.DataFrame, target: str, source: str, first_id: int,
            ref: Callable[[int, dict[str, Any]], str], positive: Iterable[Any]) -> None:
        feats = _records(frame.drop(columns=[target]))
        outcome = frame[target].isin(list(positive)).to_numpy()
        for j, (row, conv) in enumerate(zip(feats, outcome, strict=True)):
            lead_id = first_id + j
            first, last = synthetic_name(lead_id * 3 + 1)
            clean = {k: (None if isinstance(v, float) and math.isnan(v) else v)
                     for k, v in row.items()}
            records.append({
                "id": lead_id, "source": source, "external_ref": ref(j, row),
                "name": f"{first} {last}", "rep_id": (lead_id - 1) % N_REPS + 1,
                "status": "new", "features": clean, "converted": bool(conv),
            })

    add(bank, "y", "bank_marketing", 1, lambda j, _r: f"bank-additional-full:{j + 1}", ["yes"])
    add(xedu, "Converted", "x_education", len(bank) + 1,
        lambda _j, r: str(r["Lead Number"]), [1])
    s.rows_kept = len(records)
    s.kept = {"bank_marketing": len(bank), "x_education": len(xedu)}
    s.dropped = {}
    return records, s


def load_leads(conn: Connection, records: list[dict[str, Any]], summary: LoadSummary, *,
               data_hash: str, progress: ProgressFn | None = None) -> LoadSummary:
    """Write lead records in the caller's transaction (skipped if already loaded)."""
    if _already(conn, summary.dataset, data_hash):
        summary.skipped = True
        return summary
    for table in _LEAD_TABLES:
        conn.execute(delete(table))
    load_reps(conn)
    _insert(conn, m.Lead, records, "leads", progress)
    conn.execute(insert(m.DataLoad), [{"dataset": summary.dataset, "data_hash": data_hash,
                                       "summary": summary.as_dict()}])
    return summary


def load_all(url: str | None = None, *, progress: ProgressFn | None = None,
             what: Sequence[str] = ("retail", "leads")) -> list[LoadSummary]:
    """Load the datasets into the CRM at ``url``; each group in its own transaction.

    Returns:
        One summary per dataset group, ``skipped`` when it was already loaded.
    """

    def retail(conn: Connection, data_hash: str) -> LoadSummary:
        if progress:
            progress("read Online Retail II", 0, 1)
        tables = prepare_retail(datasets.read_online_retail())
        if progress:
            progress("read Online Retail II", 1, 1)
        return load_retail(conn, tables, data_hash=data_hash, progress=progress)

    def leads(conn: Connection, data_hash: str) -> LoadSummary:
        records, s = prepare_leads(datasets.read_bank_marketing(), datasets.read_x_education())
        return load_leads(conn, records, s, data_hash=data_hash, progress=progress)

    groups = {"retail": ("online_retail_ii", ("retail_2009", "retail_2010"), retail),
              "leads": ("leads", ("bank_additional", "leads"), leads)}
    engine = get_engine(url)
    out: list[LoadSummary] = []
    for key, (dataset, files, load) in groups.items():
        if key not in what:
            continue
        t0 = time.perf_counter()
        data_hash = datasets.file_hash(*files)
        with engine.begin() as conn:
            if _already(conn, dataset, data_hash):
                s = LoadSummary(dataset=dataset, skipped=True)
                s.__dict__.update({k: v for k, v in _recorded(conn, dataset).items()
                                   if k in {"rows_read", "rows_kept", "dropped", "kept",
                                            "facts"}})
            else:
                s = load(conn, data_hash)
        s.seconds = time.perf_counter() - t0
        out.append(s)
    return out


def _recorded(conn: Connection, dataset: str) -> dict[str, Any]:
    row = conn.execute(select(m.DataLoad.summary).where(m.DataLoad.dataset == dataset)
                       .order_by(m.DataLoad.id.desc())).first()
    return dict(row[0]) if row else {}


def table_counts(url: str | None = None) -> dict[str, int]:
    """Row counts of the main CRM tables."""
    engine = get_engine(url)
    out = {}
    with engine.connect() as conn:
        for table in (m.Customer, m.Account, m.Product, m.Order, m.OrderLine, m.Lead,
                      m.SalesRep):
            out[table.__tablename__] = conn.execute(
                select(func.count()).select_from(table)).scalar_one()
    return out
