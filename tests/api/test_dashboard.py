"""The /ui dashboard over real HTTP: its login session, CSRF checks, which
batches a key sees, and what its pages and downloads hold. (The real-browser
run is tests/e2e/test_dashboard_browser.py.)"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx

from batchgate.api.ui import pages
from batchgate.services.keys import KeyService
from tests import harness
from tests.fakes.upstream import FakeUpstream

MODEL = harness.FAKE_MODEL
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def browser(server: harness.RunningServer, **headers: str) -> httpx.Client:
    """A client with a cookie jar and no API key: what a browser sends."""
    return server.http_client(base_url=server.base_url, timeout=30, headers=headers)


def csrf_of(page: httpx.Response) -> str:
    match = _CSRF.search(page.text)
    assert match, page.text
    return match.group(1)


def log_in(client: httpx.Client, api_key: str) -> httpx.Response:
    form = client.get("/ui/login")
    return client.post("/ui/login", data={"api_key": api_key, "csrf_token": csrf_of(form)})


def submit(server: harness.RunningServer, texts: list[str], api_key: str | None = None) -> str:
    return server.submit(MODEL, texts, api_key)


def test_login_sets_an_httponly_samesite_strict_cookie_scoped_to_the_dashboard(
    server: harness.RunningServer,
) -> None:
    with browser(server) as client:
        response = log_in(client, server.api_key)
    assert response.status_code == 303
    assert response.headers["location"] == "/ui/batches"
    cookie = next(
        value
        for value in response.headers.get_list("set-cookie")
        if value.startswith("bg_session=")
    )
    attributes = {part.strip().lower() for part in cookie.split(";")}
    assert {"httponly", "samesite=strict", "path=/ui"} <= attributes
    assert "secure" not in attributes  # plain http: a Secure cookie would never come back
    assert server.api_key not in cookie


def test_a_wrong_key_gets_the_login_form_again_with_the_reason(
    server: harness.RunningServer,
) -> None:
    with browser(server) as client:
        response = log_in(client, "bg-not-a-key-of-this-server")
        assert response.status_code == 401
        assert "invalid API key" in response.text
        assert "bg_session" not in client.cookies
        assert client.get("/ui/batches").headers["location"] == "/ui/login"


def test_pages_without_a_session_send_the_browser_to_the_login_page(
    server: harness.RunningServer,
) -> None:
    with browser(server) as client:
        page = client.get("/ui/batches")
        poll = client.get("/ui/batches/rows", headers={"hx-request": "true"})
    assert (page.status_code, page.headers["location"]) == (303, "/ui/login")
    # An htmx poll is told to navigate, rather than given a page to swap in.
    assert (poll.status_code, poll.headers["hx-redirect"]) == (401, "/ui/login")


def test_a_login_post_without_the_forms_token_is_refused(
    server: harness.RunningServer,
) -> None:
    with browser(server) as client:
        client.get("/ui/login")
        response = client.post("/ui/login", data={"api_key": server.api_key})
        assert response.status_code == 403
        assert "bg_session" not in client.cookies


def test_cancel_without_the_sessions_token_is_refused_and_changes_nothing(
    server: harness.RunningServer, upstream: FakeUpstream
) -> None:
    upstream.configure(latency_ms=2000)
    batch_id = submit(server, ["slow"])
    with browser(server) as client, server.client(accept="application/json") as api:
        log_in(client, server.api_key)
        forged = client.post(f"/ui/batches/{batch_id}/cancel", data={"csrf_token": "guess"})
        missing = client.post(f"/ui/batches/{batch_id}/cancel")
        assert (forged.status_code, missing.status_code) == (403, 403)
        assert api.get(f"/v1/batches/{batch_id}").json()["status"] == "in_progress"


def test_cancel_from_the_batch_page_cancels_the_batch(
    server: harness.RunningServer, upstream: FakeUpstream
) -> None:
    upstream.configure(latency_ms=2000)
    batch_id = submit(server, ["slow one", "slow two"])
    with browser(server) as client:
        log_in(client, server.api_key)
        page = client.get(f"/ui/batches/{batch_id}")
        response = client.post(f"/ui/batches/{batch_id}/cancel", data={"csrf_token": csrf_of(page)})
    assert (response.status_code, response.headers["location"]) == (303, f"/ui/batches/{batch_id}")
    assert server.wait_ended(batch_id)["status"] == "cancelled"


def test_another_keys_batches_are_neither_listed_nor_reachable(
    server: harness.RunningServer,
) -> None:
    alice, bob = server.new_key("alice"), server.new_key("bob")
    mine = submit(server, ["hello"], api_key=alice)
    theirs = submit(server, ["hello"], api_key=bob)
    server.wait_ended(theirs, api_key=bob)
    with browser(server) as client:
        log_in(client, alice)
        listing = client.get("/ui/batches").text
        assert mine in listing
        assert theirs not in listing
        for path in ("", "/summary", "/errors", "/results.jsonl"):
            response = client.get(f"/ui/batches/{theirs}{path}")
            assert response.status_code == 404, path
        page = client.get(f"/ui/batches/{mine}")
        refused = client.post(f"/ui/batches/{theirs}/cancel", data={"csrf_token": csrf_of(page)})
        assert refused.status_code == 404


def test_an_admin_key_sees_every_keys_batches_and_whose_they_are(
    server: harness.RunningServer,
) -> None:
    bob = server.new_key("bob")
    theirs = submit(server, ["hello"], api_key=bob)
    server.wait_ended(theirs, api_key=bob)
    with browser(server) as client:
        log_in(client, server.api_key)  # the operator's key is an admin key
        listing = client.get("/ui/batches").text
        page = client.get(f"/ui/batches/{theirs}")
    row = listing[listing.index(f'data-batch-id="{theirs}"') :]
    assert '<td class="owner">bob</td>' in row[: row.index("</tr>")]
    assert page.status_code == 200


def test_logging_out_clears_the_session_cookie(server: harness.RunningServer) -> None:
    with browser(server) as client:
        log_in(client, server.api_key)
        page = client.get("/ui/batches")
        response = client.post("/ui/logout", data={"csrf_token": csrf_of(page)})
        assert (response.status_code, response.headers["location"]) == (303, "/ui/login")
        assert "bg_session" not in client.cookies
        assert client.get("/ui/batches").headers["location"] == "/ui/login"


def test_revoking_the_key_ends_its_dashboard_sessions(server: harness.RunningServer) -> None:
    other = server.new_key("short-lived")
    with browser(server) as client:
        log_in(client, other)
        assert client.get("/ui/batches").status_code == 200
        KeyService(server.store).revoke_by_id_or_name("short-lived")
        assert client.get("/ui/batches").headers["location"] == "/ui/login"


def test_a_tampered_session_cookie_is_not_a_session(server: harness.RunningServer) -> None:
    with browser(server) as client:
        log_in(client, server.api_key)
        token = client.cookies["bg_session"]
        client.cookies.set("bg_session", token[:-2] + ("AA" if token[-2:] != "AA" else "BB"))
        assert client.get("/ui/batches").headers["location"] == "/ui/login"


def test_the_batch_list_shows_progress_counts_and_cost(server: harness.RunningServer) -> None:
    batch_id = submit(server, ["one", "two", "three"])
    server.wait_ended(batch_id)
    with browser(server) as client:
        log_in(client, server.api_key)
        rows = client.get("/ui/batches/rows").text
    row = rows[rows.index(f'data-batch-id="{batch_id}"') :]
    row = row[: row.index("</tr>")]
    assert 'aria-valuenow="3"' in row
    assert "completed" in row
    cost = row.split("</td>")[-3].rsplit(">", 1)[-1].strip()
    assert cost.startswith("$0.0")  # the fake reports usage, so it costs something


def test_the_batch_list_keeps_polling_slowly_once_every_batch_ended(
    server: harness.RunningServer,
) -> None:
    """So a batch submitted meanwhile shows up; an older page of ended
    batches cannot change, and does not poll."""
    ended = submit(server, ["one"])
    server.wait_ended(ended)
    with browser(server) as client:
        log_in(client, server.api_key)
        first = client.get("/ui/batches/rows").text
        older = client.get("/ui/batches/rows", params={"after": ended}).text
        submitted = submit(server, ["two"])
        again = client.get("/ui/batches/rows").text
    refresh = server.settings.ui.refresh_seconds
    assert f'hx-trigger="every {refresh * pages.IDLE_REFRESH_FACTOR:g}s"' in first
    assert "hx-trigger" not in older[: older.index(">")]
    assert f'data-batch-id="{submitted}"' in again


def test_the_batch_page_groups_failed_requests_by_message(
    server: harness.RunningServer, upstream: FakeUpstream
) -> None:
    for text in ("bad a1", "bad a2", "bad a3"):
        upstream.script_for(text, {"status": 400, "message": "prompt is too spicy"})
    upstream.script_for("bad b1", {"status": 400, "message": "context too long"})
    batch_id = submit(server, ["bad a1", "fine", "bad a2", "bad b1", "bad a3"])
    server.wait_ended(batch_id)
    with browser(server) as client:
        log_in(client, server.api_key)
        page = client.get(f"/ui/batches/{batch_id}").text
    table = page[page.index('class="errors"') :]
    groups = re.findall(
        r'<td class="num">(\d+)</td>.*?<td class="message">([^<]*)</td>', table, re.S
    )
    assert [(int(n), message) for n, message in groups] == [
        (3, "upstream returned HTTP 400: prompt is too spicy"),
        (1, "upstream returned HTTP 400: context too long"),
    ]


def test_failures_of_a_running_batch_show_up_while_it_runs(
    server: harness.RunningServer, upstream: FakeUpstream
) -> None:
    upstream.script_for("bad", {"status": 400, "message": "no such thing"})
    upstream.script_for("slow", {"kind": "hang", "hang_seconds": 5})
    batch_id = submit(server, ["bad", "slow"])
    with browser(server) as client:
        log_in(client, server.api_key)

        def failure_shown() -> httpx.Response | None:
            page = client.get(f"/ui/batches/{batch_id}/errors")
            return page if "no such thing" in page.text else None

        fragment = harness.wait_until(failure_shown, 30, "the failure to show")
    assert 'hx-get="/ui/batches/' in fragment.text  # still refreshing: the batch runs on


def test_results_download_in_the_batchs_own_result_shape(
    server: harness.RunningServer,
) -> None:
    batch_id = submit(server, ["one", "two"])
    server.wait_ended(batch_id)
    with browser(server) as client:
        log_in(client, server.api_key)
        response = client.get(f"/ui/batches/{batch_id}/results.jsonl")
    assert response.status_code == 200
    assert "attachment" in response.headers["content-disposition"]
    lines: list[dict[str, Any]] = [json.loads(line) for line in response.text.splitlines()]
    assert [(line["custom_id"], line["result"]["type"]) for line in lines] == [
        ("r0", "succeeded"),
        ("r1", "succeeded"),
    ]


def test_a_running_batch_offers_the_results_finished_so_far(
    server: harness.RunningServer, upstream: FakeUpstream
) -> None:
    upstream.script_for("slow", {"kind": "hang", "hang_seconds": 5})
    batch_id = submit(server, ["one", "slow", "two"])
    with browser(server) as client:
        log_in(client, server.api_key)
        harness.wait_until(
            lambda: "Download results so far (2)" in client.get(f"/ui/batches/{batch_id}").text,
            30,
            "two of the three requests to finish",
        )
        response = client.get(f"/ui/batches/{batch_id}/results.jsonl")
    assert response.headers["x-batchgate-results-complete"] == "false"
    assert f"{batch_id}_results_so_far.jsonl" in response.headers["content-disposition"]
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert [line["custom_id"] for line in lines] == ["r0", "r2"]


def test_the_models_page_shows_queue_throughput_and_error_rate(
    server: harness.RunningServer, upstream: FakeUpstream
) -> None:
    upstream.script_for("bad", {"status": 400, "message": "no"})
    done = submit(server, ["bad", "good 1", "good 2", "good 3"])
    server.wait_ended(done)
    upstream.configure(latency_ms=3000)
    submit(server, [f"slow {i}" for i in range(12)])  # more than the model takes at once
    with browser(server) as client:
        log_in(client, server.api_key)
        rows = client.get("/ui/models/rows").text
    row = rows[rows.index(f'data-model="{MODEL}"') :]
    cells = re.findall(r'<td class="num">(.*?)</td>', row[: row.index("</tr>")], re.S)
    queued, running, throughput, error_rate = (re.sub("<[^>]+>", " ", c).split() for c in cells[:4])
    assert int(queued[0]) + int(running[0]) == 12
    assert int(running[0]) > 0
    assert throughput[0].endswith("/min")  # 4 requests ended in the last 5 minutes
    assert error_rate == ["25", "%"]
