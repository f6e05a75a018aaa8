"""What the command modules share: devices and datasets, loading a run, the trainer and its guard, generators,
conditioning, judging samples, pictures, progress, stopping, and several processes. Nothing here is a command,
and nothing here imports one."""
