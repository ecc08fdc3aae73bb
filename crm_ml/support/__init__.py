"""Customer self-service on the CRM: verification, orders, refunds, tickets, suggestions.

The customer dialogue's actions call these functions, one per action. Every
function is keyword-only, takes the caller's session (the caller owns the
transaction) and builds its SQL with SQLAlchemy expressions: values typed by a
customer only ever travel as bound parameters, after the ``clean_*`` checks.

Who may see what:

* verification (:func:`verify_customer`) turns an order number plus the e-mail
  of that order's customer into the customer id, at most
  :data:`MAX_VERIFY_FAILURES` failures per hour and sender id; a failure never
  says whether the order exists;
* order data goes only to the customer who owns it (:func:`crm_ml.authz.check_customer`);
  another customer's order is reported exactly like a missing one (:class:`NotFound`),
  so that order numbers cannot be probed; a customer erased since they signed in or
  verified is no customer any more (:func:`crm_ml.authz.own_customer_id`);
* every change (verification, cancellation, address, tickets) is audited with
  :func:`crm_ml.audit.audit`; e-mail addresses and postal addresses never go
  into the audit details nor into log messages.

The functions live by topic: :mod:`~crm_ml.support.checks` (input checks),
:mod:`~crm_ml.support.verification`, :mod:`~crm_ml.support.orders` (status,
cancellation, invoices, order changes), :mod:`~crm_ml.support.refunds`,
:mod:`~crm_ml.support.account` (address, account changes, erasure, tickets) and
:mod:`~crm_ml.support.suggestions`, with :mod:`~crm_ml.support.common` below
them. Callers import from ``crm_ml.support``; the names below are the ones other
layers may use.
"""

from __future__ import annotations

from crm_ml.support.account import (
    TICKET_KINDS,
    open_customer_ticket,
    request_account_change,
    request_erasure,
    set_shipping_address,
)
from crm_ml.support.checks import (
    MAX_ADDRESS,
    MAX_TEXT,
    MIN_ADDRESS,
    InvalidRequest,
    clean_address,
    clean_email,
    clean_order_id,
    clean_text,
)
from crm_ml.support.common import (
    OrderSummary,
    RefundRequest,
)
from crm_ml.support.orders import (
    CancelOutcome,
    Invoice,
    InvoiceLine,
    cancel_order,
    invoice,
    order_status,
    request_invoice_copy,
    request_order_change,
)
from crm_ml.support.refunds import (
    Credit,
    RefundStatus,
    RefundTicket,
    refund_status,
    request_refund,
)
from crm_ml.support.suggestions import (
    BEST_SELLER_DAYS,
    Suggestion,
    Suggestions,
    best_sellers,
    recommendations_for,
    suggestions,
)
from crm_ml.support.verification import (
    MAX_VERIFY_FAILURES,
    VERIFY_WINDOW,
    Verification,
    recent_failures,
    verify_customer,
)

__all__ = [
    "BEST_SELLER_DAYS",
    "MAX_ADDRESS",
    "MAX_TEXT",
    "MAX_VERIFY_FAILURES",
    "MIN_ADDRESS",
    "TICKET_KINDS",
    "VERIFY_WINDOW",
    "CancelOutcome",
    "Credit",
    "InvalidRequest",
    "Invoice",
    "InvoiceLine",
    "OrderSummary",
    "RefundRequest",
    "RefundStatus",
    "RefundTicket",
    "Suggestion",
    "Suggestions",
    "Verification",
    "best_sellers",
    "cancel_order",
    "clean_address",
    "clean_email",
    "clean_order_id",
    "clean_text",
    "invoice",
    "open_customer_ticket",
    "order_status",
    "recent_failures",
    "recommendations_for",
    "refund_status",
    "request_account_change",
    "request_erasure",
    "request_invoice_copy",
    "request_order_change",
    "request_refund",
    "set_shipping_address",
    "suggestions",
    "verify_customer",
]
