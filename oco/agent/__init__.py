"""The managed-computer agent (`oco agent`)."""
