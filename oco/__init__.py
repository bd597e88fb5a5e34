"""OCO Deploy: software deployment server and agent, compatible with OCO agents."""

__version__ = "0.1.0"
