"""Sessions as pandas DataFrames, notebooks (nbformat v4), Markdown, JSON and CSV.

pandas and nbformat are imported inside the functions that need them, so importing this package
costs little. Everything here works without IPython. Modules: :mod:`.frames` (DataFrames),
:mod:`.transcripts` (Markdown, notebooks, JSON), :mod:`.files` (writing and reading files).
"""

from .files import (
    FORMATS,
    MAX_IMPORT_BYTES,
    export_data,
    export_session,
    import_session_file,
    normalize_format,
    read_export_file,
    sessions_export,
    write_export,
)
from .frames import MESSAGE_COLUMNS, SESSION_COLUMNS, messages_dataframe, text_dtype, to_dataframe
from .transcripts import (
    EXPORT_FORMAT,
    EXPORT_VERSION,
    InvalidExport,
    message_markdown,
    plural,
    session_from_json,
    session_header_markdown,
    session_to_json,
    session_to_markdown,
    session_to_notebook,
)

__all__ = [
    "EXPORT_FORMAT",
    "EXPORT_VERSION",
    "FORMATS",
    "MAX_IMPORT_BYTES",
    "MESSAGE_COLUMNS",
    "SESSION_COLUMNS",
    "InvalidExport",
    "export_data",
    "export_session",
    "import_session_file",
    "message_markdown",
    "messages_dataframe",
    "normalize_format",
    "plural",
    "read_export_file",
    "session_from_json",
    "session_header_markdown",
    "session_to_json",
    "session_to_markdown",
    "session_to_notebook",
    "sessions_export",
    "text_dtype",
    "to_dataframe",
    "write_export",
]
