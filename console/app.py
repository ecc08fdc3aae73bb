"""The console's ASGI application: ``uvicorn console.app:app --port 8000``."""

from __future__ import annotations

import logging

from fastapi import FastAPI

from console.api import router

logger = logging.getLogger(__name__)


def create_app() -> FastAPI:
    """Build the console application."""
    app = FastAPI(title="CRM assistant console", docs_url="/api/docs", openapi_url="/api/openapi.json")
    app.include_router(router)

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


app = create_app()
