"""edgeq: trained networks to plain C for microcontrollers."""
from pathlib import Path

__version__ = "0.1.0"

# templates/, runtime_c/ and boards/ sit beside the package in the source tree.
ROOT = Path(__file__).resolve().parent.parent
