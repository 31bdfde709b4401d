"""ccr_demo: cross-lingual cross-modal retrieval with 1-to-K contrastive learning.

Subpackages by concept, in layers that import one way (README "Module map"):
utils <- data <- model <- (eval | gallery) <- (training | ui). The entries most users need:
``from ccr_demo.model import CCRModel`` and ``from ccr_demo.gallery import Gallery``.
"""

__version__ = "0.1.0"

# The paper's ten languages, in the order used for K everywhere by default.
LANGUAGES = ("en", "de", "fr", "cs", "zh", "ja", "id", "es", "ru", "tr")
