"""Exceptions of the lab package.

    LabError                 every lab failure the CLI reports as one line
    ├── UsageError           a bad command-line value a handler rejects (exit status 2)
    ├── ConfigError          a bad argument, option or config value
    │   └── SettingError     a stack setting out of range (`key` and `rule`, so the message can
    │                        name the option that set it, or the stack.json that holds it)
    ├── StateDirError        no stack (or a broken one) in the state dir, or a damaged state file
    ├── ComponentError       a component failed to start, stop or become healthy
    └── BrokerError          Mosquitto is missing or would not start
"""


class LabError(Exception):
    """Base of every error the lab reports to the user."""


class UsageError(LabError):
    """Bad usage found after parsing (argparse reports the rest): exit status 2, like argparse."""


class ConfigError(LabError):
    pass


class SettingError(ConfigError):
    """A setting's value breaks its rule. The message names it as a command-line option
    (`--delivery must be ...`) when `option`, else by its key in words (`backoff cap must be ...`)."""

    def __init__(self, key: str, rule: str, *, option: bool = False) -> None:
        label = f"--{key.replace('_', '-')}" if option else key.replace("_", " ")
        super().__init__(f"{label} {rule}")
        self.key = key
        self.rule = rule


class StateDirError(LabError):
    pass


class ComponentError(LabError):
    pass


class BrokerError(ComponentError):
    pass
