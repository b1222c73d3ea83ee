"""The device side of ecgpipe: a fleet of simulated HeartCheck ECG monitors.

Modules, one responsibility each:

    profile       PatientProfile and fleet_profiles(n, seed): rate, HRV, noise, seed
    patient       Rhythm, Episode, EventRule: a patient's resolved rhythm, as plain values
    catalogue     the patient catalogue (profiles.toml): load_catalogue, parse_mix,
                  parse_episode, fleet_profiles with a mix and scheduled episodes
    rhythm        BeatModel: R-peak times and beat kinds, by 256-s block, never looping
    templates     the ecgsyn beat-template library, built once and cached on disk
    artifacts     AF f-waves, wander, mains, EMG, motion, lead-off, electrode noise
    ecg_source    each device's signal (EcgStream over PatientModel, or the synthetic bank)
                  at absolute sample numbers; truth_beats for the lab
    outbox        the fleet's SQLite outbox: rows, seq counters, evictions
    schedule      StripSchedule: when a device in strip mode records (pure)
    history       the fleet's event history, history/devices.jsonl (one buffered writer)
    device        the per-device state machine (pure: no paho, no sockets)
    mqtt_adapter  every device's MQTT connection (MqttLink) on one selector, its reconnect
                  backoff (JitterBackoff or FixedRetry); the only paho import
    fleet         the event loop that owns all of the above
    outbox_view   read-only views of fleet/outbox.sqlite for the lab (ecgcore.sqlite_snapshot)
    outbox_reading  one buffered reading (row and decoded samples) for `inspect reading`
    profiles_file   fleet/profiles.json: each device's patient profile, written at start
    errors        DeviceError and its subclasses

The words its options take (delivery, outbox policy, backoff, recording) are ecgcore.modes'.
Run it with `python -m devices` (see docs/architecture.md for the options).
"""
