"""Service networking of the development cluster: cluster IPs on loopback, forwarding, names."""
