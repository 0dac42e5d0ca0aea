"""SQL files of the dialer, shipped as package data of ``dialer.sql`` (see pyproject)."""
