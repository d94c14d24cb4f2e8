"""One connected device: turn-taking, listening modes, abort, paced downlink speech."""
