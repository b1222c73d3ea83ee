"""`ecgpipe export`: a device's stored readings as WFDB, EDF+, FHIR R4 or CSV."""
