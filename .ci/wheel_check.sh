#!/usr/bin/env bash
# The wheel works outside the repository: build it, install it into a fresh venv in a temporary folder outside the
# clone, then run there `deepviz demo --no-serve`, the README's Python examples, and the UI served from the installed
# package (a page and a static JS file fetched from a real `deepviz serve`). Called by .ci/run; runs on its own too:
#   bash .ci/wheel_check.sh        (PYTHON=python3.12 bash .ci/wheel_check.sh for another interpreter)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-python3}"
# A relative path (PYTHON=.venv/bin/python from .ci/run) made absolute: the steps below run in other folders.
case "$python" in */*) python="$(cd "$(dirname "$python")" && pwd)/$(basename "$python")" ;; esac
work="$(mktemp -d)"
server=""
cleanup() {
    [ -z "$server" ] || kill "$server" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
case "$work" in "$repo"/*) echo "wheel check: $work is inside the clone" >&2; exit 1 ;; esac
step() { echo "== wheel check: $*"; }

step "build the wheel"
# From a copy of the tree's own files (tracked, and new ones not ignored): a build/ folder left in the clone
# would carry modules deleted since into the wheel.
mkdir "$work/src"
(cd "$repo" && git ls-files -z --cached --others --exclude-standard | tar -c --ignore-failed-read --null -T -) | tar -x -C "$work/src"
"$python" -m pip wheel --no-deps --quiet --wheel-dir "$work/dist" "$work/src"
wheel="$(ls "$work"/dist/deepviz-*.whl)"

step "every template and static file of the clone is in $(basename "$wheel")"
(cd "$repo" && git ls-files webui/templates webui/static) > "$work/expected.txt"
"$python" - "$wheel" "$work/expected.txt" <<'PY'
import sys, zipfile
names = set(zipfile.ZipFile(sys.argv[1]).namelist())
missing = [p for p in open(sys.argv[2]).read().split() if p not in names]
if missing:
    sys.exit(f"missing from the wheel (fix [tool.setuptools.package-data] in pyproject.toml): {missing}")
PY

step "install it into a fresh venv outside the clone"
"$python" -m venv "$work/venv"
venv="$work/venv/bin"
"$venv/pip" install --quiet torch==2.13.0  # the CPU wheel kept on local disk
"$venv/pip" install --quiet "${wheel}[notebook]"
mkdir "$work/run"
cd "$work/run"
"$venv/python" - "$repo" <<'PY'
import sys
import deepviz, trainers, webui
for module in (deepviz, trainers, webui):
    if module.__file__.startswith(sys.argv[1]):
        sys.exit(f"{module.__name__} was imported from the clone ({module.__file__}), not from the installed wheel")
print("imported from", deepviz.__file__)
PY

step "deepviz demo --no-serve"
"$venv/deepviz" demo --no-serve --epochs 2 --no-progress

step "the README's Python examples, in order, in a fresh folder"
"$python" "$repo/tests/readme_blocks.py" "$repo/README.md" "$work/snippets" > /dev/null
mkdir "$work/readme"
for snippet in "$work"/snippets/*.py; do
    echo "-- $(head -1 "$snippet")"
    (cd "$work/readme" && OMP_NUM_THREADS=1 "$venv/python" "$snippet" > "$work/snippet.log" 2>&1) || {
        cat "$work/snippet.log" >&2; exit 1; }
done

step "deepviz serve from the installed package"
"$venv/deepviz" serve stats_db --port 0 > "$work/serve.log" 2>&1 &
server=$!
"$venv/python" - "$work/serve.log" <<'PY'
import re, sys, time, urllib.request
deadline = time.monotonic() + 60
while not (found := re.search(r"at (http://127\.0\.0\.1:\d+/)", open(sys.argv[1]).read())):
    if time.monotonic() > deadline:
        sys.exit("deepviz serve printed no URL: " + open(sys.argv[1]).read())
    time.sleep(0.2)
url = found.group(1)
for path, needle in (("", b"Runs"), ("static/js/runs.js", b"import"), ("static/js/views/index.js", b"VIEWS"), ("api/runs", b"run_id")):
    with urllib.request.urlopen(url + path, timeout=10) as res:
        body = res.read()
        if res.status != 200 or needle not in body:
            sys.exit(f"{url + path}: status {res.status}, {body[:200]!r}")
    print("served", url + path)
PY
echo "== wheel check: passed"
