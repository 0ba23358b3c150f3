"""``python -m claude_magic``: the ``claude-magic`` terminal command."""

from .cli import main

raise SystemExit(main())
