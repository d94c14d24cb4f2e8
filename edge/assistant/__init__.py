"""What to answer: the prompt (in the order that keeps the model's cache valid), a device's
conversation and its storage, the model-and-tools loop, the prompt prefix evaluated ahead, the
long-term summary, and the fixed phrases said instead of the model's words. No device I/O here:
the session (`edge.session`) decides when, this package decides what."""
