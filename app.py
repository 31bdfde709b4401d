"""Gradio demo entry point (the Hugging Face Space's app_file); all logic lives in ccr_demo.ui."""

from ccr_demo.ui import build_demo

if __name__ == "__main__":
    build_demo().queue(default_concurrency_limit=2, max_size=32).launch()
