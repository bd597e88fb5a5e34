"""The managed-computer agent (`oco agent`): polls the server, runs jobs, reports, performs post-actions.

Entry points for the command line: `run_agent(config_path, once)` and `enroll(config_path, server_url,
registration_key, ...)`; `oco.agent.cli.agent_app` is the Typer sub-application.
"""

from typing import Any

__all__ = ["enroll", "run_agent"]


def __getattr__(name: str) -> Any:
    """Imported when used: the main CLI imports this package for `oco agent …` alone."""
    if name == "enroll":
        from oco.agent.config import enroll

        return enroll
    if name == "run_agent":
        from oco.agent.loop import run_agent

        return run_agent
    raise AttributeError(name)
