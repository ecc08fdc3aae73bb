"""CRMTrackerStore: Rasa's SQL tracker store without re-reading what it just wrote.

Rasa 3.6's ``SQLTrackerStore`` reads and replays the whole conversation three
times per message: once to load it, once more in ``save`` to find which events
are new for the event broker (``stream_events`` retrieves the stored tracker and
diffs it), and once more to count the stored events. Measured at 32 users that
was a quarter of the Rasa process's time.

This store keeps, per conversation, the tracker it last loaded or saved and
the number of its events that are stored. A retrieve checks with one indexed
query (count and highest id of the sender's rows) that the database still
holds exactly what this process wrote; only then does it hand back the kept
tracker, else it reads from SQL as before. So another process writing the same
conversation, a GDPR erase deleting it, or a turn that failed half-way (the
kept tracker then has unsaved events) all fall back to a real read. New events
are the ones past the stored count: no diff against a second copy.

Same table and schema as ``SQLTrackerStore`` (a drop-in for existing data).
Configure in endpoints.yml::

    tracker_store:
      type: bot.tracker_store.CRMTrackerStore
      dialect: "sqlite"
      db: "var/tracker.db"
"""

import json
import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Dict, Optional, Text, Tuple

import sqlalchemy as sa
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.constants import ACTION_SESSION_START_NAME
from rasa.shared.core.events import Event, SessionStarted
from rasa.shared.core.trackers import DialogueStateTracker

from bot import speedups, sql

logger = logging.getLogger(__name__)

__all__ = [
    "CRMTrackerStore",
]

Stamp = Tuple[int, Optional[int]]  # (number of the sender's rows, highest row id)
_NO_STAMP: Stamp = (-1, None)


@dataclass
class _Kept:
    tracker: DialogueStateTracker
    stored_events: int  # events of ``tracker`` that are in the database
    stamp: Stamp


def _starts_session(event: Event) -> bool:
    return isinstance(event, SessionStarted) or getattr(
        event, "action_name", None) == ACTION_SESSION_START_NAME


def _one_session(tracker: DialogueStateTracker) -> bool:
    """Whether the tracker's events are one session from its start (nothing before it)."""
    begun = False
    for event in tracker.events:
        if not _starts_session(event):
            begun = True
        elif begun:
            return False
    return True


