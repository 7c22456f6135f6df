"""``python -m anan_onnx``: the same command line as the ``anan-onnx`` script."""

import sys

from anan_onnx.cli import main

if __name__ == "__main__":
    sys.exit(main())
