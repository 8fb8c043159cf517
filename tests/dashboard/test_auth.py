"""The dashboard's password gate, run by AppTest against the seeded database: nothing before the right password."""

from __future__ import annotations

import hashlib
import time

import pytest
from streamlit import config as st_config
from streamlit.proto.TextInput_pb2 import TextInput as TextInputProto

from core.addresses import is_loopback
from dashboard.auth import (
    ALLOW_OPEN_ENV,
    HASH_ENV,
    PASSWORD_ENV,
    CredentialError,
    check_password,
    hash_password,
)

from .conftest import APP, HOSTILE

PASSWORD = "correct horse battery staple"


@pytest.fixture
def gated(seeded, monkeypatch):
    """`gated(**env)`: the dashboard on the seeded database, run by AppTest with these FINSENT_DASHBOARD_* values."""
    from streamlit.testing.v1 import AppTest

    def run(**env: str) -> AppTest:
        monkeypatch.setenv("FINSENT_DATABASE_URL", seeded.url)
        for name in (PASSWORD_ENV, HASH_ENV, ALLOW_OPEN_ENV):
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        at = AppTest.from_file(str(APP), default_timeout=60)
        at.run()
        assert not at.exception, at.exception
        return at

    return run


def shows_no_data(at) -> bool:
    """Nothing from the database on the page: no news HTML, no tables, no charts, no metrics, no page title."""
    return (
        not at.html
        and not at.dataframe
        and not at.metric
        and not at.get("vega_lite_chart")
        and "Live news" not in [t.value for t in at.title]
    )


def log_in(at, password: str):
    at.text_input(key="finsent_password").input(password)
    at.button[0].click().run()
    assert not at.exception, at.exception
    return at


def test_with_a_password_nothing_shows_before_login(gated):
    at = gated(**{PASSWORD_ENV: PASSWORD})
    assert shows_no_data(at)
    assert [t.value for t in at.title] == ["finsent"]
    assert at.text_input(key="finsent_password").proto.type == TextInputProto.PASSWORD
    # Another page asked for directly is not shown either: the gate runs before navigation.
    at.switch_page("views/search.py")
    at.query_params.update({"q": "<script>"})
    at.run()
    assert shows_no_data(at) and not at.exception


def test_a_wrong_password_shows_an_error_and_still_no_data(gated):
    at = gated(**{PASSWORD_ENV: PASSWORD})
    started = time.monotonic()
    log_in(at, "guess")
    assert time.monotonic() - started >= 1.0  # each wrong try costs a second
    assert [e.value for e in at.error] == ["Wrong password."]
    assert shows_no_data(at)
    log_in(at, PASSWORD.upper())
    assert shows_no_data(at)


def test_the_right_password_shows_the_live_page_and_is_remembered(gated):
    at = gated(**{PASSWORD_ENV: PASSWORD})
    log_in(at, PASSWORD)
    assert [t.value for t in at.title] == ["Live news"] and not at.error
    assert HOSTILE.split()[0] in at.html[0].value  # the news table, from the database
    at.run()  # a rerun (a refresh of the live panel, a widget change) keeps the session logged in
    assert [t.value for t in at.title] == ["Live news"]
    at.switch_page("views/alerts.py").run()
    assert [t.value for t in at.title] == ["Alerts"]

    at.sidebar.button(key="finsent_logout").click().run()  # and logging out hides everything again
    assert shows_no_data(at)


def test_a_hashed_password(gated):
    hashed = hash_password(PASSWORD, iterations=1_000)  # few iterations: a fast test; the default is 600,000
    at = gated(**{HASH_ENV: hashed, PASSWORD_ENV: "ignored when a hash is set"})
    log_in(at, "ignored when a hash is set")
    assert shows_no_data(at) and [e.value for e in at.error] == ["Wrong password."]
    log_in(at, PASSWORD)
    assert [t.value for t in at.title] == ["Live news"]


