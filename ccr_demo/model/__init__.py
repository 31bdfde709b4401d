"""The model: configuration, towers (a registry), processing, fusion encoder, modeling, card.

``from ccr_demo.model import CCRModel`` is the public entry; the name is resolved on first use
(PEP 562), so importing a light submodule (``ccr_demo.model.configuration``) does not pull in
torch, transformers and timm.
"""

__all__ = ["CCRModel"]


def __getattr__(name: str):
    if name == "CCRModel":
        from ccr_demo.model.modeling import CCRModel

        return CCRModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
