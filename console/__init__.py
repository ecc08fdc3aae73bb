"""The console (app env): the agents' inbox and API, insights, charts and the web chat page.

It reads and writes the CRM only through :mod:`crm_ml` (agents, handoff, insights);
who is signed in is decided in :mod:`console.dependencies`. Run it with
``uvicorn console.app:app``.
"""

__all__: list[str] = []
