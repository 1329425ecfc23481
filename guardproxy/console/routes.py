"""`console_router(...)`: every `/console` route, bound to the app's store, sink, runtime and access.

Each handler finds the session first (anonymous -> the sign-in page), checks the CSRF token and origin on every
post, and reads the store off the event loop. Failures render as HTML pages here (`_render_error`), the
console's one place for them, with the status the error carries.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import msgspec
import structlog
from litestar import Request, Response, Router, get, post
from litestar.response import Stream

from guardproxy.audit.feedback import FEEDBACK_LABELS
from guardproxy.audit.records import Outcome, UnknownRequest
from guardproxy.audit.search import UNLABELLED
from guardproxy.audit.sink import AuditSink
from guardproxy.audit.store import AuditStore
from guardproxy.auth.access import Access
from guardproxy.console import drafts, exports, models
from guardproxy.console.detail import build_detail, step_thresholds
from guardproxy.console.errors import ConsoleDisabled, NotSignedIn, RecordNotFound, describe
from guardproxy.console.events import load_page, parse_filter, when
from guardproxy.console.forms import SIGN_IN_BYTES, check_form, read_form
from guardproxy.console.overview import CHART_HEIGHT, CHART_WIDTH, RANGES, SAMPLE_RECORDS, SERIES, build_overview
from guardproxy.console.redteam_page import REPORT_ENV, load_redteam
from guardproxy.console.render import SECURITY_HEADERS, Pages, redirect
from guardproxy.console.session import COOKIE, LOGIN_COOKIE, TOKEN_ENV, ConsoleAuth, Session, SignInRefused
from guardproxy.errors import InvalidRequest, PermissionDenied
from guardproxy.policies.loader import policy_fingerprint
from guardproxy.proxy.feedback import RequestNotFound, parse_feedback, store_feedback
from guardproxy.proxy.runtime import RuntimeHolder

log = structlog.get_logger(__name__)
AnyRequest = Request[Any, Any, Any]
_CSS = Path(__file__).with_name("static") / "console.css"
_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True, slots=True)
class ConsoleDeps:
    access: Access
    store: AuditStore
    sink: AuditSink
    holder: RuntimeHolder
    policy_path: Path
    token: str | None  # GUARDPROXY_CONSOLE_TOKEN, for `auth.mode: none`
    store_raw: bool  # the start-up policy's `audit.store_raw` (the sink's scrubbing is fixed at start-up)


def console_router(
    *,
    access: Access,
    store: AuditStore,
    sink: AuditSink,
    holder: RuntimeHolder,
    policy_path: Path,
    store_raw: bool,
    env: Mapping[str, str] = os.environ,
) -> Router:
    """The `/console` routes; `env` supplies GUARDPROXY_CONSOLE_TOKEN."""
    deps = ConsoleDeps(access, store, sink, holder, policy_path, env.get(TOKEN_ENV) or None, store_raw)
    auth = ConsoleAuth(deps.access, deps.token)
    pages = Pages(store_raw=deps.store_raw)

    def session_of(request: AnyRequest) -> Session:
        if not auth.enabled:
            raise ConsoleDisabled
        session = auth.session(request.cookies.get(COOKIE))
        if session is None:
            raise NotSignedIn
        return session

    async def form_of(request: AnyRequest, session: Session) -> dict[str, str]:
        """A checked form post (CSRF token and origin), urlencoded or multipart (a file), size-limited."""
        form = await read_form(request)
        check_form(request, session.csrf, form)
        return form

    def admin_only(session: Session) -> None:
        if not session.admin:
            raise PermissionDenied(f"'{session.actor}' has the role '{session.role}'; this needs an admin key.")

    # -- sign-in ------------------------------------------------------------------------------------

    @get("/login")
    async def login_page(request: AnyRequest) -> Response[str]:
        if not auth.enabled:
            raise ConsoleDisabled
        return _login_page(pages, deps.access.keys_on, None)

    @post("/login", status_code=303)
    async def login(request: AnyRequest) -> Response[str]:
        if not auth.enabled:
            raise ConsoleDisabled
        form = await read_form(request, limit=SIGN_IN_BYTES)
        check_form(request, request.cookies.get(LOGIN_COOKIE) or "", form)
        try:
            cookie, session = auth.sign_in(form.get("secret", ""))
        except SignInRefused as exc:
            # 200, as every form shown again with its message: a browser logs any 4xx page as a console error.
            return _login_page(pages, deps.access.keys_on, str(exc))
        log.info("console_sign_in", actor=session.actor, role=session.role.value)
        response = redirect("/console")
        response.set_cookie(
            COOKIE, cookie, path="/console", httponly=True, samesite="strict", secure=request.url.scheme == "https"
        )
        response.delete_cookie(LOGIN_COOKIE, path="/console")
        return response

    @post("/logout", status_code=303)
    async def logout(request: AnyRequest) -> Response[str]:
        session = session_of(request)
        await form_of(request, session)
        auth.sign_out(request.cookies.get(COOKIE))
        response = redirect("/console/login")
        response.delete_cookie(COOKIE, path="/console")
        return response

    # -- pages --------------------------------------------------------------------------------------

    @get("/")
    async def overview(request: AnyRequest) -> Response[str]:
        session = session_of(request)
        data = await asyncio.to_thread(build_overview, deps.store, request.query_params.get("range", ""))
        return pages.render(
            "overview.html",
            session=session,
            active="Overview",
            o=data,
            ranges=list(RANGES),
            sample_records=SAMPLE_RECORDS,
            chart_width=CHART_WIDTH,
            chart_height=CHART_HEIGHT,
            series=SERIES,
        )

    @get("/events")
    async def events(request: AnyRequest) -> Response[str]:
        session = session_of(request)
        query = dict(request.query_params)
        page = await asyncio.to_thread(load_page, deps.store, query)
        return pages.render(
            "events.html",
            session=session,
            active="Events",
            page=page,
            params=page.params,
            params_before=bool(query.get("before")),
            outcomes=[o.value for o in Outcome],
            reviews=[*FEEDBACK_LABELS, UNLABELLED],
        )

    @get("/events/{request_id:str}")
    async def event(request: AnyRequest) -> Response[str]:
        session = session_of(request)
        request_id = str(request.path_params["request_id"])
        record = await asyncio.to_thread(deps.store.get, request_id)
        if record is None:
            raise RecordNotFound(f"No audit record has the request id '{request_id}'.")
        history = tuple(await asyncio.to_thread(lambda: list(deps.store.feedback(request_id=request_id))))
        detail = build_detail(record, history, step_thresholds(deps.holder.current))
        notice = "Label saved." if request.query_params.get("saved") else None
        return pages.render(
            "event.html",
            session=session,
            active="Events",
            d=detail,
            when=when(record.ts),
            notice=notice,
            title=f"Request {request_id}",
        )

    @post("/events/{request_id:str}/label", status_code=303)
    async def label(request: AnyRequest) -> Response[str]:
        session = session_of(request)
        request_id = str(request.path_params["request_id"])
        form = await form_of(request, session)
        # Through POST /v1/feedback's own parser and writer: the stored row is the one the API would store.
        body: dict[str, str] = {"request_id": request_id, "label": form.get("label", "")}
        for name in ("note", "step"):
            if form.get(name, "").strip():
                body[name] = form[name]
        fb = parse_feedback(_encode(body), actor=session.actor, now=time.time())
        try:
            await store_feedback(deps.sink, fb)
        except UnknownRequest:
            raise RequestNotFound(f"No audit record has the request id '{request_id}'.") from None
        log.info("console_label", actor=session.actor, request_id=request_id, label=fb.label)
        return redirect(f"/console/events/{quote(request_id, safe='')}?saved=1")

    @get("/policy")
    async def policy_page(request: AnyRequest) -> Response[str]:
        session = session_of(request)
        running = drafts.running_text(deps.policy_path)
        return _policy(pages, session, deps, running, draft=running, validation=None, result=None)

    @post("/policy")
    async def policy_post(request: AnyRequest) -> Response[str]:
        session = session_of(request)
        form = await form_of(request, session)
        draft = form.get("draft", "").replace("\r\n", "\n")
        newest = _newest(form.get("newest", ""))
        validation = await asyncio.to_thread(drafts.validate, draft)
        result = None
        if validation.policy is not None and form.get("action") == "replay":
            result = await drafts.replay_draft(validation.policy, deps.store, newest)
        return _policy(
            pages,
            session,
            deps,
            drafts.running_text(deps.policy_path),
            draft=draft,
            validation=validation,
            result=result,
            newest=newest,
        )

    @get("/models")
    async def models_page(request: AnyRequest) -> Response[str]:
        session = session_of(request)
        registries = await asyncio.to_thread(models.registries, deps.holder.current)
        shadow = None
        if request.query_params.get("current") and request.query_params.get("candidate"):
            shadow = await asyncio.to_thread(
                models.shadow, deps.store, request.query_params["current"], request.query_params["candidate"]
            )
        return pages.render(
            "models.html",
            session=session,
            active="Models",
            registries=registries,
            shadow=shadow,
            query=dict(request.query_params),
        )

    @post("/models")
    async def models_post(request: AnyRequest) -> Response[str]:
        session = session_of(request)
        form = await form_of(request, session)
        admin_only(session)
        move = models.parse_move(form, await asyncio.to_thread(models.registries, deps.holder.current))
        if form.get("confirm") != "yes":
            return pages.render("confirm.html", session=session, active="Models", move=move, title="Confirm")
        notice = await asyncio.to_thread(models.apply_move, move, session.actor)
        registries = await asyncio.to_thread(models.registries, deps.holder.current)
        return pages.render(
            "models.html",
            session=session,
            active="Models",
            registries=registries,
            shadow=None,
            query={},
            notice=notice,
        )

    @get("/redteam")
    async def redteam_page(request: AnyRequest) -> Response[str]:
        session = session_of(request)
        report = env.get(REPORT_ENV)
        view = await asyncio.to_thread(load_redteam, Path(report) if report else None)
        return pages.render("redteam.html", session=session, active="Red team", view=view)

    @get("/export")
    async def export_page(request: AnyRequest) -> Response[str]:
        session = session_of(request)
        return pages.render("export.html", session=session, active="Export", result=None)

    @get("/export.jsonl")
    async def export_jsonl(request: AnyRequest) -> Stream:
        session_of(request)
        where = parse_filter(dict(request.query_params))
        return _download(
            exports.in_thread(lambda: exports.jsonl_lines(deps.store, where)), "audit.jsonl", "application/jsonl"
        )

    @get("/export.csv")
    async def export_csv(request: AnyRequest) -> Stream:
        session_of(request)
        where = parse_filter(dict(request.query_params))
        return _download(
            exports.in_thread(lambda: exports.csv_lines(deps.store, where)), "audit.csv", "text/csv; charset=utf-8"
        )

    @post("/import")
    async def import_labels(request: AnyRequest) -> Response[str]:
        session = session_of(request)
        form = await form_of(request, session)
        text = form.get("file", "").strip() or form.get("csv", "")  # an uploaded file, else the pasted text
        result = await exports.import_csv(text, deps.sink, deps.store, actor=session.actor)
        return pages.render("export.html", session=session, active="Export", result=result)

    @get("/static/console.css")
    async def css() -> Response[bytes]:
        if not auth.enabled:
            raise ConsoleDisabled
        return Response(_CSS.read_bytes(), media_type="text/css", headers={"cache-control": "max-age=300"})

    def render_error(request: AnyRequest, exc: Exception) -> Response[str]:
        if isinstance(exc, ConsoleDisabled):
            return Response("Not Found", status_code=404, media_type="text/plain", headers=SECURITY_HEADERS)
        if isinstance(exc, NotSignedIn):
            return redirect("/console/login")
        session = auth.session(request.cookies.get(COOKIE)) if auth.enabled else None
        status, title, message = describe(exc)
        if status >= 500:
            log.error("console_error", method=request.method, path=request.url.path, exc_info=exc)
        return pages.render("error.html", status=status, session=session, title=title, message=message)

    return Router(
        path="/console",
        route_handlers=[
            login_page,
            login,
            logout,
            overview,
            events,
            event,
            label,
            policy_page,
            policy_post,
            models_page,
            models_post,
            redteam_page,
            export_page,
            export_jsonl,
            export_csv,
            import_labels,
            css,
        ],
        exception_handlers={Exception: render_error},
    )


def _login_page(pages: Pages, keys_on: bool, error: str | None) -> Response[str]:
    token = secrets.token_urlsafe(32)
    response = pages.render("login.html", title="Sign in", login_csrf=token, error=error, keys_on=keys_on)
    response.set_cookie(LOGIN_COOKIE, token, path="/console", httponly=True, samesite="strict", max_age=3600)
    return response


def _newest(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        return drafts.DEFAULT_REPLAY
    if not 1 <= value <= drafts.MAX_REPLAY:
        raise InvalidRequest(f"newest: replay between 1 and {drafts.MAX_REPLAY} records, got {value}")
    return value


def _policy(
    pages: Pages,
    session: Session,
    deps: ConsoleDeps,
    running: str,
    *,
    draft: str,
    validation: drafts.Validation | None,
    result: drafts.DraftReplay | None,
    newest: int = drafts.DEFAULT_REPLAY,
) -> Response[str]:
    return pages.render(
        "policy.html",
        session=session,
        active="Policy",
        policy_path=str(deps.policy_path),
        fingerprint=policy_fingerprint(deps.holder.current.policy),
        running=running,
        draft=draft,
        validation=validation,
        draft_result=result,
        newest=newest,
        max_replay=drafts.MAX_REPLAY,
    )


def _download(lines: Any, filename: str, media_type: str) -> Stream:
    return Stream(
        lines,
        media_type=media_type,
        headers={**SECURITY_HEADERS, "content-disposition": f'attachment; filename="{filename}"'},
    )
