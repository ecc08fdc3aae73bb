"""The console's ASGI application: ``uvicorn console.app:app --port 8000``.

Pages for agents (console/pages.py), the agents' API (console/api.py), charts
(console/charts.py, when present), the customers' web chat (``/chat``) and the
static files they need.

The API's description (``/api/openapi.json``) and its Swagger page
(``/api/docs``) are for signed-in agents only; ReDoc and FastAPI's default
``/docs`` and ``/openapi.json`` are not served: a stranger learns nothing of the
console's routes.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from console import inbox_api, pages, tasks_page
from console.api import router as api_router
from console.auth import Forbidden, LoginRequired, SessionMiddleware
from console.dependencies import AgentViewer

__all__ = ["STATIC", "app", "create_app"]

logger = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"


def _wants_json(request: Request) -> bool:
    return (request.url.path.startswith("/api/")
            or request.headers.get("X-Requested-With") == "fetch"
            or request.url.path.endswith("/live"))


def create_app() -> FastAPI:
    """Build the console application."""
    # No public documentation routes: the two below need a signed-in agent.
    app = FastAPI(title="CRM assistant console", docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.add_middleware(SessionMiddleware)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    app.include_router(api_router)
    app.include_router(inbox_api.router)
    app.state.charts = False
    try:
        charts = importlib.import_module("console.charts")
    except ModuleNotFoundError as exc:
        if exc.name != "console.charts":
            raise
    else:
        app.include_router(charts.router)
        app.state.charts = True
    app.include_router(pages.router)
    app.include_router(tasks_page.router)

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/openapi.json", include_in_schema=False)
    def openapi(viewer: AgentViewer) -> dict[str, Any]:
        return app.openapi()

    @app.get("/api/docs", include_in_schema=False)
    def docs(viewer: AgentViewer) -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/api/openapi.json",
                                   title=f"{app.title}: API")

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, exc: LoginRequired) -> Response:
        if _wants_json(request):
            return JSONResponse({"detail": "sign in as an agent"}, status_code=401)
        return pages.login_redirect(request)

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, exc: Forbidden) -> Response:
        if _wants_json(request):
            return JSONResponse({"detail": exc.message}, status_code=403)
        return pages.render(request, "error.html", {"status": 403, "message": exc.message},
                            status=403)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if _wants_json(request) or exc.status_code < 400:
            return await http_exception_handler(request, exc)
        return pages.render(request, "error.html",
                            {"status": exc.status_code, "message": exc.detail},
                            status=exc.status_code)

    return app


app = create_app()
