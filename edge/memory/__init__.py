"""What the assistant remembers: turns, summaries and reminders, per device, in SQLite."""
