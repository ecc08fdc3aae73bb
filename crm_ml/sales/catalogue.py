"""The product catalogue by name: which products a rep's words mean.

Used by the business questions (:mod:`crm_ml.sales.questions`) for "revenue of
regency cakestand" and the like.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crm_ml.db import models as m

__all__ = ["find_products"]


def find_products(value: Any, *, session: Session, limit: int = 5) -> list[tuple[str, str]]:
    """Products a name or stock code means, best selling first: ``(stock code, name)``.

    A stock code ("22423") matches itself; words ("party bunting", "cake stand") match the
    catalogue names holding every word (spaces ignored inside words: "cakestand").
    """
    if not isinstance(value, str) or not value.strip() or len(value) > 120:
        return []
    text = value.strip()
    code = session.execute(select(m.Product.stock_code, m.Product.description).where(
        func.upper(m.Product.stock_code) == text.upper())).first()
    if code is not None:
        return [(code.stock_code, code.description)]
    words = [w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in {"the", "of", "a"}]
    if not words:
        return []
    squashed = func.replace(func.lower(m.Product.description), " ", "")
    sold = (select(m.OrderLine.stock_code, func.sum(m.OrderLine.quantity).label("units"))
            .group_by(m.OrderLine.stock_code).subquery())
    stmt = (select(m.Product.stock_code, m.Product.description)
            .outerjoin(sold, sold.c.stock_code == m.Product.stock_code)
            .where(*[squashed.like(f"%{w}%") for w in words])
            .order_by(func.coalesce(sold.c.units, 0).desc(), m.Product.stock_code)
            .limit(limit))
    return [(r.stock_code, r.description) for r in session.execute(stmt)]
