"""Gradio UI. Placeholder until the gallery/app issue lands: it says so instead of pretending."""


def build_demo():
    import gradio as gr

    with gr.Blocks(title="CCR demo") as demo:
        gr.Markdown("# CCR demo\nThe retrieval UI is not built yet: the gallery and app issue is open.")
    return demo
