"""The `glamlab` command: serve the API, migrate the database, start the dashboard.

glamlab db upgrade            # apply migrations to DATABASE_URL (default SQLite file)
glamlab serve --port 8000     # the API (uvicorn)
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    uvicorn.run(
        "backend.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        timeout_graceful_shutdown=10,
    )
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from backend.settings import Settings
    from storage import db

    url = Settings().database_url
    try:
        db.upgrade(url)
    except Exception as error:  # one line, not a traceback
        print(f"glamlab db upgrade: error: {type(error).__name__}: {error}", file=sys.stderr)
        return 2
    print(f"database at {db.database_url(url)} is up to date")
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    # A new process, not an import: the dashboard talks to the API over HTTP only.
    argv = [sys.executable, "-m", "ui.cli", "--port", str(args.port), "--host", args.host]
    if args.api_url:
        argv += ["--api-url", args.api_url]
    os.execv(sys.executable, argv)
    return 0  # unreachable


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="glamlab", description="GLaM Routing Lab service")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve", help="run the API")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--log-level", default="info")
    p.set_defaults(func=cmd_serve)
    p = sub.add_parser("ui", help="run the dashboard (Streamlit)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8501)
    p.add_argument("--api-url", default=None, help="default: $GLAMLAB_API_URL or :8000")
    p.set_defaults(func=cmd_ui)
    database = sub.add_parser("db", help="database maintenance").add_subparsers(
        dest="action", required=True
    )
    p = database.add_parser("upgrade", help="apply migrations")
    p.set_defaults(func=cmd_db_upgrade)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
