"""Exceptions of the lab package.

    LabError                 every lab failure the CLI reports as one line
    ├── UsageError           a bad command-line value a handler rejects (exit status 2)
    ├── ConfigError          a bad argument, option or config value
    ├── StateDirError        no stack (or a broken one) in the state dir
    ├── ComponentError       a component failed to start, stop or become healthy
    └── BrokerError          Mosquitto is missing or would not start
"""


class LabError(Exception):
    """Base of every error the lab reports to the user."""


class UsageError(LabError):
    """Bad usage found after parsing (argparse reports the rest): exit status 2, like argparse."""


class ConfigError(LabError):
    pass


class StateDirError(LabError):
    pass


class ComponentError(LabError):
    pass


class BrokerError(ComponentError):
    pass
