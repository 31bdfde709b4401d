"""The demo's tabs, one module each: it builds its components (inside its ``gr.Tab``) and wires
its own events; ``layout.build_layout`` composes them in order (search, image-to-text, your own
gallery, evaluate, about, then the side-by-side comparison when two or more models are loaded).
``common`` holds what several tabs share (language names, the per-session states)."""
