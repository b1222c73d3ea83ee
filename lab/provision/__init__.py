"""Provisioning: every device's and service's broker credentials, signing secret and certificate."""
