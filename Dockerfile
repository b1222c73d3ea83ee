# One image for the ingest service, the analysis stage and the device fleet (the broker uses
# the official image).
FROM python:3.11-slim
# mosquitto_passwd: `ecgpipe provision` hashes the broker's password file with it
RUN apt-get update && apt-get install -y --no-install-recommends mosquitto \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md constraints.txt ./
COPY wire ./wire
COPY ecgcore ./ecgcore
COPY devices ./devices
COPY ingest ./ingest
COPY analysis ./analysis
COPY lab ./lab
COPY clinic ./clinic
COPY broker_config ./broker_config
RUN pip install --no-cache-dir -c constraints.txt .
ENV PYTHONUNBUFFERED=1
