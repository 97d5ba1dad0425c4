"""The Gradio demo: handlers (plain functions, tested without a server), the app, and ``ccr demo``."""
