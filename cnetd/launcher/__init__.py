"""``cnetd``, the launcher: checks the config, prepares the runtime dir, runs supervisord and stays its parent."""
