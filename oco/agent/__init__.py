"""The managed-computer agent (`oco agent`): polls the server, runs jobs, reports, performs post-actions.

Entry points for the command line: `run_agent(config_path, once)` and `enroll(config_path, server_url,
registration_key, ...)`; `oco.agent.cli.agent_app` is the Typer sub-application.
"""

from oco.agent.config import enroll
from oco.agent.loop import run_agent

__all__ = ["enroll", "run_agent"]
