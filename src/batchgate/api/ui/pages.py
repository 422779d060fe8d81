"""The dashboard's pages: server-rendered templates, refreshed in place by
htmx while something is still running (no build step, no client framework).

A key sees only its own batches, exactly as through the API; an admin key
sees every key's, with their owners named.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fastapi
from fastapi.responses import RedirectResponse, StreamingResponse
from fastapi.templating import Jinja2Templates

from batchgate.api import common
from batchgate.api.deps import Services, ServicesDep, client_address
from batchgate.api.ui import auth, format, forms
from batchgate.backends.provider_batch import options as batch_options
from batchgate.domain import errors, partial_results, progress, states, stats
from batchgate.domain import upstream_jobs as uj
from batchgate.domain.batch import Batch
from batchgate.domain.states import RESULT_STATES, BatchStatus
from batchgate.services import sessions

router = fastapi.APIRouter(prefix="/ui", include_in_schema=False)

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
templates.env.filters.update(format.FILTERS)
templates.env.globals.update(batch_label=progress.label, batch_phase=progress.phase)

PAGE_SIZE = 25
# Throughput and error rate on the models page are over this recent window.
MODEL_WINDOW_SECONDS = 300.0
# What each path of a provider-batch model served and cost is over this
# window: a job's results arrive all at once, so the throughput window
# would mostly show nothing. Read on page load only (not polled).
PATH_COST_WINDOW_SECONDS = 86_400.0
# The batches list with nothing running still polls, this many times slower,
# so a batch submitted elsewhere (API, CLI, another tab) shows up.
IDLE_REFRESH_FACTOR = 5

# Pages show one account's data: never cached, never framed, scripts only
# from here (inline styles are allowed for the progress bars' widths).
_HEADERS = {
    "cache-control": "no-store",
    "content-security-policy": (
        "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; "
        "form-action 'self'; base-uri 'none'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}


def render(
    request: fastapi.Request,
    name: str,
    context: dict[str, Any],
    *,
    session: sessions.Session | None = None,
    status_code: int = 200,
) -> fastapi.Response:
    services: Services = request.app.services
    context = {
        "session": session,
        "now": time.time(),
        "refresh_seconds": services.settings.ui.refresh_seconds,
        **context,
    }
    response = templates.TemplateResponse(request, name, context, status_code=status_code)
    response.headers.update(_HEADERS)
    return response


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def error_page(
    request: fastapi.Request, status_code: int, message: str, retry_after: float | None = None
) -> fastapi.Response:
    """The error as a page. A rate-limited caller (``retry_after``) gets it
    without its session looked up: that lookup is what the limit spares."""
    services: Services = request.app.services
    session = None if retry_after is not None else auth.optional_session(request, services)
    context = {"status_code": status_code, "message": message}
    response = render(request, "error.html", context, session=session, status_code=status_code)
    if retry_after is not None:
        response.headers["retry-after"] = str(max(1, math.ceil(retry_after)))
    return response


def _visible_owner(session: sessions.Session) -> str | None:
    """Whose batches this session may see: its own key's, or (None) every
    key's for an admin key."""
    return None if session.key.admin else session.key.id


def _owner_names(services: Services, session: sessions.Session) -> dict[str, str]:
    """Key id -> name, for the owner column only an admin sees."""
    if not session.key.admin:
        return {}
    return {key.id: key.name for key in services.keys.list()}


def _batch_of(services: Services, session: sessions.Session, batch_id: str) -> Batch:
    return services.batches.get(_visible_owner(session), batch_id)


# -- logging in and out ----------------------------------------------------------
@router.get("")
@router.get("/")
def home() -> RedirectResponse:
    return see_other("/ui/batches")


@router.get("/login", response_model=None)
def login_page(request: fastapi.Request, services: ServicesDep) -> fastapi.Response:
    if auth.optional_session(request, services):
        return see_other("/ui/batches")
    return _login_form(request, error=None, status_code=200)


def _login_form(request: fastapi.Request, error: str | None, status_code: int) -> fastapi.Response:
    token = auth.login_csrf(request)
    response = render(
        request, "login.html", {"csrf_token": token, "error": error}, status_code=status_code
    )
    auth.remember_login_csrf(request, response, token)
    return response


@router.post("/login", response_model=None)
def log_in(
    request: fastapi.Request, services: ServicesDep, form: forms.LoginForm
) -> fastapi.Response:
    auth.check_login_csrf(request, form.get("csrf_token"))
    try:
        _session, token = services.sessions.log_in(form.get("api_key", "").strip())
    except errors.Unauthorized as exc:
        # Past the address's failed-auth budget this raises a 429 instead.
        services.rate_limiter.failed(client_address(request))
        return _login_form(request, error=exc.message, status_code=401)
    response = see_other("/ui/batches")
    auth.start_session(request, response, token, services.sessions.max_age_seconds)
    return response


