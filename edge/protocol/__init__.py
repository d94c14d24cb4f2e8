"""The xiaozhi wire protocol, sans-I/O: no sockets, no models, no clocks."""
