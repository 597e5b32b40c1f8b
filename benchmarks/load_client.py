"""The load benchmark's client (benchmarks/labeling_load.py): annotators on keep-alive
connections doing next → judge against the API with aiohttp, and the no-op floor."""

from __future__ import annotations

import asyncio
import time


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def post(session, url: str, stats: dict, **kwargs) -> tuple[int, dict | None]:
    """POST; returns (status, JSON body). Retries on a dropped connection and on a 503
    (after its Retry-After): next and judgement are both idempotent."""
    import aiohttp

    for attempt in range(60):
        try:
            async with session.post(url, **kwargs) as response:
                if response.status == 503:
                    stats["unavailable"] += 1
                    await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
                    continue
                body = await response.json() if response.status != 204 else None
                return response.status, body
        except (TimeoutError, aiohttp.ClientConnectionError):
            stats["retries"] += 1
            await asyncio.sleep(min(2.0, 0.05 * (attempt + 1)))
    raise RuntimeError(f"POST {url}: no answer after 60 tries")


async def annotator(
    session,
    base: str,
    token: str,
    rounds: int,
    stats: dict,
    *,
    combined: bool,
    every: float | None = None,
) -> None:
    """One annotator: next → judge, ``rounds`` times. Combined, a judgement asks for the
    next comparison in the same call ("next": true), so only the first next is separate.
    With ``every`` (seconds), a cycle starts on that schedule rather than at once."""
    import random

    headers = {"Authorization": f"Token {token}"}
    assignment = None
    start = time.perf_counter() + (random.uniform(0, every) if every else 0)
    for i in range(rounds):
        if every:
            await asyncio.sleep(max(0.0, start + i * every - time.perf_counter()))
        if assignment is None:
            t0 = time.perf_counter()
            code, assignment = await post(
                session, f"{base}/api/projects/load/next/", stats, headers=headers
            )
            stats["next"].append(time.perf_counter() - t0)
            if code == 204:
                stats["empty"] += 1
                return
            if code != 200:
                stats["errors"].append(("next", code))
                assignment = None
                continue
        comparison = assignment["id"]
        t0 = time.perf_counter()
        code, body = await post(
            session,
            f"{base}/api/comparisons/{comparison}/judgement/",
            stats,
            json={"choice": "left", "time_spent_ms": 1, "next": combined},
            headers=headers,
        )
        stats["judgement"].append(time.perf_counter() - t0)
        assignment = None
        if code in (200, 201):
            stats["acknowledged"].append((token, comparison))
            if combined:
                assignment = body["next"]
                if assignment is None:
                    stats["empty"] += 1
                    return
        else:
            stats["errors"].append(("judgement", code))


async def drive(
    url: str, tokens: list[str], rounds: int, *, combined: bool, rate: float | None = None
) -> tuple[dict, float]:
    """Every annotator on its own keep-alive connection, all at once (or paced so that
    ``rate`` judgements/s are offered in all)."""
    import aiohttp

    stats = {
        "next": [],
        "judgement": [],
        "errors": [],
        "acknowledged": [],
        "empty": 0,
        "retries": 0,
        "unavailable": 0,
    }
    every = len(tokens) / rate if rate else None  # each annotator's cycle, paced
    connector = aiohttp.TCPConnector(limit=len(tokens), force_close=False)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        start = time.perf_counter()
        await asyncio.gather(
            *(
                annotator(session, url, t, rounds, stats, combined=combined, every=every)
                for t in tokens
            )
        )
        elapsed = time.perf_counter() - start
    return stats, elapsed


async def floor(url: str, connections: int, requests: int) -> tuple[dict, float]:
    """The same client on the same connections, each call a JSON 404 from the API that
    reads nothing from the database."""
    import aiohttp

    stats = {"call": [], "errors": []}

    async def one_connection(session):
        for _ in range(requests):
            t0 = time.perf_counter()
            async with session.get(f"{url}/api/no-such-endpoint/") as response:
                await response.read()
            stats["call"].append(time.perf_counter() - t0)
            if response.status != 404:
                stats["errors"].append(("floor", response.status))

    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:
        start = time.perf_counter()
        await asyncio.gather(*(one_connection(session) for _ in range(connections)))
        elapsed = time.perf_counter() - start
    return stats, elapsed
