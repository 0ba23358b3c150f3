"""The subcommands, written once for both front ends: ``%claude_session`` (magics) and
``claude-magic`` (the terminal). See :mod:`.table` for the dispatch table and
:mod:`.context` for what a handler is given and returns."""
