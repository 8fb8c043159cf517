"""Which listening addresses stay on this machine: the rule the dashboard's password gate and the feed server's
token rule share (beyond loopback, data is only served behind a credential)."""

from __future__ import annotations

import ipaddress


def is_loopback(address: str | None) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost. Streamlit's unset address (None) counts as local here: `finsent
    dashboard` always passes one, and a bare `streamlit run` is a developer's. An empty address is every interface."""
    if address is None or address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may well resolve beyond this machine
