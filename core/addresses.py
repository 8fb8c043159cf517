"""Which listening addresses stay on this machine: the rule the dashboard's password gate and the feed server's
token rule share (beyond loopback, data is only served behind a credential)."""

from __future__ import annotations

import ipaddress
import os

# The dashboard's credentials (dashboard/auth.py checks them; `finsent dashboard` refuses to start without one).
PASSWORD_ENV = "FINSENT_DASHBOARD_PASSWORD"
HASH_ENV = "FINSENT_DASHBOARD_PASSWORD_HASH"
ALLOW_OPEN_ENV = "FINSENT_DASHBOARD_ALLOW_OPEN"


def is_loopback(address: str | None) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost. Streamlit's unset address (None) counts as local here: `finsent
    dashboard` always passes one, and a bare `streamlit run` is a developer's. An empty address is every interface."""
    if address is None or address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may well resolve beyond this machine


def dashboard_exposed_without_password(host: str | None, environ: dict[str, str] | None = None) -> bool:
    """True when a dashboard on `host` would serve beyond this machine with no password set and no proxy declared."""
    env = os.environ if environ is None else environ
    if is_loopback(host) or env.get(ALLOW_OPEN_ENV) == "1":
        return False
    return not (env.get(PASSWORD_ENV) or env.get(HASH_ENV))


# What an example file or a tutorial puts where a secret goes. Beyond loopback such a value is no secret at all.
_PLACEHOLDER_WORDS = ("change-me", "changeme", "change_me", "replace-me", "replaceme", "your-", "example")
_PLACEHOLDER_VALUES = frozenset({"password", "secret", "token", "admin", "test", "xxx", "todo", "12345678"})


def placeholder_problem(name: str, value: str | None) -> str | None:
    """Why `value` (the secret in variable `name`) is a placeholder, not a secret, or None. The value itself is never
    part of the message."""
    folded = (value or "").strip().casefold()
    if folded in _PLACEHOLDER_VALUES or any(word in folded for word in _PLACEHOLDER_WORDS):
        return (f"{name} still holds a placeholder (like the examples' change-me): set a real secret before serving "
                "beyond this machine")  # fmt: skip
    return None
