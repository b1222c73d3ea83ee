"""Small pieces every ecgpipe process shares: the injected clock and state-dir files."""
