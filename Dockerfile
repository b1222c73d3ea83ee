# One image for the ingest service, the analysis stage and the device fleet (the broker uses
# the official image).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY wire ./wire
COPY ecgcore ./ecgcore
COPY devices ./devices
COPY ingest ./ingest
COPY analysis ./analysis
COPY lab ./lab
COPY broker_config ./broker_config
RUN pip install --no-cache-dir .
ENV PYTHONUNBUFFERED=1
