"""portable-python-action: relocatable Python bundles from python-build-standalone."""

__version__ = "0.1.0"
