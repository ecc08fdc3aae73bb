"""CRM database: schema, engines, sessions and migrations."""

from crm_ml.db.models import Base
from crm_ml.db.session import get_engine, session_scope

__all__ = ["Base", "get_engine", "session_scope"]
