"""``python -m autotimm.export --checkpoint x.ckpt --output y.onnx [--image-size 640] [--e2e]``."""

import sys

from autotimm.export_cli import main

if __name__ == "__main__":
    sys.exit(main())
