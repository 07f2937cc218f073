"""Load benchmark: concurrent clients (50 by default, --clients N) against the web UI on waitress, on a cached 5,000-image run.

Builds a run through the store (``bench/timeline.py``'s synthetic drifting
activations, ``--n`` probe images, ``--steps`` snapshots), starts the app on
waitress with ``deepviz serve``'s settings (``webui.server``) in a
subprocess on loopback, caches the projection sequence by requesting it once
(the app's own background job writes it to the db), and then lets
``--clients`` threads, each with its own keep-alive HTTP connection, send
``--requests`` requests in all through a mix of what the UI asks for:

    runs list, run detail, a step switch (projection + predictions of a step),
    neighbours of an image, the confusion matrix, thumbnails, and the Embedding
    view's heavy routes: the clusters of a step and the mosaic's tiles

with a random think time (``--think-ms``, uniform 0..x) between a client's
requests, as people clicking through the UI have. The warm-up visits only
part of the steps (``--cold-share`` of them are left cold), so some step
switches and clusterings read and compute under load. ``--users N`` instead
offers load at the rate of N active people (open loop): clicks arrive at
random (Poisson) at N / ``--click-every-s`` a second, whatever the answer
times, each taken by the next free one of ``--clients`` connections. A request
is an error when it fails or answers anything but 200. Times are printed per
route and per route family (step switch, embedding heavy, ...).

    python bench/load.py                      # 5,000 images, 50 clients, 1,500 requests
    python bench/load.py --think-ms 0         # closed loop, no think time
    python bench/load.py --clients 200        # 200 clients, each with its own keep-alive connection
    python bench/load.py --users 50           # the rate of 50 active people, a click every 5 s each on average
    python bench/load.py --s3                 # then the same run on object storage (moto's S3 server on
                                              # loopback, filled by `deepviz sync`): both step switches and their ratio

The last line is machine-readable:
    requests=<n> errors=<n> p50_ms=<x> p99_ms=<x>
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from load_clients import MIXES, drive, offer, request  # noqa: E402
from timeline import LAYER, build_run  # noqa: E402  (the same synthetic run as the timeline benchmark)

SERVER = """
import sys
from webui import create_app
from webui.server import WAITRESS, make_server
threads = int(sys.argv[2]) or WAITRESS["threads"]
server = make_server(create_app(sys.argv[1]), "127.0.0.1", 0, threads=threads)
print(server.effective_port, flush=True)
server.run()
"""

S3_ENV = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}


def start_server(db: Path | str, threads: int, env: dict | None = None) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(db), str(threads)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line.strip().isdigit():
        proc.kill()
        raise SystemExit(f"the server did not start: {line}{proc.stderr.read()[-2000:]}")
    return proc, int(line)


def cache_projections(port: int, run_id: str, query: str, timeout_s: float) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    url = f"/api/runs/{run_id}/projection?{query}"
    status = json.loads(request(conn, "POST", url)[1])
    deadline = time.monotonic() + timeout_s
    while status.get("running"):
        if time.monotonic() > deadline:
            raise SystemExit(f"projections not cached after {timeout_s:.0f} s: {status}")
        time.sleep(0.5)
        status = json.loads(request(conn, "GET", url)[1])
    if status.get("done") != status.get("total"):
        raise SystemExit(f"projection failed: {status}")
    conn.close()


def start_s3() -> tuple[subprocess.Popen, dict]:
    """moto's S3 server in a process of its own on a free loopback port, and the environment that points at it."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = {**os.environ, **S3_ENV, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "PYTHONPATH": str(ROOT)}
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, env
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise SystemExit("moto's S3 server did not start (pip install 'moto[server]')") from None
            time.sleep(0.2)


def to_s3(db: Path, env: dict) -> str:
    """The local db pushed to a new bucket with `deepviz sync`; its s3:// URI."""
    import boto3

    boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                 aws_access_key_id="bench", aws_secret_access_key="bench").create_bucket(Bucket="deepviz-bench")
    uri = "s3://deepviz-bench/stats_db"
    command = "import sys; from deepviz.cli import main; sys.exit(main(sys.argv[1:]))"
    subprocess.run([sys.executable, "-c", command, "sync", str(db), uri], env=env, check=True, stdout=subprocess.DEVNULL)
    return uri


