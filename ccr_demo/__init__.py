"""ccr_demo: cross-lingual cross-modal retrieval with 1-to-K contrastive learning.

The library is split one concept per module (see README "Layout"); import what you
need from the submodules, e.g. ``from ccr_demo.model.modeling import CCRModel``.
"""

__version__ = "0.1.0"

# The paper's ten languages, in the order used for K everywhere by default.
LANGUAGES = ("en", "de", "fr", "cs", "zh", "ja", "id", "es", "ru", "tr")
