"""Schema commands from any directory: `python -m storage upgrade|check|revision`.

python -m storage upgrade                 # migrate DATABASE_URL (default: the SQLite file)
python -m storage check                   # what `alembic check` does: fail on model drift
python -m storage revision -m "add x"     # autogenerate a migration from the models
"""

from __future__ import annotations

import argparse

from alembic import command

from storage import db


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m storage", description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="database URL (default: DATABASE_URL, else SQLite file)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("upgrade", help="apply migrations up to head")
    commands.add_parser("check", help="fail if the models and the migrated schema differ")
    revision = commands.add_parser("revision", help="autogenerate a new migration")
    revision.add_argument("-m", "--message", required=True)
    args = parser.parse_args(argv)

    engine = db.make_engine(args.url)
    try:
        if args.command == "upgrade":
            db.upgrade(engine)
        elif args.command == "check":
            db.check(engine)
        else:
            command.revision(db.alembic_config(engine), message=args.message, autogenerate=True)
    finally:
        engine.dispose()


if __name__ == "__main__":
    main()
