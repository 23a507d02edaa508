"""mocme: multimodal knowledge graph completion with MoCME (Mixture of Complementary Modality Experts)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mocme")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"
