"""``python -m text4seg.cli VERB ...`` (as ``text4seg VERB ...``; for ``accelerate launch -m`` / ``torchrun -m``)."""

import sys

from text4seg.cli import main

sys.exit(main())
