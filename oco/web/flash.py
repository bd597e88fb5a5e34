"""Messages for the next page ("Deleted 3 job(s)", or why an action was refused).

A message travels in a short-lived cookie set with the redirect that follows a POST, signed with the
session's CSRF token, and the page that shows it deletes it. Nothing in an address can make text look
like the server's, and a reload shows the page without the message again.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Literal

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from oco.web.session import Viewer, set_cookie

FLASH_COOKIE = "oco_flash"
MAX_TEXT = 600
"""Longer messages are cut: a cookie holds about 4 KB."""
Kind = Literal["notice", "error"]


@dataclass(frozen=True, slots=True)
class Flash:
    """One message and whether it reports success or a refusal."""

    kind: Kind
    text: str


def redirect(request: Request, current: Viewer, location: str, text: str, kind: Kind = "notice") -> Response:
    """A 303 to `location` that shows `text` there once."""
    response = RedirectResponse(location, status_code=303)
    payload = base64.urlsafe_b64encode(json.dumps([kind, text[:MAX_TEXT]]).encode()).decode()
    set_cookie(request, response, FLASH_COOKIE, f"{payload}.{_signature(current, payload)}", max_age=300)
    return response


def pending(request: Request, current: Viewer | None) -> Flash | None:
    """The message waiting for this page, if one is there and was signed for this session."""
    value = request.cookies.get(FLASH_COOKIE, "")
    payload, _, signature = value.partition(".")
    if (
        current is None
        or not payload
        or not hmac.compare_digest(
            signature.encode("ascii", "replace"), _signature(current, payload).encode()
        )
    ):
        return None
    try:
        kind, text = json.loads(base64.urlsafe_b64decode(payload.encode("ascii")))
    except (ValueError, TypeError):
        return None
    return Flash("error" if kind == "error" else "notice", str(text))


def shown(response: Response) -> None:
    """Forget the message once a page has shown it."""
    response.delete_cookie(FLASH_COOKIE)


def _signature(current: Viewer, payload: str) -> str:
    return hmac.new(current.csrf_token.encode(), payload.encode(), hashlib.sha256).hexdigest()[:32]
