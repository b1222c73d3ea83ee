"""The running stack: processes and pidfiles, free ports, the broker launcher, the $SYS watcher, the state-dir layout, tier levels and the shared clock's anchor."""
