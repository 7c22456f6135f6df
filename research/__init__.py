"""Reproducible research: training the base CNNs, the paper's protocol, scale data; run
from the repository root; see research/README.md."""
