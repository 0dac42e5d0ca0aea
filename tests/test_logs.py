"""Other libraries' log records (uvicorn, asyncpg) come out as the daemon's own lines."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

# Run in a process of its own: logging set-up is global, and the test session has its own.
SCRIPT = textwrap.dedent("""
    import asyncio, logging, socket
    import httpx
    from starlette.applications import Starlette
    from starlette.routing import Route
    from dialer import logs
    from dialer.httpserver import EmbeddedServer

    logs.configure(log_format="json", level="info")

    async def boom(request):
        raise RuntimeError("the handler failed")

    async def main():
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = EmbeddedServer(Starlette(routes=[Route("/boom", boom)]), host="127.0.0.1",
                                port=port)
        await server.start()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"NOT HTTP AT ALL\\r\\n\\r\\n")  # uvicorn: Invalid HTTP request received
        await reader.read()
        writer.close()
        async with httpx.AsyncClient() as http:
            await http.get(f"http://127.0.0.1:{port}/boom")  # uvicorn: Exception in ASGI app
        await server.stop()
        logging.getLogger("asyncpg").warning("connection %s lost", "pg-1")

    asyncio.run(main())
""")


def test_foreign_records_are_json_lines_with_the_traceback_as_a_field() -> None:
    run = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                         timeout=60, check=False)
    assert run.returncode == 0, run.stderr
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    by_logger = {}
    for record in records:
        assert {"event", "level", "timestamp"} <= record.keys(), record
        by_logger.setdefault(record.get("logger"), []).append(record)
    invalid, failure = by_logger["uvicorn.error"]
    assert invalid["event"] == "Invalid HTTP request received."
    assert invalid["level"] == "warning"
    assert failure["level"] == "error"
    assert "Traceback" in failure["exception"] and "the handler failed" in failure["exception"]
    (asyncpg,) = by_logger["asyncpg"]
    assert (asyncpg["event"], asyncpg["level"]) == ("connection pg-1 lost", "warning")
