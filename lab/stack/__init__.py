"""The running stack: processes, ports, the broker and its $SYS watcher, the state dir, levels, the clock."""