@router.post("/logout")
def log_out(
    session: auth.SessionDep, form: forms.SessionForm, services: ServicesDep
) -> RedirectResponse:
    forms.check_csrf(session, form)
    services.sessions.log_out(session)
    response = see_other("/ui/login")
    auth.end_session(response)
    return response


# -- batches ---------------------------------------------------------------------
@router.get("/batches")
def batches_page(
    request: fastapi.Request,
    session: auth.SessionDep,
    services: ServicesDep,
    after: str | None = None,
) -> fastapi.Response:
    return _batches(request, session, services, after, "batches.html")


@router.get("/batches/rows")
def batch_rows(
    request: fastapi.Request,
    session: auth.SessionDep,
    services: ServicesDep,
    after: str | None = None,
) -> fastapi.Response:
    """The batches table alone, for htmx to swap in while batches run."""
    return _batches(request, session, services, after, "_batch_rows.html")


def _batches(
    request: fastapi.Request,
    session: sessions.Session,
    services: Services,
    after: str | None,
    template: str,
) -> fastapi.Response:
    batches, has_more = services.batches.list(
        _visible_owner(session), limit=PAGE_SIZE, after=after or None
    )
    now = time.time()
    live = any(not batch.status.is_ended for batch in batches)
    context = {
        "rows": [(batch, progress.of(batch, now)) for batch in batches],
        "owners": _owner_names(services, session),
        "after": after,
        "older": batches[-1].id if has_more and batches else None,
        "poll_seconds": _batches_poll_seconds(services, live=live, first_page=not after),
        "idle_refresh_seconds": services.settings.ui.refresh_seconds * IDLE_REFRESH_FACTOR,
        "nav": "batches",
    }
    return render(request, template, context, session=session)


def _batches_poll_seconds(services: Services, *, live: bool, first_page: bool) -> float | None:
    """How often the batches table refreshes: at the page rate while one of
    its batches runs; the first page keeps polling when all have ended, more
    slowly, so a batch submitted meanwhile appears. An older page whose
    batches all ended never changes: no polling."""
    refresh = services.settings.ui.refresh_seconds
    if live:
        return refresh
    return refresh * IDLE_REFRESH_FACTOR if first_page else None


def _summary_context(batch: Batch) -> dict[str, Any]:
    return {
        "batch": batch,
        "progress": progress.of(batch, time.time()),
        "cancellable": states.can_transition(batch.status, BatchStatus.CANCELLING),
    }


@router.get("/batches/{batch_id}")
def batch_page(
    batch_id: str, request: fastapi.Request, session: auth.SessionDep, services: ServicesDep
) -> fastapi.Response:
    batch = _batch_of(services, session, batch_id)
    context = {
        **_summary_context(batch),
        **_errors_context(services, batch),
        **_jobs_context(services, batch),
        "nav": "batches",
    }
    return render(request, "batch.html", context, session=session)


def _jobs_context(services: Services, batch: Batch) -> dict[str, Any]:
    """The provider-batch jobs serving the batch, oldest first, and how
    many rows each path served (none of either for a batch of other models:
    the page shows no such section). With neither yet, an open batch's page
    looks again while this server has a provider-batch model at all."""
    models = services.settings.models.values()
    if not any(model.backend in batch_options.KINDS for model in models):
        return {"jobs": [], "served": [], "jobs_possible": False}
    jobs = sorted(services.batches.upstream_jobs(batch), key=lambda job: (job.created_at, job.id))
    served = services.batches.served_paths(batch)
    return {
        "jobs": jobs,
        # (path, rows it served), the batch path first; a path that served
        # none is left out.
        "served": [(path.value, served[path]) for path in uj.Path if served.get(path)],
        "jobs_possible": True,
        "jobs_refresh_seconds": services.settings.ui.refresh_seconds * 5,
    }


def _batch_part(
    request: fastapi.Request,
    session: sessions.Session,
    services: Services,
    batch_id: str,
    template: str,
    context_of: Callable[[Services, Batch], dict[str, Any]],
) -> fastapi.Response:
    """One section of the batch page on its own (``template``, with what
    ``context_of`` gives the whole page for it), for htmx to refresh."""
    batch = _batch_of(services, session, batch_id)
    context = {"batch": batch, **context_of(services, batch)}
    return render(request, template, context, session=session)


