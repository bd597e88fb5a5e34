"""The `oco` command: server, agent and the admin use cases from a terminal.

Each subject's commands live in a module of their own and are imported when they are used: a command
then loads only the use cases it calls (`oco group computer add` none of the deployments, the agent or
the metrics), and most of a command's start-up was imports. The table below says where each lives.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperGroup

from oco.cli.common import State

COMMANDS: dict[str, tuple[str, str]] = {
    "deploy": ("oco.cli.deploy", "deploy"),
    "uninstall": ("oco.cli.deploy", "uninstall"),
    "server": ("oco.cli.server", "server"),
    "housekeeping": ("oco.cli.server", "housekeeping_command"),
    "package": ("oco.cli.packages", "app"),
    "signing-key": ("oco.cli.signing", "app"),
    "computer": ("oco.cli.computers", "app"),
    "group": ("oco.cli.groups", "app"),
    "assignment": ("oco.cli.computers", "assignment_app"),
    "container": ("oco.cli.containers", "app"),
    "agent": ("oco.agent.cli", "agent_app"),
    "db": ("oco.cli.server", "db_app"),
    "import": ("oco.cli.imports", "app"),
    "user": ("oco.cli.users", "user_app"),
    "token": ("oco.cli.users", "token_app"),
    "settings": ("oco.cli.settings", "app"),
}
"""Each command of `oco`: the module that defines it, and its Typer app (a group of commands) or its
function (a command alone)."""


class _Commands(TyperGroup):
    """The root command: a command named is built from its module when it is run or listed."""

    def list_commands(self, ctx: Any) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            self.add_command(_command(cmd_name, *COMMANDS[cmd_name]), cmd_name)
        return super().get_command(ctx, cmd_name)

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and args[0] not in COMMANDS:  # a typo: the suggestions come from every command
            for name in COMMANDS:
                self.get_command(ctx, name)
        return super().resolve_command(ctx, args)


def _command(name: str, module: str, attribute: str) -> Any:
    defined: typer.Typer | Callable[..., None] = getattr(importlib.import_module(module), attribute)
    if isinstance(defined, typer.Typer):
        group = typer.main.get_group(defined)
        group.name = name
        return group
    alone = typer.Typer(add_completion=False)
    alone.command(name)(defined)
    return typer.main.get_command(alone)


app = typer.Typer(
    cls=_Commands,
    help="OCO Deploy: software deployment server, agent and admin commands.",
    no_args_is_help=True,
)


@app.callback()
def main(
    config: Path | None = typer.Option(
        None, "--config", help="TOML settings file (see docs/configuration.md)."
    ),
) -> None:
    """Read the settings from `--config` (and the environment) for the command that follows."""
    State.config = config
    State.runtime = None