def test_a_malformed_hash_is_an_error_not_an_open_dashboard(gated):
    at = gated(**{HASH_ENV: "sha1:deadbeef"})
    assert shows_no_data(at) and HASH_ENV in at.error[0].value and "deadbeef" not in at.error[0].value


@pytest.fixture
def address():
    """Set Streamlit's server.address for one test (what `finsent dashboard --host` passes)."""
    before = st_config.get_option("server.address")

    def set_address(value: str | None) -> None:
        st_config.set_option("server.address", value)

    yield set_address
    st_config.set_option("server.address", before)


def test_without_a_password_only_a_loopback_dashboard_opens(gated, address):
    address("127.0.0.1")
    assert [t.value for t in gated().title] == ["Live news"]  # localhost: no gate
    address("0.0.0.0")
    at = gated()
    assert shows_no_data(at) and PASSWORD_ENV in at.error[0].value and "0.0.0.0" in at.error[0].value
    assert [t.value for t in gated(**{ALLOW_OPEN_ENV: "1"}).title] == ["Live news"]  # a proxy authenticates
    at = gated(**{PASSWORD_ENV: PASSWORD})
    assert shows_no_data(at) and not at.error  # with a password: the login form
    assert [t.value for t in log_in(at, PASSWORD).title] == ["Live news"]
    at = gated(**{PASSWORD_ENV: "change-me-dashboard"})  # deploy/.env.example's, left as it is
    assert (
        shows_no_data(at)
        and "still holds a placeholder" in at.error[0].value
        and "change-me-dash" not in str(at.error[0].value)
    )
    address("127.0.0.1")  # on this machine only, a placeholder is the developer's business
    assert (
        shows_no_data(gated(**{PASSWORD_ENV: "change-me-dashboard"}))
        and not gated(**{PASSWORD_ENV: "change-me-dashboard"}).error
    )


def test_password_checks():
    hashed = hash_password("pw", iterations=10, salt=b"salt")
    assert hashed == f"pbkdf2_sha256$10${b'salt'.hex()}${hashlib.pbkdf2_hmac('sha256', b'pw', b'salt', 10).hex()}"
    assert check_password("pw", hashed=hashed) and not check_password("pW", hashed=hashed)
    assert check_password("pw", plain="pw") and not check_password("p", plain="pw")
    assert check_password("ü", plain="ü") and not check_password("", plain=None, hashed=None)
    with pytest.raises(CredentialError, match=HASH_ENV):
        check_password("pw", hashed="pbkdf2_sha256$x$00$00")
    assert all(map(is_loopback, ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", None]))
    # "": issue 17's D1, `finsent dashboard --host ""` listened on every interface with no password
    assert not any(map(is_loopback, ["0.0.0.0", "::", "", "10.0.0.5", "dashboard.example.com"]))


def test_the_database_password_never_reaches_the_page(gated, monkeypatch):
    monkeypatch.setenv("FINSENT_DATABASE_URL", "postgresql://finsent:pg-s3cret-pw@127.0.0.1:1/finsent")
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    shown = " ".join(e.value for e in at.error) + " ".join(str(x.value) for x in at.exception)
    assert "Cannot read the database" in shown and "finsent" in shown and "pg-s3cret-pw" not in shown


def test_the_dashboard_command_knows_when_it_would_be_exposed_without_a_password():
    """`finsent dashboard` refuses such a start (issue 17, D1); the rule is the gate's."""
    from core.addresses import dashboard_exposed_without_password as exposed

    assert exposed("0.0.0.0", {}) and exposed("", {}) and exposed("dashboard.example.com", {})
    assert not exposed("127.0.0.1", {}) and not exposed("::1", {})
    assert not exposed("0.0.0.0", {PASSWORD_ENV: "pw"}) and not exposed("0.0.0.0", {HASH_ENV: "x"})
    assert not exposed("0.0.0.0", {ALLOW_OPEN_ENV: "1"}) and exposed("0.0.0.0", {ALLOW_OPEN_ENV: "yes"})
