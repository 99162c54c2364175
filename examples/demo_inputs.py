"""Writes the demo's inputs: the held-out digits shipped in examples/digits_samples.npz, float32."""
import sys
from pathlib import Path

import numpy as np

data = np.load(Path(__file__).resolve().parent / "digits_samples.npz")
np.save(sys.argv[1], data["x"])
