"""Exceptions of the lab package.

    LabError                 every lab failure the CLI reports as one line
    ├── ConfigError          a bad argument, option or config value
    ├── StateDirError        no stack (or a broken one) in the state dir
    ├── ComponentError       a component failed to start, stop or become healthy
    └── BrokerError          Mosquitto is missing or would not start
"""


class LabError(Exception):
    """Base of every error the lab reports to the user."""


class ConfigError(LabError):
    pass


class StateDirError(LabError):
    pass


class ComponentError(LabError):
    pass


class BrokerError(ComponentError):
    pass
