"""siyu 私域: private-domain omnichannel customer operations."""

__version__ = "0.1.0"
