"""The `ecgpipe` command: argument parsing and one handler function per command."""

from lab.cli.main import main

__all__ = ["main"]
