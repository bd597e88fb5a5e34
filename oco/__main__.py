"""`python -m oco …` is the `oco` command."""

from oco.cli import app

app(prog_name="oco")
