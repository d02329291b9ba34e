"""The AWS backend: hooks, operators, triggers and waiters in the amazon provider's style."""
