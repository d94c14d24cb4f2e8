"""What the assistant can do: the tool registry, tool-call parsing, and the tool sources."""
