"""Anonymous visitors' e-mail: kept for their ticket, the agent's reply sent by SMTP.

A visitor who is not signed in leaves an e-mail before a ticket is opened
(:func:`save_contact`, validated); when an agent answers that conversation the
console also sends the reply by e-mail (:func:`send_reply`) through the server
in ``CRM_SMTP_URL``. Addresses are masked in logs (:func:`crm_ml.pii.mask`),
exported and erased with the conversation (:func:`erase_contact`, and
:mod:`crm_ml.gdpr` for a customer's conversations).
"""

from __future__ import annotations

import logging
import re
import smtplib
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from crm_ml.audit import audit, utcnow
from crm_ml.config import get_settings
from crm_ml.db.models_helpdesk import VisitorContact
from crm_ml.pii import mask

__all__ = [
    "FROM_ADDRESS",
    "MailNotSent",
    "contact_of",
    "erase_contact",
    "save_contact",
    "send_reply",
    "valid_email",
]

logger = logging.getLogger(__name__)

FROM_ADDRESS = "support@crm.invalid"
_EMAIL = re.compile(r"^[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
                    r"[A-Za-z]{2,24}$")


class MailNotSent(Exception):
    """The e-mail could not be sent (no server configured, or the server refused)."""


def valid_email(text: str) -> str | None:
    """The e-mail address in ``text`` (trimmed, domain in lower case), or None if invalid."""
    candidate = (text or "").strip().strip("<>").strip()
    if len(candidate) > 254 or not _EMAIL.match(candidate) or ".." in candidate:
        return None
    local, _, domain = candidate.partition("@")
    return f"{local}@{domain.lower()}"


def save_contact(*, session: Session, sender_id: str, email: str) -> VisitorContact:
    """Keep the e-mail an anonymous visitor left for their ticket (one per conversation).

    Raises:
        ValueError: not a valid e-mail address.
    """
    address = valid_email(email)
    if address is None:
        raise ValueError("that doesn't look like an e-mail address")
    contact = session.scalar(select(VisitorContact).where(VisitorContact.sender_id == sender_id))
    if contact is None:
        contact = VisitorContact(sender_id=sender_id, email=address, created_at=utcnow())
        session.add(contact)
    else:
        contact.email = address
    session.flush()
    audit(session=session, actor=sender_id, action="save_contact", entity="visitor_contacts",
          entity_id=str(contact.id))
    logger.info("contact e-mail %s kept for a ticket", mask(address))
    return contact


def contact_of(*, session: Session, sender_id: str) -> str | None:
    """The e-mail a visitor left in this conversation, if any."""
    return session.scalar(select(VisitorContact.email)
                          .where(VisitorContact.sender_id == sender_id))


def erase_contact(*, session: Session, sender_ids: set[str]) -> int:
    """Delete the e-mails kept for these conversations; how many were deleted."""
    if not sender_ids:
        return 0
    return session.execute(delete(VisitorContact)
                           .where(VisitorContact.sender_id.in_(sender_ids))).rowcount or 0


def send_reply(*, to: str, agent_name: str, text: str, ticket: int | None,
               smtp_url: str | None = None, timeout: float = 10.0) -> None:
    """E-mail an agent's reply to a visitor through ``CRM_SMTP_URL``.

    Raises:
        MailNotSent: no SMTP server is configured, or it refused the message.
    """
    url = smtp_url if smtp_url is not None else get_settings().smtp_url
    if not url:
        raise MailNotSent("no SMTP server configured (CRM_SMTP_URL)")
    parts = urlsplit(url)
    if parts.scheme not in {"smtp", "smtps"} or not parts.hostname:
        raise MailNotSent("CRM_SMTP_URL must look like smtp://host:port")
    message = EmailMessage()
    message["From"] = FROM_ADDRESS
    message["To"] = to
    message["Subject"] = (f"Re: your ticket {ticket}" if ticket else "Re: your message to us")
    message.set_content(f"{text}\n\n-- {agent_name}, customer support\n")
    client = smtplib.SMTP_SSL if parts.scheme == "smtps" else smtplib.SMTP
    try:
        with client(parts.hostname, parts.port or (465 if parts.scheme == "smtps" else 25),
                    timeout=timeout) as smtp:
            if parts.username:
                smtp.login(unquote(parts.username), unquote(parts.password or ""))
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        logger.warning("e-mail to %s failed: %s", mask(to), type(exc).__name__)
        raise MailNotSent("the mail server did not take the message") from exc
    logger.info("agent reply e-mailed to %s", mask(to))
