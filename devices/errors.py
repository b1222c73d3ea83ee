"""Exceptions of the devices package.

    DeviceError                every failure of the device side (the fleet reports it as one line)
    ├── ConfigError            a bad fleet option or device setting (CLI arguments included)
    ├── ProfileError           a patient profile out of its physiological range
    ├── EcgSourceError         the ECG bank could not be generated, validated or cached
    ├── OutboxError            the SQLite outbox is unusable or its bookkeeping disagrees
    └── HistoryError           the event history (history/devices.jsonl) cannot be written
"""


class DeviceError(Exception):
    """Base of every error raised by the devices package."""


class ConfigError(DeviceError):
    pass


class ProfileError(DeviceError):
    pass


class EcgSourceError(DeviceError):
    pass


class OutboxError(DeviceError):
    pass


class HistoryError(DeviceError):
    pass
