"""Rasa-side code (bot env, Python 3.10): NLU components and input channels."""
