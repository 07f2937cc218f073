"""The README's code blocks, for tests/test_readme.py and the wheel check (.ci/wheel_check.sh).

Standard library only: the wheel check runs it with the system Python, before any venv exists.

    python3 tests/readme_blocks.py README.md OUT   # writes OUT/01.py, OUT/02.py, ... (the ```python blocks, in order)
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import NamedTuple

FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w+-]*)[ \t]*$")


class Block(NamedTuple):
    lang: str
    line: int  # 1-based line of the opening fence
    code: str


def blocks(text: str, lang: str) -> list[Block]:
    """The fenced blocks of ``lang``, in order, their indentation (a block inside a list item) removed."""
    out, current, start, indent, code = [], None, 0, "", []
    for number, line in enumerate(text.splitlines(), 1):
        fence = FENCE.match(line)
        if current is None and fence and fence["lang"]:
            current, start, indent, code = fence["lang"], number, fence["indent"], []
        elif current is not None and fence and not fence["lang"]:
            if current == lang:
                out.append(Block(current, start, "\n".join(code) + "\n"))
            current = None
        elif current is not None:
            code.append(line[len(indent):] if line.startswith(indent) else line)
    return out


def deepviz_commands(text: str) -> list[tuple[int, str]]:
    """Every ``deepviz ...`` command of the ```bash blocks, with its line: a line, or each part of a line joined
    with ``&&``, that starts with ``deepviz``."""
    out = []
    for block in blocks(text, "bash"):
        for offset, line in enumerate(block.code.splitlines(), 1):
            for part in line.split("&&"):
                if part.strip().startswith("deepviz "):
                    out.append((block.line + offset, part.strip()))
    return out


def write_python_blocks(readme: Path, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, block in enumerate(blocks(readme.read_text(encoding="utf-8"), "python"), 1):
        path = out / f"{i:02d}.py"
        path.write_text(f"# README.md line {block.line}\n{block.code}", encoding="utf-8")
        paths.append(path)
    return paths


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python3 tests/readme_blocks.py README.md OUT_FOLDER")
    for written in write_python_blocks(Path(sys.argv[1]), Path(sys.argv[2])):
        print(written)
