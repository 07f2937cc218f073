"""bench/scale.py's server figures: ``deepviz serve``'s waitress settings in a child process, on loopback."""

from __future__ import annotations

import http.client
import json
import time
from pathlib import Path

import numpy as np

from load import cache_projections, request, start_server
from load_clients import mosaic_urls
from webui.tiles import tile_capacity
from scale import LAYER, RUN, Figure


def get(conn: http.client.HTTPConnection, url: str) -> bytes:
    status, body = request(conn, "GET", url)
    if status != 200:
        raise SystemExit(f"GET {url} answered {status}: {body[:300]!r}")
    return body


def timed_get(conn, url: str) -> tuple[float, bytes]:
    t0 = time.perf_counter()
    body = get(conn, url)
    return 1e3 * (time.perf_counter() - t0), body


def step_switches(conn, base: str, steps: list[int], query: str, passes: int) -> tuple[Figure, Figure, float]:
    """p50 and p99 ms of a step switch (the step's layout and predictions), over ``passes`` visits of every
    step, the first of them cold (the step's files not read yet); and the cold visits' p50."""
    times = [[sum(timed_get(conn, url)[0] for url in (f"{base}/steps/{s}/projection?{query}&format=lean",
                                                       f"{base}/steps/{s}/predictions?format=lean"))
              for s in steps] for _ in range(passes)]
    every = [ms for visit in times for ms in visit]
    source = f"{passes} visits of {len(steps)} steps' lean layout and predictions, the first cold (pca layouts cached)"
    return (Figure(float(np.percentile(every, 50)), source), Figure(float(np.percentile(every, 99)), source),
            float(np.percentile(times[0], 50)))


def predictions_bytes(conn, base: str, step: int) -> Figure:
    return Figure(len(get(conn, f"{base}/steps/{step}/predictions?format=lean")), "/predictions?format=lean of one step")


def clusters_s(conn, base: str, step: int) -> Figure:
    """Seconds until a cold step's clusters answer (a 202 "pending" is asked again, as the panel polls)."""
    t0 = time.perf_counter()
    while True:
        status, body = request(conn, "GET", f"{base}/steps/{step}/clusters?layer={LAYER}")
        if status == 200:
            return Figure(time.perf_counter() - t0, "GET /clusters of a cold step until done (PCA-32 + k-means job)")
        if status != 202:
            raise SystemExit(f"clusters answered {status}: {body[:300]!r}")
        time.sleep(0.1)


def tsne_timeline(port: int, conn, base: str, db: Path, steps: list[int]) -> tuple[Figure, Figure]:
    """Seconds for the server's aligned t-SNE of every step, and the kNN-accuracy gap at the last step
    between a cold openTSNE layout and the aligned one."""
    from deepviz import StatsDB
    from deepviz.analysis import project
    from deepviz.analysis.quality import knn_accuracy

    query = f"layer={LAYER}&method=tsne&seed=0"
    t0 = time.perf_counter()
    cache_projections(port, RUN, query, timeout_s=7200)
    seconds = time.perf_counter() - t0
    print(f"  (t-SNE timeline: {seconds:.0f} s)", flush=True)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)  # the caller's sat idle: the server closed it
    header, xy = _layout(get(conn, f"{base}/steps/{steps[-1]}/projection?{query}"))
    stats = StatsDB(db)
    labels = stats.predictions(steps[-1], RUN)["label"]
    cold = project(stats.activations(steps[-1], LAYER, RUN), "tsne", random_state=0)
    gap = knn_accuracy(cold, labels, metric="euclidean") - knn_accuracy(xy, labels, metric="euclidean")
    return (Figure(seconds, f"the server's projection job over {len(steps)} steps"),
            Figure(gap, "kNN accuracy (k=5) of a cold t-SNE minus the aligned layout's, last step"))


def _layout(body: bytes) -> tuple[dict, np.ndarray]:
    """The ``params.binary`` answer of a layout: its header and its (N, 2) xy."""
    import struct

    (n,) = struct.unpack("<I", body[:4])
    header = json.loads(body[4 : 4 + n])
    spec = next(a for a in header["arrays"] if a["name"] == "xy")
    count = int(np.prod(spec["shape"]))
    xy = np.frombuffer(body, np.dtype(spec["dtype"]).newbyteorder("<"), count, 4 + n + spec["offset"])
    return header, xy.reshape(spec["shape"])


def visit_heavy_routes(conn, base: str, steps: list[int], n_probe: int, pid: int) -> None:
    """What a session asks for besides step switches: neighbours (a layer's activations, and the images'
    pixels) at every step, and the mosaic's tiles; the peak RSS after each."""
    for s in steps:
        get(conn, f"{base}/steps/{s}/neighbours?probe=0&layer={LAYER}&metric=cosine&k=8")
    print(f"  (peak RSS after neighbours at every step: {peak_rss_mb(pid).value:.0f} MB)", flush=True)
    for url in mosaic_urls(base, n_probe) + [f"{base}/tiles.png?size=32&rows=0-{min(n_probe, tile_capacity(32)) - 1}"]:
        get(conn, url)  # the mosaic turned on over every image, then a zoom into the first tile at 32 px
    print(f"  (peak RSS after the mosaic's tiles: {peak_rss_mb(pid).value:.0f} MB)", flush=True)


def peak_rss_mb(pid: int) -> Figure:
    with open(f"/proc/{pid}/status") as f:
        hwm = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    return Figure(hwm / 1024, "peak RSS (VmHWM) of the server after every route above")


def server_figures(db: Path, args) -> dict[str, Figure]:
    server, port = start_server(db, 0)
    try:
        base, query = f"/api/runs/{RUN}", f"layer={LAYER}&method=pca&seed=0"
        cache_projections(port, RUN, query, timeout_s=1800)
        print(f"  (projections cached: peak RSS so far {peak_rss_mb(server.pid).value:.0f} MB)", flush=True)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)  # opened now: idle ones are closed
        steps = [s["step"] for s in json.loads(get(conn, base))["steps"]]
        out = {}
        out["step_switch_p50_ms"], out["step_switch_p99_ms"], cold = step_switches(conn, base, steps, query, args.passes)
        print(f"  (cold step switches: p50 {cold:.1f} ms)", flush=True)
        out["predictions_bytes"] = predictions_bytes(conn, base, steps[-1])
        if not args.skip_clusters:
            out["clusters_s"] = clusters_s(conn, base, steps[len(steps) // 2])
        if args.tsne:
            out["tsne_timeline_s"], out["tsne_knn_gap"] = tsne_timeline(port, conn, base, db, steps)
            print(f"  (t-SNE k-NN gap at the last step: {out['tsne_knn_gap'].value:.4f})", flush=True)
            conn.close()  # idle through the cold t-SNE: the server has closed it
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        print(f"  (peak RSS before neighbours and the sprite sheet: {peak_rss_mb(server.pid).value:.0f} MB)", flush=True)
        visit_heavy_routes(conn, base, steps, json.loads(get(conn, base))["n_probe"], server.pid)
        out["server_rss_mb"] = peak_rss_mb(server.pid)
        conn.close()
        return out
    finally:
        server.terminate()
        server.wait(10)
