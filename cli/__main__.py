"""`python -m cli ...` runs the `finsent` command (the tests use it to run the CLI of the checkout)."""

from cli import app

app()
