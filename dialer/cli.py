"""The ``dialer`` command: parses arguments, loads settings, configures logging, and
hands over to the module that does the work. Exit codes: 0 ok, 1 failure, 2 bad
settings or usage."""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from dialer import commands, db, logs
from dialer.commands import UserError
from dialer.config import Settings, SettingsError, load_settings
from dialer.runtime import event_loop_factory

Handler = Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, int]]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dialer",
        description="Outbound call campaigns over the Twilio Voice API.",
    )
    parser.add_argument("--version", action="version",
                        version=f"%(prog)s {importlib.metadata.version('dialer')}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"dialer: {exc}", file=sys.stderr)
        return 2
    # A command may log less by default (the demo draws a live table); a level set
    # by the operator always wins.
    level = settings.log_level
    if "log_level" not in settings.model_fields_set:
        level = getattr(args, "default_log_level", level)
    logs.configure(
        log_format=settings.log_format,
        level=level,
        show_phones=settings.log_phone_numbers,
    )
    if getattr(args, "sync_handler", None) is not None:
        result: int = args.sync_handler(settings, args)
        return result
    handler: Handler = args.handler
    try:
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            return runner.run(handler(settings, args))
    except (UserError, SettingsError, db.SchemaNotCurrent) as exc:
        print(f"dialer: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
