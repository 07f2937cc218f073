"""bench/load.py's clients: the mixes of clicks, the closed loop (people thinking between clicks), the open loop
(clicks offered at a rate), and their tally per route and route family."""

from __future__ import annotations

import http.client
import queue
import random
import threading
import time

import numpy as np
from timeline import LAYER  # the layer of the synthetic run load.py builds

# (name, weight): what one click of a person using the UI asks for.
MIXES = {
    "full": [("runs", 5), ("run", 5), ("step_switch", 30), ("neighbours", 12), ("confusion", 12), ("thumbnail", 26),
             ("clusters", 8), ("mosaic", 2)],
    # Without the Embedding view's heavy routes: the mix of docs/reliability.md's figures.
    "light": [("runs", 5), ("run", 5), ("step_switch", 30), ("neighbours", 15), ("confusion", 15), ("thumbnail", 30)],
}

#: Route (as ``_route`` names it) -> its family, for the per-family lines.
FAMILIES = {"steps/projection": "step switch", "steps/predictions": "step switch", "steps/clusters": "embedding heavy",
            "tiles.png": "embedding heavy", "steps/neighbours": "neighbours", "steps/confusion": "confusion",
            "probes/thumbnail.png": "thumbnails", "runs": "runs", "run": "runs"}


#: The step switch's requests, as ``_route`` names them.
STEP_SWITCH = ("steps/projection", "steps/predictions")
def request(conn: http.client.HTTPConnection, method: str, url: str) -> tuple[int, bytes]:
    conn.request(method, url)
    res = conn.getresponse()
    return res.status, res.read()


def client_urls(rng: random.Random, run_id: str, steps: list[int], n_probe: int, query: str, cached: set,
                mix: str) -> list[str]:
    """The requests of one click of a person whose browser holds ``cached`` (the mosaic's tiles are sent
    ``immutable``: a browser asks for each once)."""
    urls = _click(rng, run_id, steps, n_probe, query, MIXES[mix])
    fresh = [u for u in urls if u not in cached]
    cached.update(u for u in urls if "/tiles.png" in u)
    return fresh


def _click(rng: random.Random, run_id: str, steps: list[int], n_probe: int, query: str, mix) -> list[str]:
    kind = rng.choices([m[0] for m in mix], weights=[m[1] for m in mix])[0]
    step = rng.choice(steps)
    base = f"/api/runs/{run_id}"
    if kind == "runs":
        return ["/api/runs"]
    if kind == "run":
        return [base]
    if kind == "step_switch":
        return [f"{base}/steps/{step}/projection?{query}", f"{base}/steps/{step}/predictions"]
    if kind == "neighbours":
        return [f"{base}/steps/{step}/neighbours?probe={rng.randrange(n_probe)}&layer={LAYER}&metric=cosine&k=8"]
    if kind == "confusion":
        return [f"{base}/steps/{step}/confusion"]
    if kind == "clusters":
        return [f"{base}/steps/{step}/clusters?layer={LAYER}"]
    if kind == "mosaic":
        return mosaic_urls(base, n_probe)
    return [f"{base}/probes/{rng.randrange(n_probe)}/thumbnail.png"]


def mosaic_urls(base: str, n_probe: int, size: int = 4) -> list[str]:
    """The tiles the mosaic asks for when it is turned on over the whole probe set: every row at ``size`` px,
    in tiles of as many rows as one holds (webui/tiles.py; static/js/scatter/mosaic.js)."""
    from webui.tiles import tile_capacity

    cap = tile_capacity(size)
    return [f"{base}/tiles.png?size={size}&rows={lo}-{min(lo + cap, n_probe) - 1}" for lo in range(0, n_probe, cap)]


