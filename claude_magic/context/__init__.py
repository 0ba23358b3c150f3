"""What the notebook contributes to a prompt: references to its values (DataFrames, figures,
anything else, bounded), attached files (``--attach``) and its last error (``--error``).

Each part becomes content blocks for :meth:`claude_magic.client.Client.query`; every limit is
checked before anything is sent or stored. Heavy modules (pandas, matplotlib) are never
imported here: values are recognised by what they offer.
"""

from __future__ import annotations

from .attach import attach_file
from .lasterror import error_block
from .references import Rendered, render_value

__all__ = ["Rendered", "attach_file", "error_block", "render_value"]
