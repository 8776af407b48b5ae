"""ZeroMQ messaging: the node-local bus, the API→scheduler request channel and inter-node heartbeats."""
