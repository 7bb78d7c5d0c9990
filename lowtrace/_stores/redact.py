"""Store URIs safe to show: the password taken out of ``user:pw@host`` and ``password=``.

Kept apart from the scheme registry (``uri.py``) so that stores which name themselves by a
redacted URI (PostgreSQL) do not import the module that imports them.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["redact"]

_SECRET_PARAM: Final = re.compile(r"(?i)((?:^|[?&;])(?:password|passwd|pwd)=)[^&;]*")


def redact(uri: str) -> str:
    """The store URI without its password (in ``user:pw@`` or a ``password=`` parameter).

    ``postgresql://app:s3cret@db:5432/traces?password=x`` becomes
    ``postgresql://app:***@db:5432/traces?password=***``; the user and host stay readable.
    """
    scheme, sep, rest = uri.partition("://")
    if not sep:
        return uri
    location, slash, tail = rest.partition("/")
    if "@" in location:
        userinfo, _, host = location.rpartition("@")
        user = userinfo.split(":", 1)[0]
        location = f"{user}:***@{host}" if ":" in userinfo else f"{user}@{host}"
    return _SECRET_PARAM.sub(r"\1***", f"{scheme}://{location}{slash}{tail}")
