"""The manifest checker's tests, a module per family of rules; harness.py is their base."""
