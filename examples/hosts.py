"""Host functions for the file-defined examples (``etl.toml``, ``api_orchestration.json``).

In-memory stand-ins, shaped like the real thing and with network-like latency:

* ``http_get(url, {headers})`` / ``http_post(url, body, {headers})``: an HTTP client
  answering ``{status, headers, json}`` from a few fake services (a paginated CRM, an
  FX-rates feed, an OAuth token endpoint, a user API, a recommender);
* ``db_query(sql, params)``: an in-memory SQLite database of orders, rows as objects;
* ``warehouse_load(table, rows, {partition})``: a bulk loader into an in-memory
  warehouse that replaces the partition, as an idempotent daily load would.

``API`` is the dict of host functions the CLI takes::

    python -m actors run examples/etl.toml --api examples.hosts:API --event '{"day": "2024-05-01"}'

The example scripts build a fresh :class:`Services` each, so they can print what
happened (the HTTP call log, the warehouse table).
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio

JSON = Any
Handler = Callable[[dict[str, list[str]], JSON, dict[str, str]], tuple[int, JSON]]

# -- the data behind the fake services --------------------------------------------------

CUSTOMERS = [
    {"id": 1, "name": "Anna Schmidt", "country": "DE"},
    {"id": 2, "name": "Louis Martin", "country": "FR"},
    {"id": 3, "name": "Emma Brown", "country": "GB"},
    {"id": 4, "name": "Jonas Weber", "country": "DE"},
    {"id": 5, "name": "Olivia Smith", "country": "US"},
]
ORDERS = [  # id, customer_id, day, status, amount (in currency units), currency
    (1001, 1, "2024-05-01", "paid", 120.00, "EUR"),
    (1002, 2, "2024-05-01", "paid", 80.50, "EUR"),
    (1003, 3, "2024-05-01", "paid", 64.50, "GBP"),
    (1004, 4, "2024-05-01", "paid", 35.00, "EUR"),
    (1005, 5, "2024-05-01", "paid", 216.00, "USD"),
    (1006, 9, "2024-05-01", "paid", 10.00, "EUR"),  # unknown customer: rejected
    (1007, 1, "2024-05-01", "refunded", 50.00, "EUR"),  # not paid: not extracted
    (1008, 2, "2024-05-02", "paid", 99.00, "EUR"),  # another day
]
RATES = {"USD": 1.08, "GBP": 0.86, "CHF": 0.98}  # 1 EUR = rate x currency
USERS = {
    42: {"id": 42, "name": "Ada Lovelace", "email": "ada@example.com", "interests": ["maths"]},
}
USER_ORDERS = {42: [{"id": "o-17", "sku": "book-analytical-engine", "total": 39.9}]}
CATALOGUE = {
    "maths": ["book-analytical-engine", "book-number-theory", "slide-rule", "abacus"],
}
LOYALTY = {42: {"tier": "gold", "points": 1870}}
CLIENTS = {"demo-client": "s3cret"}
CRM_TOKEN = "crm-demo-token"


# -- the HTTP client --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Call:
    """One HTTP call the client made: method, URL, status, start and end (s since t0)."""

    method: str
    url: str
    status: int
    start: float
    end: float


@dataclass
class FakeHttp:
    """Routes ``(method, url)`` to handlers after a per-host latency, and logs every call."""

    latency: dict[str, float]
    routes: list[tuple[str, re.Pattern[str], Handler]] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    t0: float = field(default_factory=time.monotonic)

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        self.routes.append((method, re.compile(pattern), handler))

    async def request(
        self, method: str, url: str, body: JSON = None, options: JSON = None
    ) -> dict[str, Any]:
        headers = dict((options or {}).get("headers") or {})
        parts = urlsplit(url)
        start = time.monotonic() - self.t0
        await anyio.sleep(self.latency.get(parts.hostname or "", 0.05))
        target = parts.netloc + parts.path
        status, payload = self._dispatch(method, target, parts.query, body, headers)
        self.calls.append(Call(method, url, status, start, time.monotonic() - self.t0))
        return {"status": status, "headers": {"content-type": "application/json"}, "json": payload}

    def _dispatch(
        self, method: str, target: str, query: str, body: JSON, headers: dict[str, str]
    ) -> tuple[int, JSON]:
        for route_method, pattern, handler in self.routes:
            match = pattern.fullmatch(target)
            if match and route_method == method:
                params = {**parse_qs(query), **{k: [v] for k, v in match.groupdict().items()}}
                return handler(params, body, headers)
        return 404, {"error": "not_found", "path": target}


# -- the services -----------------------------------------------------------------------


class Services:
    """One set of fake backends; :meth:`api` gives the host functions bound to them."""

    def __init__(self) -> None:
        self.http = FakeHttp(
            latency={
                "crm.example.com": 0.06,
                "fx.example.com": 0.04,
                "auth.example.com": 0.03,
                "api.example.com": 0.05,
                "reco.example.com": 0.08,
            }
        )
        self.tokens: set[str] = set()
        self.warehouse: dict[str, list[dict[str, Any]]] = {}
        self.db = sqlite3.connect(":memory:", check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        self.db.execute(
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER, day TEXT,"
            " status TEXT, amount REAL, currency TEXT)"
        )
        self.db.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?)", ORDERS)
        self._add_routes()

    def api(self) -> dict[str, Callable[..., Any]]:
        return {
            "http_get": self.http_get,
            "http_post": self.http_post,
            "db_query": self.db_query,
            "warehouse_load": self.warehouse_load,
        }

    # host functions (JS: `await http_get(url, {headers})`, ...)

    async def http_get(self, url: str, options: JSON = None) -> dict[str, Any]:
        return await self.http.request("GET", url, None, options)

    async def http_post(self, url: str, body: JSON = None, options: JSON = None) -> dict[str, Any]:
        return await self.http.request("POST", url, body, options)

    async def db_query(self, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        await anyio.sleep(0.05)  # a round trip to the database
        rows = self.db.execute(sql, params or []).fetchall()
        return [dict(row) for row in rows]

    async def warehouse_load(
        self, table: str, rows: list[dict[str, Any]], options: JSON = None
    ) -> dict[str, Any]:
        await anyio.sleep(0.04)
        partition = (options or {}).get("partition")
        kept = [r for r in self.warehouse.get(table, []) if r.get("day") != partition]
        self.warehouse[table] = kept + list(rows)
        return {"table": table, "partition": partition, "inserted": len(rows)}

    # the fake services behind http_get / http_post

    def _add_routes(self) -> None:
        route = self.http.route
        route("GET", r"crm\.example\.com/api/v2/customers", self._customers)
        route("GET", r"fx\.example\.com/latest", self._rates)
        route("POST", r"auth\.example\.com/oauth/token", self._token)
        route("GET", r"api\.example\.com/users/(?P<id>\d+)", self._user)
        route("GET", r"api\.example\.com/users/(?P<id>\d+)/orders", self._user_orders)
        route("GET", r"api\.example\.com/loyalty/(?P<id>\d+)", self._loyalty)
        route("POST", r"reco\.example\.com/v1/recommend", self._recommend)

    def _customers(self, query: dict[str, list[str]], _: JSON, headers: dict[str, str]) -> Any:
        if headers.get("Authorization") != f"Bearer {CRM_TOKEN}":
            return 401, {"error": "unauthorized"}
        page, per_page = int(query.get("page", ["1"])[0]), int(query.get("per_page", ["2"])[0])
        data = CUSTOMERS[(page - 1) * per_page : page * per_page]
        more = page * per_page < len(CUSTOMERS)
        url = f"https://crm.example.com/api/v2/customers?page={page + 1}&per_page={per_page}"
        return 200, {"data": data, "next": url if more else None}

    def _rates(self, query: dict[str, list[str]], _: JSON, __: dict[str, str]) -> Any:
        if query.get("base", ["EUR"])[0] != "EUR":
            return 400, {"error": "only base=EUR is supported"}
        return 200, {"base": "EUR", "date": "2024-05-01", "rates": RATES}

    def _token(self, _: dict[str, list[str]], body: JSON, __: dict[str, str]) -> Any:
        body = body or {}
        if CLIENTS.get(body.get("client_id")) != body.get("client_secret"):
            return 401, {"error": "invalid_client"}
        token = f"tok-{len(self.tokens) + 1}"
        self.tokens.add(token)
        return 200, {"access_token": token, "token_type": "Bearer", "expires_in": 3600}

    def _authorized(self, headers: dict[str, str]) -> bool:
        return headers.get("Authorization", "").removeprefix("Bearer ") in self.tokens

    def _user(self, query: dict[str, list[str]], _: JSON, headers: dict[str, str]) -> Any:
        if not self._authorized(headers):
            return 401, {"error": "unauthorized"}
        user = USERS.get(int(query["id"][0]))
        return (200, user) if user else (404, {"error": "no such user"})

    def _user_orders(self, query: dict[str, list[str]], _: JSON, headers: dict[str, str]) -> Any:
        if not self._authorized(headers):
            return 401, {"error": "unauthorized"}
        return 200, {"orders": USER_ORDERS.get(int(query["id"][0]), [])}

    def _loyalty(self, query: dict[str, list[str]], _: JSON, headers: dict[str, str]) -> Any:
        if not self._authorized(headers):
            return 401, {"error": "unauthorized"}
        return 200, LOYALTY.get(int(query["id"][0]), {"tier": "none", "points": 0})

    def _recommend(self, _: dict[str, list[str]], body: JSON, headers: dict[str, str]) -> Any:
        if not self._authorized(headers):
            return 401, {"error": "unauthorized"}
        exclude = set(body.get("exclude", []))
        items = [s for i in body.get("interests", []) for s in CATALOGUE.get(i, [])]
        return 200, {"items": [s for s in items if s not in exclude][: body.get("limit", 3)]}


API = Services().api()
"""The host functions for ``--api examples.hosts:API`` (one shared set of fake backends)."""
