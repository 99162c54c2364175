"""Prints the demo's predictions beside the true labels."""
import sys
from pathlib import Path

import numpy as np

probs = np.load(sys.argv[1]).reshape(-1, 10)
labels = np.load(Path(__file__).resolve().parent / "digits_samples.npz")["y"]
pred = probs.argmax(axis=1)
for i, (p, y) in enumerate(zip(pred, labels)):
    print(f"digit {i:2d}: predicted {p} (p={probs[i, p]:.2f}), true {y}")
print(f"{int((pred == labels).sum())}/{len(labels)} correct")