def measure(db: Path | str, run_id: str, args, env: dict | None = None):
    """Start the server on ``db``, cache the projections, visit each step once, drive the clients."""
    server, port = start_server(db, args.threads, env)
    try:
        query = f"layer={LAYER}&method={args.method}&seed=0"
        t0 = time.perf_counter()
        cache_projections(port, run_id, query, timeout_s=1800)
        print(f"cached the {args.method} projections of {db} in {time.perf_counter() - t0:.1f} s", flush=True)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        run = json.loads(request(conn, "GET", f"/api/runs/{run_id}")[1])
        steps = [s["step"] for s in run["steps"]]
        if args.warmup:
            # One visit of most steps, as the first people to open the run make: the server reads those steps'
            # files and clusters them once; the cold steps are first asked for under load.
            cold = set(random.Random(args.seed).sample(steps, round(args.cold_share * len(steps))))
            t0 = time.perf_counter()
            base = f"/api/runs/{run_id}"
            for step in (s for s in steps if s not in cold):
                for url in (f"{base}/steps/{step}/projection?{query}", f"{base}/steps/{step}/predictions",
                            f"{base}/steps/{step}/confusion", f"{base}/steps/{step}/neighbours?probe=0&layer={LAYER}",
                            f"{base}/steps/{step}/clusters?layer={LAYER}"):
                    request(conn, "GET", url)
            print(f"warm-up visit of {len(steps) - len(cold)} steps in {time.perf_counter() - t0:.1f} s; "
                  f"cold: steps {sorted(cold)} and the mosaic's tiles", flush=True)
        conn.close()
        load = offer if args.users else drive
        return load(port, run_id, steps, run["n_probe"], query, args)
    finally:
        server.terminate()
        server.wait(10)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=5000, help="probe images")
    p.add_argument("--steps", type=int, default=10, help="snapshots")
    p.add_argument("--dim", type=int, default=64, help="width of the layer")
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--requests", type=int, default=1500)
    p.add_argument("--think-ms", type=float, default=1000.0, help="each client waits uniform(0, x) ms between clicks")
    p.add_argument("--users", type=int, default=0, help="open loop: offer the clicks of this many active people")
    p.add_argument("--click-every-s", type=float, default=5.0, help="with --users: seconds between one person's clicks, on average")
    p.add_argument("--cold-share", type=float, default=0.3, help="share of the steps the warm-up leaves cold")
    p.add_argument("--mix", default="full", choices=sorted(MIXES), help="light: without clusters and the mosaic")
    p.add_argument("--threads", type=int, default=0, help="waitress worker threads (default: deepviz serve's, webui.server.WAITRESS)")
    p.add_argument("--method", default="tsne", choices=("tsne", "pca"))
    p.add_argument("--time-limit", type=float, default=300.0, help="seconds for the load phase")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-warmup", dest="warmup", action="store_false", help="time the first reads of each step too")
    p.add_argument("--db", type=Path, help="build the run here (kept); default: a temporary folder")
    p.add_argument("--s3", action="store_true", help="then measure the same run on object storage (moto's S3 server)")
    args = p.parse_args(argv)

    tmp = None
    if args.db is None:
        tmp = Path(tempfile.mkdtemp(prefix="deepviz-load-"))
        db = tmp / "stats_db"
    else:
        db = args.db
    try:
        t0 = time.perf_counter()
        if not (db / "runs").exists():
            run_id, _ = build_run(db, args.n, args.steps, args.dim, drift=0.05, seed=args.seed)
        else:
            run_id = "bench-timeline"
        print(f"built a run of {args.n} images x {args.steps} steps in {time.perf_counter() - t0:.1f} s", flush=True)
        tally, wall = measure(db, run_id, args)
        switch = tally.print_routes()
        latencies, errors = tally.latencies, tally.errors
        if args.s3:
            moto, env = start_s3()
            try:
                uri = to_s3(db, env)
                print(f"synced the run to {uri} on moto's S3 server", flush=True)
                s3_tally, _ = measure(uri, run_id, args, env)
                s3_switch, s3_errors = s3_tally.print_routes(), s3_tally.errors
            finally:
                moto.terminate()
                moto.wait(10)
            errors += s3_errors
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    if args.s3:
        local_p, s3_p = np.percentile(switch, [50, 99]), np.percentile(s3_switch, [50, 99])
        print(f"step switch, local db:  p50_ms={local_p[0]:.1f} p99_ms={local_p[1]:.1f}")
        print(f"step switch, s3 db:     p50_ms={s3_p[0]:.1f} p99_ms={s3_p[1]:.1f} "
              f"(ratio p50 {s3_p[0] / local_p[0]:.2f}, p99 {s3_p[1] / local_p[1]:.2f}; s3 errors={len(s3_errors)})")
    lat = np.array(latencies) if latencies else np.array([np.nan])
    offered = (f"{args.users} people clicking every {args.click_every_s:g} s" if args.users
               else f"think time uniform(0, {args.think_ms:g}) ms")
    print(f"{len(latencies)} requests from {args.clients} clients in {wall:.1f} s ({len(latencies) / wall:.0f} req/s), "
          f"{offered}, waitress threads={args.threads or 'default'}, load average {os.getloadavg()[0]:.2f}")
    print(f"p90_ms={np.percentile(lat, 90):.1f} max_ms={lat.max():.1f}")
    for why in errors[:5]:
        print("error:", why)
    print(f"requests={len(latencies)} errors={len(errors)} p50_ms={np.percentile(lat, 50):.1f} p99_ms={np.percentile(lat, 99):.1f}")
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
