"""Tests of the Twilio-compatible simulator, ``dialer.sim``."""
