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
