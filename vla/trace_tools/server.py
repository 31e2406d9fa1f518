"""``vla traces view``: the report as a local web app (FastAPI + uvicorn on 127.0.0.1).

Routes: ``/`` is the report page (:mod:`.report`) over the records matching
``?filter=EXPR`` (the ``--filter`` language, evaluated on the server; a bad expression is
shown on the page with status 400), ``/api/records?filter=&limit=`` the matching records as
JSON, ``/api/stats?filter=`` their statistics, ``/healthz`` a liveness probe. The trace file
is re-read when it changes on disk, so a file still being written can be watched; rendered
groups are cached.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass
from pathlib import Path

from vla.trace_tools import TraceToolError
from vla.trace_tools.facts import virtual_fields
from vla.trace_tools.load import TraceFile, load_trace_file
from vla.trace_tools.query import parse_filter
from vla.trace_tools.report import DEFAULT_LIMIT, ReportConfig, ReportRenderer
from vla.trace_tools.stats import compute_stats


@dataclass
class ViewConfig:
    trace: Path
    host: str = "127.0.0.1"
    port: int = 0                 # 0: any free port
    limit: int = DEFAULT_LIMIT


class TraceStore:
    """The trace file, re-read when its size or modification time changes."""

    def __init__(self, path: Path, sample_info=None):
        self.path, self.sample_info = Path(path), sample_info
        self._lock = threading.Lock()
        self._stamp = None
        self._trace: TraceFile | None = None
        self.get()

    def get(self) -> TraceFile:
        with self._lock:
            try:
                st = self.path.stat()
                stamp = (st.st_size, st.st_mtime_ns)
            except OSError:
                stamp = None
            if self._trace is None or stamp != self._stamp:
                try:
                    self._trace = load_trace_file(self.path, self.sample_info)
                except TraceToolError:
                    if self._trace is None:
                        raise
                    return self._trace      # a line being written: keep the last good read
                self._stamp = stamp
            return self._trace


def create_app(store: TraceStore, renderer: ReportRenderer, limit: int = DEFAULT_LIMIT):
    from fastapi import FastAPI, Query
    from fastapi.responses import HTMLResponse, JSONResponse

    app = FastAPI(title="vla traces", docs_url=None, redoc_url=None, openapi_url=None)

    def select(expression: str | None):
        try:
            trace = store.get()
        except TraceToolError as exc:       # the file became unreadable (a torn write)
            return None, [], str(exc)
        if not expression or not expression.strip():
            return trace, trace.entries, None
        try:
            flt = parse_filter(expression)
        except TraceToolError as exc:
            return trace, trace.entries, str(exc)
        return trace, trace.select(flt), None

    @app.get("/", response_class=HTMLResponse)
    def page(filter: str | None = Query(None), limit_: int | None = Query(None, alias="limit")):
        trace, entries, error = select(filter)
        if trace is None:
            return HTMLResponse(f"<!doctype html><p>{error}</p>", status_code=500)
        config = ReportConfig(limit=limit_ if limit_ is not None else limit,
                              filter_expression=filter if filter and not error else None,
                              filter_error=error, server=True)
        if error:
            config.filter_expression = None
        return HTMLResponse(renderer.page(trace, entries, config),
                            status_code=400 if error else 200)

    @app.get("/api/records")
    def records(filter: str | None = Query(None), limit_: int | None = Query(None,
                                                                           alias="limit")):
        trace, entries, error = select(filter)
        if error:
            return JSONResponse({"error": error}, status_code=400)
        shown = entries if limit_ is None else entries[:max(limit_, 0)]
        return {"file": str(trace.path), "total": len(trace.entries), "matched": len(entries),
                "records": [{**{k: v for k, v in virtual_fields(e.facts).items()},
                             "kind": e.facts.kind, "sample_id": e.facts.sample_id,
                             "record": e.record} for e in shown]}

    @app.get("/api/stats")
    def stats(filter: str | None = Query(None)):
        trace, entries, error = select(filter)
        if error:
            return JSONResponse({"error": error}, status_code=400)
        return compute_stats([e.facts for e in entries])

    @app.get("/healthz")
    def healthz():
        return {"ok": True, "records": len(store.get().entries)}

    return app


def serve(app, config: ViewConfig, announce=print) -> None:
    """Bind and listen (port 0: a free one), print the URL, serve until Ctrl-C / SIGTERM."""
    import uvicorn

    sock = socket.socket(socket.AF_INET6 if ":" in config.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((config.host, config.port))
    except OSError as exc:
        raise TraceToolError(f"cannot listen on {config.host}:{config.port}: "
                             f"{exc.strerror}") from None
    sock.listen(128)  # connections queue from the moment the URL is printed
    port = sock.getsockname()[1]
    host = f"[{config.host}]" if ":" in config.host else config.host
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    announce(f"serving {config.trace} at http://{host}:{port}/ (Ctrl-C to stop)")
    server.run(sockets=[sock])
