"""Every ```python block of README.md runs, in order, in one fresh folder; so does every `deepviz ...` command of its
```bash blocks that runs offline and quickly, and each of the others is listed below with the reason it is not run.

The runner is generic: a block another change adds to the README is picked up by these tests as it is.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.readme_blocks import blocks, deepviz_commands

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
TIMEOUT_S = 300

#: `deepviz` commands of the README that are not run here, by a pattern of the command, with the reason.
NOT_RUN = {
    r"^deepviz demo$": "trains and then serves the UI until stopped; tests/test_cli.py runs `deepviz demo --no-serve`",
    r"^deepviz serve\b": "serves until stopped; tests/webui/test_serve_before_db.py starts the real `deepviz serve`",
    r"--dataset cifar10\b": "trains AlexNet-small on CIFAR-10 for minutes and needs the dataset's files",
    r"s3://": "needs an object store at the README's address; tests/test_s3*.py run these commands against moto's S3 server",
}


def _env() -> dict:
    # The snippets import this tree's deepviz, wherever the venv's editable install points.
    return os.environ | {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=TIMEOUT_S)


@pytest.fixture(scope="module")
def readme_folder(tmp_path_factory) -> Path:
    """A fresh folder, as a reader's: the README's examples write `stats_db` and their outputs into it."""
    return tmp_path_factory.mktemp("readme")


@pytest.mark.slow
def test_every_python_block_runs_in_order(readme_folder):
    python = blocks(README, "python")
    assert len(python) >= 4  # the callback, the reads, duckdb/pandas, the notebook
    for i, block in enumerate(python, 1):
        script = readme_folder / f"block_{i:02d}.py"
        script.write_text(block.code, encoding="utf-8")
        done = _run([sys.executable, script.name], readme_folder)
        assert done.returncode == 0, f"README.md line {block.line}:\n{block.code}\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    assert (readme_folder / "stats_db").is_dir()


def _shell(command: str) -> str:
    # `deepviz` as this interpreter's module, so the command runs this tree with this venv; redirections stay bash's.
    return f'deepviz() {{ "{sys.executable}" -m deepviz "$@"; }}\n{command}'


@pytest.mark.slow
def test_every_deepviz_command_runs_or_says_why_not(readme_folder):
    if not (readme_folder / "stats_db").is_dir():
        pytest.fail("the README's Python blocks did not make stats_db: run test_every_python_block_runs_in_order first")
    commands = deepviz_commands(README)
    skipped = {pattern for pattern in NOT_RUN for _, c in commands if re.search(pattern, c)}
    assert skipped == set(NOT_RUN), f"patterns in NOT_RUN that match no README command: {set(NOT_RUN) - skipped}"
    ran = 0
    for line, command in commands:
        if any(re.search(pattern, command) for pattern in NOT_RUN):
            continue
        done = _run(["bash", "-c", _shell(command)], readme_folder)
        assert done.returncode == 0, f"README.md line {line}: {command}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        ran += 1
    assert ran >= 7  # a train, the sql examples, the export
    assert (readme_folder / "last_step.csv").read_text().startswith("probe_id,label,pred,confidence")
    assert (readme_folder / "tb_projector" / "projector_config.pbtxt").exists()


def test_blocks_are_found_with_their_lines():
    text = "intro\n```python\nprint(1)\n```\n- item\n\n  ```bash\n  deepviz runs && deepviz sql \"SELECT 1\"\n  echo deepviz\n  ```\n"
    assert blocks(text, "python") == [("python", 2, "print(1)\n")]
    assert deepviz_commands(text) == [(8, "deepviz runs"), (8, 'deepviz sql "SELECT 1"')]
