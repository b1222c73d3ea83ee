"""The clinic side: what the people around a telemetry pipeline read.

`clinic.export` writes a device's stored readings in formats other tools read (WFDB, EDF+,
FHIR R4, CSV); `clinic.api` is `ecgpipe serve`: the clinicians' read-only HTTP API and the live
page of a running stack.
"""
