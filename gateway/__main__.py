"""The command line: ``python -m gateway [serve|check-config|token|fake-upstream] ...``."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

from . import config as config_mod
from . import logs


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        default=os.environ.get("GATEWAY_CONFIG") or None,
        help="TOML file (default $GATEWAY_CONFIG, else ./config.toml if it exists)",
    )
    parser = argparse.ArgumentParser(prog="qwen-gateway", parents=[common])
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve", parents=[common], help="run the gateway (the default)")
    for p in (parser, serve):
        p.add_argument("--host", help="override server.host")
        p.add_argument("--port", type=int, help="override server.port")
    sub.add_parser("check-config", parents=[common], help="validate the configuration")
    token = sub.add_parser(
        "token", parents=[common], help="print a JWT signed with auth.jwt_secret"
    )
    token.add_argument("--sub", required=True, help="the user id (the token's sub claim)")
    token.add_argument("--admin", action="store_true", help="add role=admin")
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds")
    chat = sub.add_parser("chat", parents=[common], help="chat in the terminal")
    chat.add_argument("--url", default="http://127.0.0.1:8080", help="the gateway's base URL")
    chat.add_argument("--assistant", default="default")
    chat.add_argument("--token", default=os.environ.get("GATEWAY_TOKEN"), help="a JWT")
    fake = sub.add_parser("fake-upstream", parents=[common], help="run the Qwen simulator alone")
    fake.add_argument("--host", default="127.0.0.1")
    fake.add_argument("--port", type=int, default=8089)
    return parser


DEFAULT_CONFIG = "config.toml"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    command = args.command or "serve"
    # A file named by --config or $GATEWAY_CONFIG must exist, whatever the command: starting
    # on defaults would silently drop its auth and origin settings. Only ./config.toml is
    # optional.
    named = args.config is not None
    args.config = args.config if named else DEFAULT_CONFIG
    try:
        config = config_mod.load(args.config, required=named)
    except config_mod.ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    if command == "fake-upstream":
        from .llm.simulator import run_simulator
        from .server import listen_error

        logs.configure()
        try:
            run_simulator(args.host, args.port)
        except OSError as exc:  # the port: web.run_app fails before serving anything else
            print(f"error: {listen_error(exc, args.host, args.port)}", file=sys.stderr)
            return 2
        return 0
    if command == "chat":
        from .terminal import run_chat

        try:
            status: int = asyncio.run(run_chat(args.url, args.assistant, args.token))
            return status
        except KeyboardInterrupt:
            return 130
    if command == "check-config":
        source = args.config if named or os.path.exists(args.config) else "defaults (no file)"
        print(
            f"{source}: ok (upstream {config.upstream.kind}, "
            f"{len(config.assistants)} assistant(s), redis {'on' if config.redis.url else 'off'})"
        )
        return 0
    if command == "token":
        from .auth import mint_token

        if not config.auth.jwt_secret:
            print(
                f"config error: auth.jwt_secret: not set in {args.config} "
                "(set it, or GATEWAY_AUTH__JWT_SECRET, to 32 or more random bytes)",
                file=sys.stderr,
            )
            return 2
        try:
            print(mint_token(config.auth, args.sub, admin=args.admin, ttl_s=args.ttl))
        except ValueError as exc:
            print(f"config error: {exc}", file=sys.stderr)
            return 2
        return 0
    from .server import serve

    logs.configure(config.log.level, config.log.format)
    return serve(config, host=args.host, port=args.port)


if __name__ == "__main__":
    sys.exit(main())
