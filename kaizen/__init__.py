"""Kaizen: autonomous crypto-perpetuals trading on a self-improving model loop."""

__version__ = "0.1.0"