class Tally:
    """Every request's time and outcome, by route."""

    def __init__(self):
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.by_route: dict[str, list[float]] = {}
        self.waits: list[float] = []  # open loop: ms a click waited for a free connection
        self.lock = threading.Lock()

    def fetch(self, conn: http.client.HTTPConnection, url: str) -> http.client.HTTPConnection:
        """GET ``url`` on ``conn`` and record it; returns the connection to go on with (a new one after a failure)."""
        t0 = time.perf_counter()
        try:
            status, _ = request(conn, "GET", url)
            # 202: a cold step's clusters, accepted as a background job (the UI polls it), not an error.
            ok, why = status in (200, 202), f"HTTP {status} {url}"
        except (OSError, http.client.HTTPException) as exc:
            ok, why = False, f"{type(exc).__name__}: {exc} {url}"
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", conn.port, timeout=30)
        ms = 1e3 * (time.perf_counter() - t0)
        with self.lock:
            self.latencies.append(ms)
            self.by_route.setdefault(_route(url), []).append(ms)
            if not ok:
                self.errors.append(why)
        return conn

    def print_routes(self) -> list[float]:
        """Per-route and per-family lines; returns the step switches' times."""
        families: dict[str, list[float]] = {}
        for route, ms in sorted(self.by_route.items()):
            print(f"  {route:<28} n={len(ms):<5} p50_ms={np.percentile(ms, 50):7.1f} p99_ms={np.percentile(ms, 99):7.1f}")
            families.setdefault(FAMILIES.get(route, route), []).extend(ms)
        for family, ms in sorted(families.items()):
            print(f"  family {family:<21} n={len(ms):<5} p50_ms={np.percentile(ms, 50):7.1f} p99_ms={np.percentile(ms, 99):7.1f}")
        if self.waits:
            print(f"  clicks waiting for a free connection: p50_ms={np.percentile(self.waits, 50):.1f} "
                  f"p99_ms={np.percentile(self.waits, 99):.1f}")
        return [ms for route in STEP_SWITCH for ms in self.by_route.get(route, [])]


def drive(port: int, run_id: str, steps: list[int], n_probe: int, query: str, args) -> tuple[Tally, float]:
    """Closed loop: ``args.clients`` people, each clicking after a think time once its answers came."""
    tally, lock, budget = Tally(), threading.Lock(), [args.requests]
    deadline = time.monotonic() + args.time_limit
    start_gate = threading.Barrier(args.clients)

    def take(n: int) -> bool:
        with lock:
            if budget[0] <= 0:
                return False
            budget[0] -= n
            return True

    def client(i: int) -> None:
        rng = random.Random(args.seed * 1000 + i)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        start_gate.wait()
        # People do not click in step: each client starts somewhere in its first think time.
        time.sleep(rng.uniform(0, args.think_ms) / 1e3)
        cached: set[str] = set()
        while time.monotonic() < deadline:
            urls = client_urls(rng, run_id, steps, n_probe, query, cached, args.mix)
            if not take(len(urls)):
                break
            for url in urls:
                conn = tally.fetch(conn, url)
            if args.think_ms > 0:
                time.sleep(rng.uniform(0, args.think_ms) / 1e3)
        conn.close()

    return tally, _run_threads([threading.Thread(target=client, args=(i,), daemon=True) for i in range(args.clients)],
                               args.time_limit)


def offer(port: int, run_id: str, steps: list[int], n_probe: int, query: str, args) -> tuple[Tally, float]:
    """Open loop: clicks arrive at random at the rate of ``args.users`` people clicking every
    ``args.click_every_s`` on average, whatever the answer times; ``args.clients`` connections take them."""
    tally, clicks = Tally(), queue.Queue()
    rng = random.Random(args.seed)
    rate = args.users / args.click_every_s

    def arrivals() -> None:
        deadline, offered = time.monotonic() + args.time_limit, 0
        browsers: list[set] = [set() for _ in range(args.users)]  # what each person's browser holds
        while offered < args.requests and time.monotonic() < deadline:
            time.sleep(rng.expovariate(rate))
            urls = client_urls(rng, run_id, steps, n_probe, query, rng.choice(browsers), args.mix)
            offered += len(urls)
            clicks.put((time.perf_counter(), urls))
        for _ in range(args.clients):
            clicks.put(None)

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while (click := clicks.get()) is not None:
            arrived, urls = click
            with tally.lock:
                tally.waits.append(1e3 * (time.perf_counter() - arrived))
            for url in urls:
                conn = tally.fetch(conn, url)
        conn.close()

    threads = [threading.Thread(target=arrivals, daemon=True)]
    threads += [threading.Thread(target=worker, daemon=True) for _ in range(args.clients)]
    print(f"offering {rate:.1f} clicks/s: {args.users} people clicking every {args.click_every_s:g} s on average", flush=True)
    return tally, _run_threads(threads, args.time_limit)


def _run_threads(threads: list[threading.Thread], time_limit_s: float) -> float:
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(time_limit_s + 60)
    return time.perf_counter() - t0


def _route(url: str) -> str:
    """The route of a URL, for the per-route lines: its path with ids and steps left out."""
    parts = url.split("?")[0].split("/")
    return "/".join(p for p in parts[4:] if not p.isdigit()) or ("runs" if len(parts) < 4 else "run")
