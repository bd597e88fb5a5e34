"""`python -m oco.agent --config FILE [--once]`."""

from oco.agent.cli import agent_app

agent_app(prog_name="oco agent")
