"""The ``dialer`` command: parses arguments, loads settings, configures logging, and
hands over to the module that does the work.

Exit codes, decided here and nowhere else: 0 ok; 1 an operation failed
(``UserError``: no such campaign, a damaged file, or anything unexpected); 2 usage
or configuration (a malformed command line, a bad option value, a ``DIALER_*``
setting or the database it names: ``UsageError``, ``ConfigError``,
``SettingsError``, an old schema); 130 interrupted. Every failure is one line on
stderr naming what is wrong; a traceback only with ``--debug`` or
``DIALER_LOG_LEVEL=debug``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, NoReturn, cast

from dialer import commands, db, logs
from dialer.commands import UserError
from dialer.config import Settings, SettingsError, load_settings
from dialer.runtime import event_loop_factory
from dialer.safetext import without_controls

Handler = Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, int]]

USAGE = 2
FAILURE = 1
# Long enough for any message worth reading on one line.
MESSAGE_CHARS = 600


class Parser(argparse.ArgumentParser):
    """argparse with its errors on one line (the usage is one ``--help`` away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE, f"{_one_line(f'{self.prog}: {message}')} (see `{self.prog} --help`)\n")


def _one_line(text: str) -> str:
    return " ".join(without_controls(text).split())[:MESSAGE_CHARS]


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="dialer",
        description="Outbound call campaigns over the Twilio Voice API.",
    )
    parser.add_argument("--version", action="version",
                        version=f"%(prog)s {importlib.metadata.version('dialer')}")
    parser.add_argument("--debug", action="store_true",
                        help="log at debug level and show the traceback of an unexpected error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.register(cast(commands.SubParsers, sub))  # subcommands are Parsers too
    return parser


def _fail(exc: BaseException, code: int) -> int:
    print(f"dialer: {_one_line(str(exc))}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        return _fail(exc, USAGE)
    # A command may log less by default (the demo draws a live table); a level set
    # by the operator always wins.
    level = settings.log_level
    if "log_level" not in settings.model_fields_set:
        level = getattr(args, "default_log_level", level)
    debug = args.debug or settings.log_level == "debug"
    logs.configure(
        log_format=settings.log_format,
        level="debug" if args.debug else level,
        show_phones=settings.log_phone_numbers,
    )
    try:
        if getattr(args, "sync_handler", None) is not None:
            result: int = args.sync_handler(settings, args)
            return result
        handler: Handler = args.handler
        # A process started with SIGINT ignored (a shell's background job, or a parent
        # that ignores it) keeps that, and asyncio's Runner then installs no handler:
        # Ctrl-C or a supervisor's SIGINT did nothing. Every command ends on SIGINT.
        if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            return runner.run(handler(settings, args))
    except UserError as exc:
        return _fail(exc, exc.exit_code)
    except (SettingsError, db.SchemaNotCurrent) as exc:
        return _fail(exc, USAGE)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if debug:
            raise
        detail = str(exc).splitlines()[0] if str(exc) else ""
        return _fail(
            RuntimeError(f"unexpected error: {type(exc).__name__}: {detail} "
                         "(run with --debug for the traceback)"),
            FAILURE,
        )


if __name__ == "__main__":
    sys.exit(main())
