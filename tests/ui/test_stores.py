"""The UI over every searchable store: the same pages from PostgreSQL and a JSONL table."""

from __future__ import annotations

import re
from pathlib import Path

import orjson

from tests.ui.conftest import in_process, seed
from tests.ui.test_pages import link, listed


def walk(http, url: str) -> list[str]:  # type: ignore[no-untyped-def]
    seen: list[str] = []
    next_url: str | None = url
    while next_url is not None:
        page = http.get(next_url).text
        seen += listed(page)
        next_url = link(page, "next")
    return seen


def test_postgresql_store_serves_every_page(postgres_uri: str) -> None:
    seeded = seed(postgres_uri)
    newest_first = [t.info.trace_id for t in reversed(seeded.all)]
    with in_process(postgres_uri) as http:
        assert walk(http, "/?n=4") == newest_first
        errors = http.get("/", params={"q": "span.status = 'ERROR'"}).text
        assert set(listed(errors)) == {seeded.agents[7].info.trace_id, seeded.hostile.info.trace_id}
        a, b = seeded.agents[0].info.trace_id, seeded.agents[1].info.trace_id
        assert http.get("/compare", params=[("id", a), ("id", b)]).status_code == 200
        rows = http.get("/export", params={"q": "tags.app.version = 'v1'"}).content.splitlines()
        assert len(rows) == 6 and orjson.loads(rows[0])["tags"] == {"app.version": "v1"}
        confirm = http.get("/delete", params={"id": a}).text
        token = re.search(r'name="csrf" value="([^"]+)"', confirm).group(1)  # type: ignore[union-attr]
        assert http.post("/delete", data={"id": a, "csrf": token}).status_code == 303
        assert a not in walk(http, "/")


def test_jsonl_table_is_browsable_but_not_deletable(tmp_path: Path) -> None:
    """An append-only table offers no Delete and no feedback form: both could only fail."""
    seeded = seed(f"jsonl://{tmp_path}/table.jsonl.zst")
    with in_process(seeded.uri) as http:
        assert walk(http, "/?n=5") == [t.info.trace_id for t in reversed(seeded.all)]
        assert 'formaction="/delete"' not in http.get("/").text
        victim = seeded.agents[0].info.trace_id
        page = http.get(f"/traces/{victim}")
        assert page.status_code == 200 and "/feedback" not in page.text
        refused = http.get("/delete", params={"id": victim})
        assert refused.status_code == 403 and "append-only" in refused.text
        posted = http.post(f"/traces/{victim}/feedback", data={"name": "ok", "verdict": "true"})
        assert posted.status_code == 403 and "append-only" in posted.text
        assert "Traceback" not in refused.text + posted.text
        assert victim in walk(http, "/")


def test_a_forged_page_token_is_a_clear_400(tmp_path: Path) -> None:
    seeded = seed(f"sqlite:///{tmp_path}/t.db")
    with in_process(seeded.uri) as http:
        page = http.get("/", params={"page": "not-a-token"})
        assert page.status_code == 400 and "not a valid page token" in page.text