@router.get("/batches/{batch_id}/jobs")
def batch_jobs(
    batch_id: str,
    request: fastapi.Request,
    session: auth.SessionDep,
    services: ServicesDep,
) -> fastapi.Response:
    """The batch page's upstream jobs, for htmx to refresh."""
    return _batch_part(request, session, services, batch_id, "_batch_jobs.html", _jobs_context)


def _errors_context(services: Services, batch: Batch) -> dict[str, Any]:
    return {
        "error_groups": progress.group_errors(
            services.batches.results(batch, progress.FAILED_STATES)
        ),
        # Grouping reads every failed row: refreshed less often than the counts.
        "errors_refresh_seconds": services.settings.ui.refresh_seconds * 5,
    }


@router.get("/batches/{batch_id}/errors")
def batch_errors(
    batch_id: str,
    request: fastapi.Request,
    session: auth.SessionDep,
    services: ServicesDep,
) -> fastapi.Response:
    """The batch page's failed requests, grouped, for htmx to refresh."""
    return _batch_part(request, session, services, batch_id, "_batch_errors.html", _errors_context)


@router.get("/batches/{batch_id}/summary")
def batch_summary(
    batch_id: str,
    request: fastapi.Request,
    session: auth.SessionDep,
    services: ServicesDep,
) -> fastapi.Response:
    """The batch page's live part. Once the batch ends, htmx reloads the
    whole page, which then shows the final errors and the download."""
    batch = _batch_of(services, session, batch_id)
    response = render(request, "_batch_summary.html", _summary_context(batch), session=session)
    if batch.status.is_ended:
        response.headers["hx-refresh"] = "true"
    return response


@router.post("/batches/{batch_id}/cancel")
def cancel_batch(
    batch_id: str,
    session: auth.SessionDep,
    services: ServicesDep,
    form: forms.SessionForm,
) -> RedirectResponse:
    forms.check_csrf(session, form)
    batch = _batch_of(services, session, batch_id)
    services.batches.cancel(batch.owner, batch.id)
    return see_other(f"/ui/batches/{batch.id}")


@router.get("/batches/{batch_id}/results.jsonl", response_model=None)
def download_results(
    batch_id: str, session: auth.SessionDep, services: ServicesDep
) -> StreamingResponse:
    """Every finished request's result, in the shape the batch's own API
    serves it: all of them once the batch has ended, those so far before."""
    batch = _batch_of(services, session, batch_id)
    rows = services.batches.results(batch, RESULT_STATES)
    name = f"{batch.id}_results{'' if batch.status.is_ended else '_so_far'}.jsonl"
    return StreamingResponse(
        common.result_lines(batch, rows),
        media_type="application/x-ndjson",
        headers={
            "content-disposition": f'attachment; filename="{name}"',
            **partial_results.complete_header(batch.status.is_ended),
        },
    )


# -- models ----------------------------------------------------------------------
def _models_context(services: Services, session: sessions.Session) -> dict[str, Any]:
    now = time.time()
    found = services.store.model_stats(
        now, window_seconds=MODEL_WINDOW_SECONDS, owner=_visible_owner(session)
    )
    rows = stats.for_models(found, list(services.settings.models))
    return {
        "rows": rows,
        "configured": services.settings.models,
        "window_seconds": MODEL_WINDOW_SECONDS,
        "now": now,
    }


def _provider_batch_figures(services: Services, now: float) -> list[stats.ProviderBatchFigures]:
    """Each configured provider-batch model: what each path served and cost
    over the window, and its jobs' measured turnaround."""
    names = [m.name for m in services.settings.models.values() if m.backend in batch_options.KINDS]
    if not names:
        return []
    costs = services.store.path_costs(now - PATH_COST_WINDOW_SECONDS)
    figures: list[stats.ProviderBatchFigures] = []
    for name in names:
        seconds, sample = services.estimates.measured_turnaround(name)
        figures.append(
            stats.ProviderBatchFigures(name, stats.paths_of(name, costs), seconds, sample)
        )
    return figures


@router.get("/models")
def models_page(
    request: fastapi.Request, session: auth.SessionDep, services: ServicesDep
) -> fastapi.Response:
    context = {
        **_models_context(services, session),
        # What the operator pays the provider is the operator's business.
        "provider_batches": (
            _provider_batch_figures(services, time.time()) if session.key.admin else []
        ),
        "path_cost_window_seconds": PATH_COST_WINDOW_SECONDS,
        "nav": "models",
    }
    return render(request, "models.html", context, session=session)


@router.get("/models/rows")
def model_rows(
    request: fastapi.Request, session: auth.SessionDep, services: ServicesDep
) -> fastapi.Response:
    """The models table alone, for htmx to refresh."""
    return render(request, "_model_rows.html", _models_context(services, session), session=session)
