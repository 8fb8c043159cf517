"""The dashboard's password gate, for deployments reachable beyond localhost.

With `FINSENT_DASHBOARD_PASSWORD` (or its hashed form `FINSENT_DASHBOARD_PASSWORD_HASH`, made by
`python -m dashboard.auth`) set, every session first sees a login form and nothing else; the right password is
remembered in that session's state. With neither set, a dashboard bound to a loopback address opens directly, and one
bound to any other address refuses to show data (unless `FINSENT_DASHBOARD_ALLOW_OPEN=1` says a proxy in front of it
authenticates). Streamlit's own `st.login` needs an OpenID Connect provider, which a self-hosted desk rarely has.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time

from core.addresses import ALLOW_OPEN_ENV, HASH_ENV, PASSWORD_ENV, is_loopback, placeholder_problem

ALGORITHM = "pbkdf2_sha256"
ITERATIONS = 600_000  # OWASP's figure for PBKDF2-HMAC-SHA256 (2023)
FAILED_LOGIN_DELAY_S = 1.0  # a wrong password costs the guesser a second per try and session
_SESSION_KEY = "finsent_authenticated"
# Sessions remember an HMAC of the configured credential under a key that lives and dies with this process: a
# changed password logs every session out, and session state never holds the password or a plain hash of it.
_PROCESS_KEY = secrets.token_bytes(32)


class CredentialError(ValueError):
    """The configured password hash cannot be read; names the variable, never its value."""


def hash_password(password: str, *, iterations: int = ITERATIONS, salt: bytes | None = None) -> str:
    """`pbkdf2_sha256$<iterations>$<salt hex>$<hash hex>`, the value for FINSENT_DASHBOARD_PASSWORD_HASH."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    return f"{ALGORITHM}${iterations}${salt.hex()}${digest.hex()}"


def _parse_hash(value: str) -> tuple[int, bytes, bytes]:
    try:
        algorithm, iterations, salt, digest = value.strip().split("$")
        if algorithm != ALGORITHM or int(iterations) < 1:
            raise ValueError
        return int(iterations), bytes.fromhex(salt), bytes.fromhex(digest)
    except ValueError:
        raise CredentialError(
            f"{HASH_ENV} is not a {ALGORITHM}$<iterations>$<salt hex>$<hash hex> value; make one with "
            "`python -m dashboard.auth`"
        ) from None


def configured() -> tuple[str | None, str | None]:
    """(plain password, password hash) from the environment; the hash wins when both are set."""
    hashed = os.environ.get(HASH_ENV) or None
    if hashed is not None:
        _parse_hash(hashed)  # a broken hash is an error, never an open dashboard
        return None, hashed
    return os.environ.get(PASSWORD_ENV) or None, None


def check_password(given: str, *, plain: str | None = None, hashed: str | None = None) -> bool:
    """True when `given` is the configured password (compared in constant time)."""
    if hashed is not None:
        iterations, salt, digest = _parse_hash(hashed)
        candidate = hashlib.pbkdf2_hmac("sha256", given.encode("utf-8"), salt, iterations)
        return hmac.compare_digest(candidate, digest)
    if plain is not None:
        return hmac.compare_digest(given.encode("utf-8"), plain.encode("utf-8"))
    return False


def _fingerprint(credential: str) -> str:
    return hmac.new(_PROCESS_KEY, credential.encode("utf-8"), hashlib.sha256).hexdigest()


def gate() -> bool:
    """True when this session may see the dashboard; otherwise it has rendered the login form (or why not) only."""
    import streamlit as st

    try:
        plain, hashed = configured()
    except CredentialError:
        st.error(f"`{HASH_ENV}` is not a valid password hash; make one with `python -m dashboard.auth`.")
        return False
    if plain is None and hashed is None:
        address = st.get_option("server.address")
        if is_loopback(address) or os.environ.get(ALLOW_OPEN_ENV) == "1":
            return True
        st.error(
            f"This dashboard listens on `{str(address).replace('`', '')}`, beyond this machine, and has no "
            f"password. Set `{PASSWORD_ENV}` (or `{HASH_ENV}`), or `{ALLOW_OPEN_ENV}=1` when a proxy in front of it "
            "authenticates."
        )
        return False

    address = st.get_option("server.address")
    problem = None if plain is None or is_loopback(address) else placeholder_problem(PASSWORD_ENV, plain)
    if problem:  # the examples' password would let anyone on the network in
        st.error(problem.replace("`", ""))
        return False

    fingerprint = _fingerprint(hashed or plain or "")
    if st.session_state.get(_SESSION_KEY) == fingerprint:
        if st.sidebar.button("Log out", key="finsent_logout"):
            del st.session_state[_SESSION_KEY]
            st.rerun()
        return True

    st.title("finsent")
    with st.form("finsent_login"):
        password = st.text_input("Password", type="password", key="finsent_password")
        submitted = st.form_submit_button("Log in")
    if submitted:
        if check_password(password, plain=plain, hashed=hashed):
            st.session_state[_SESSION_KEY] = fingerprint
            st.rerun()
        time.sleep(FAILED_LOGIN_DELAY_S)
        st.error("Wrong password.")
    return False


if __name__ == "__main__":  # python -m dashboard.auth: print a value for FINSENT_DASHBOARD_PASSWORD_HASH
    import getpass
    import sys

    first = getpass.getpass("Dashboard password: ")
    if not first or first != getpass.getpass("Again: "):
        sys.exit("error: empty, or the two entries differ")
    print(hash_password(first))
