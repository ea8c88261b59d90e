"""Start the dashboard: `glamlab ui [--port P]` runs `streamlit run ui/app.py` headless.

python -m ui.cli --port 8501 --api-url http://127.0.0.1:8000
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

APP = Path(__file__).with_name("app.py")
DEFAULT_PORT = 8501


def streamlit_command(port: int, host: str) -> list[str]:
    """The `streamlit run` command line for the dashboard."""
    return [
        sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.port", str(port),
        "--server.address", host,
        "--server.headless", "true",
        # No file watcher (a dashboard in use is not being edited; it saves a CPU core's
        # polling), no usage statistics sent anywhere, no tracebacks shown to users.
        "--server.fileWatcherType", "none",
        "--browser.gatherUsageStats", "false",
        "--client.showErrorDetails", "none",
        "--client.toolbarMode", "viewer",
    ]  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="glamlab ui", description="Start the dashboard")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--api-url", default=None, help="the API's base URL (default: $GLAMLAB_API_URL)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Replace this process with the dashboard's streamlit server (it never returns).

    exec, not a child process: Ctrl-C, `docker stop` and `kill` then reach streamlit
    itself, and no orphaned server is left holding the port.
    """
    args = build_parser().parse_args(argv)
    env = dict(os.environ)
    if args.api_url:
        env["GLAMLAB_API_URL"] = args.api_url
    print(f"dashboard: http://{args.host}:{args.port}", flush=True)
    command = streamlit_command(args.port, args.host)
    os.execve(command[0], command, env)
    return 0  # unreachable; for callers typed against an exit status


if __name__ == "__main__":
    sys.exit(main())
