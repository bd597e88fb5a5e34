"""Whether this server can serve: the database answers."""

from __future__ import annotations

from sqlalchemy import text

from oco.errors import OcoError
from oco.services.runtime import Runtime


def database_problem(rt: Runtime) -> str | None:
    """None when the database answers a trivial query, else what went wrong."""
    try:
        rt.read(lambda connection: connection.execute(text("SELECT 1")).scalar())
    except OcoError as exc:
        return exc.message
    except Exception as exc:  # whatever the driver raises: the answer is "not healthy", with why
        return str(exc) or type(exc).__name__
    return None
