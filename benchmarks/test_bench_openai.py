"""OpenAI-compatible backend throughput against the fake LLM server (fixed delay per answer).

openai_c{1,8,32}: 200 requests (224 at c = 32) through ``OpenAICompatBackend.acomplete`` with at most
c in flight (the engine's bound) against a server answering in 50 ms, compared with a
bare aiohttp client posting the same JSON and decoding the reply (the least any HTTP
client must do). The ratio is the price of the official ``openai`` client (request
building and validation, the retry machinery, httpx2's connection pool, response
models). openai_c32_500ms: the same at a realistic teacher latency (0.5 s per answer).

Each test prints its throughput as a fraction of the ideal c / delay (target: >= 0.8
at c = 32) and the client's CPU time per request, the figure that limits it: at 50 ms
per answer, 32 in flight need 640 requests/s, i.e. under 1.6 ms of client CPU each.

The server runs in a child process (``fakellm.spawn``) so that it does not share the
client's interpreter lock; on a 2-core machine it still shares the CPU.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.append(str(HERE.parent / "tests"))  # after benchmarks/: its conftest is the one we need
from conftest import record  # noqa: E402
from fakellm import Spawned, spawn  # noqa: E402

from explainft.annotate.backends.openai_compat import OpenAICompatBackend  # noqa: E402
from explainft.annotate.base import TeacherConfig  # noqa: E402

DELAY = 0.05
N_REQUESTS = 200  # rounded up to a multiple of the concurrency (224 at 32), so the last wave is full
# (concurrency, seconds per answer); the last one is a realistic teacher latency
CASES = [(1, DELAY), (8, DELAY), (32, DELAY), (32, 0.5)]


@pytest.fixture(scope="module")
def servers():
    """delay -> a fake server in a child process with that fixed delay (started on first use)."""
    spawned: dict[float, Spawned] = {}

    def get(delay: float) -> Spawned:
        if delay not in spawned:
            spawned[delay] = spawn(delay=delay)
        return spawned[delay]

    yield get
    for server in spawned.values():
        server.stop()


def _messages(i: int) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": "Rate the response from 1 to 5."},
        {"role": "user", "content": f"User: question {i}?\nBot: answer {i}."},
    ]


async def _drive(call, concurrency: int, n: int) -> None:
    """n calls with at most ``concurrency`` in flight (as the engine bounds them)."""
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with sem:
            await call(_messages(i))

    await asyncio.gather(*(one(i) for i in range(n)))


async def _project(url: str, concurrency: int):
    teacher = TeacherConfig(
        name="bench",
        backend="openai",
        model="fake",
        sampling={"temperature": 0.0, "max_tokens": 200},
        options={"base_url": url, "concurrency": concurrency},
    )
    backend = OpenAICompatBackend(teacher)
    return backend.acomplete, backend.aclose


async def _baseline(url: str, concurrency: int):
    import aiohttp

    session = aiohttp.ClientSession()

    async def call(messages):
        async with session.post(
            f"{url}/chat/completions",
            headers={"Authorization": "Bearer EMPTY"},
            json={"model": "fake", "messages": messages, "temperature": 0.0, "max_tokens": 200},
        ) as resp:
            resp.raise_for_status()
            return (await resp.json())["choices"][0]["message"]["content"]

    return call, session.close


@pytest.mark.parametrize("role", ["project", "baseline"])
@pytest.mark.parametrize("concurrency, delay", CASES, ids=[f"c{c}-{int(d * 1000)}ms" for c, d in CASES])
def test_openai_throughput(benchmark, servers, capsys, concurrency, delay, role):
    url = servers(delay).url
    n = -(-N_REQUESTS // concurrency) * concurrency
    loop = asyncio.new_event_loop()
    try:
        call, close = loop.run_until_complete((_project if role == "project" else _baseline)(url, concurrency))
        loop.run_until_complete(_drive(call, concurrency, concurrency))  # open the connections
        walls: list[float] = []
        cpus: list[float] = []

        def timed() -> None:
            t0, c0 = time.perf_counter(), time.process_time()
            loop.run_until_complete(_drive(call, concurrency, n))
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)

        ideal_s = n * delay / concurrency
        benchmark.pedantic(timed, rounds=3 if ideal_s < 2 else 1, iterations=1)
        loop.run_until_complete(close())
    finally:
        loop.close()
    group = f"openai_c{concurrency}" + ("" if delay == DELAY else f"_{int(delay * 1000)}ms")
    record(benchmark, group, role)
    mean_wall = sum(walls) / len(walls)
    fraction = (n / mean_wall) / (concurrency / delay)
    cpu_ms = sum(cpus) / len(cpus) / n * 1e3
    benchmark.extra_info.update(fraction_of_ideal=round(fraction, 3), client_cpu_ms_per_request=round(cpu_ms, 2))
    with capsys.disabled():
        print(
            f"\n{group} {role}: {n} requests in {mean_wall:.2f} s = {n / mean_wall:.0f}/s, "
            f"{fraction:.2f} of the ideal {concurrency / delay:.0f}/s; client CPU {cpu_ms:.2f} ms/request"
        )
    # not a performance gate (the fraction depends on the machine's load), only a check that calls overlap
    if concurrency > 1:
        assert fraction * concurrency > 2, f"{fraction:.2f} of the ideal at concurrency {concurrency}: serialised"
