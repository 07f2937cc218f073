"""``python -m deepviz``: the same as the ``deepviz`` command."""

from .cli import main

raise SystemExit(main())
