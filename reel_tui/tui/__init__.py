"""The Textual face: a keyboard-driven app over the same job queue as the CLI."""
