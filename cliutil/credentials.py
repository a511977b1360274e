"""Before a command that needs AWS credentials (make diff, deploy, destroy): find them as the CDK CLI would, or say
in one line what is missing and how to give it, instead of letting the CLI synthesize for seconds and then print its
error twice (its lookup-role attempt warns, its deploy-role fallback fails)."""

from __future__ import annotations

import argparse
import sys

FIX = "sign in (aws sso login, or AWS_PROFILE=NAME) or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"


def problem(cli_args: list[str]) -> str | None:
    """Why no credentials would reach the CLI, or None when they would (or a --profile is the CLI's to resolve).
    botocore's chain is the CLI's: environment, shared files, SSO, container and instance roles."""
    if any(arg == "--profile" or arg.startswith("--profile=") for arg in cli_args):
        return None
    import botocore.session
    from botocore.exceptions import BotoCoreError

    try:
        found = botocore.session.Session().get_credentials()
    except BotoCoreError as error:
        return f"no usable AWS credentials ({error})"
    return None if found else "no AWS credentials found (environment, shared files, SSO, container or instance role)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__,
        usage="%(prog)s COMMAND [CLI_ARG ...]  (e.g. 'make diff STAGE=dev' $(ARGS))",
    )
    parser.add_argument("command", help="the command as the user typed it, for the message: 'make diff STAGE=dev'")
    parser.add_argument("cli_args", nargs=argparse.REMAINDER, help="the arguments the CLI will get (ARGS)")
    args = parser.parse_args(argv)
    found = problem(args.cli_args)
    if found is None:
        return 0
    print(f"{args.command.split(' STAGE=')[0]}: {found}; {FIX}, then run {args.command} again", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