class CRMTrackerStore(SQLTrackerStore):
    """``SQLTrackerStore`` that keeps the trackers it wrote (see the module docstring).

    Args:
        keep: How many conversations to keep in memory (least recently used go).
        kwargs: Everything ``SQLTrackerStore`` takes (dialect, url/host, db, ...).
    """

    def __init__(self, *args: Any, keep: int = 4096, **kwargs: Any) -> None:
        speedups.install()
        super().__init__(*args, **kwargs)
        if sql.is_sqlite_file(self.engine.url):  # pooled, WAL, no fsync per commit
            url = self.engine.url
            self.engine.dispose()
            self.engine = sql.create_engine(url)
            self.sessionmaker = sa.orm.session.sessionmaker(bind=self.engine)
        self._keep = max(0, int(keep))
        table = self.SQLEvent.__table__
        # Core statements, compiled once: the ORM's per-query work showed in profiles.
        self._stamp_query = sa.select(sa.func.count(table.c.id), sa.func.max(table.c.id)
                                      ).where(table.c.sender_id == sa.bindparam("sender"))
        self._insert = table.insert()
        self._kept: OrderedDict[Text, _Kept] = OrderedDict()

    # ------------------------------------------------------------------ helpers

    def _stamp(self, connection: Any, sender_id: Text) -> Stamp:
        """(count, highest id) of the sender's rows; on a Core connection or an ORM session."""
        count, top = connection.execute(self._stamp_query, {"sender": sender_id}).one()
        return int(count or 0), top

    def _remember(self, sender_id: Text, kept: _Kept) -> None:
        if not self._keep:
            return
        self._kept[sender_id] = kept
        self._kept.move_to_end(sender_id)
        while len(self._kept) > self._keep:
            self._kept.popitem(last=False)

    def forget(self, sender_id: Optional[Text] = None) -> None:
        """Drop the kept tracker of ``sender_id`` (of every conversation when None)."""
        if sender_id is None:
            self._kept.clear()
        else:
            self._kept.pop(sender_id, None)

    def _stored_count(self, tracker: DialogueStateTracker) -> Optional[int]:
        """How many of ``tracker``'s events are stored, when this store knows it."""
        kept = self._kept.get(tracker.sender_id)
        if kept is not None and kept.tracker is tracker:
            return kept.stored_events
        return None

    def peek(self, sender_id: Text) -> Optional[DialogueStateTracker]:
        """The kept tracker of ``sender_id`` as this process last saved it, without a query.

        For a look right after this process saved the conversation (the REST
        channel's outbox check); None when nothing is kept or it has unsaved events.
        """
        kept = self._kept.get(sender_id)
        if kept is None or len(kept.tracker.events) != kept.stored_events:
            return None
        return kept.tracker

    # ------------------------------------------------------------------ reading

    async def retrieve(self, sender_id: Text) -> Optional[DialogueStateTracker]:
        """The conversation's latest session: the kept tracker if still current."""
        kept = self._kept.get(sender_id)
        if kept is not None and len(kept.tracker.events) == kept.stored_events:
            with self.engine.connect() as conn:  # Core: the ORM session's overhead showed
                if self._stamp(conn, sender_id) == kept.stamp:
                    self._kept.move_to_end(sender_id)
                    return kept.tracker
        self._kept.pop(sender_id, None)
        with self.session_scope() as session:
            stamp = self._stamp(session, sender_id)
            if stamp[0] == 0:
                return None
            rows = self._event_query(session, sender_id,
                                     fetch_events_from_all_sessions=False).all()
            events = [json.loads(row.data) for row in rows]
        if not self.domain or not events:
            return None
        tracker = DialogueStateTracker.from_dict(sender_id, events, self.domain.slots)
        self._remember(sender_id, _Kept(tracker, len(tracker.events), stamp))
        return tracker

    # ------------------------------------------------------------------ writing

    def _stored(self, tracker: DialogueStateTracker) -> int:
        """How many of ``tracker``'s events are in the database (Rasa's count if unknown)."""
        stored = self._stored_count(tracker)
        if stored is None:  # a tracker this store did not hand out
            with self.session_scope() as session:
                stored = self._event_query(session, tracker.sender_id,
                                           fetch_events_from_all_sessions=False).count()
        return stored

    async def save(self, tracker: DialogueStateTracker) -> None:
        """Store the events of ``tracker`` that are not stored yet; publish them first."""
        if not tracker.events and self._stored_count(tracker) is None:
            # A new conversation's empty tracker (Rasa's create_tracker): nothing to
            # write. Kept with a stamp no database matches, so a read checks the rows.
            self._remember(tracker.sender_id, _Kept(tracker, 0, _NO_STAMP))
            return
        new_events = list(tracker.events)[self._stored(tracker):]
        if self.event_broker is not None and new_events:
            await self._stream_new_events(self.event_broker, new_events, tracker.sender_id)
        rows = []
        for event in new_events:
            data: Dict[Text, Any] = event.as_dict()
            rows.append({
                "sender_id": tracker.sender_id,
                "type_name": event.type_name,
                "timestamp": data.get("timestamp"),
                "intent_name": (data.get("parse_data") or {}).get("intent", {}).get("name"),
                "action_name": data.get("name"),
                "data": json.dumps(data),
            })
        with self.engine.begin() as conn:  # one transaction: the rows, then their stamp
            if rows:
                conn.execute(self._insert, rows)
            stamp = self._stamp(conn, tracker.sender_id)
        if any(_starts_session(e) for e in new_events) and not _one_session(tracker):
            # A new session began in this turn after an earlier one: the next read
            # starts from it, as Rasa's own read does, rather than carrying the old
            # session along. (A conversation's first session is all of it: kept.)
            self._kept.pop(tracker.sender_id, None)
        else:
            self._remember(tracker.sender_id, _Kept(tracker, len(tracker.events), stamp))
        logger.debug("stored %d new events", len(new_events))
