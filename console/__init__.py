"""The console (app env): the agents' handoff API and, later, its pages."""
