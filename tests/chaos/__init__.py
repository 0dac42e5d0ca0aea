"""Crash tests: real daemon processes killed with SIGKILL while they dial."""
