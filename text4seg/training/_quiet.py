"""Silence optional-kernel warnings of packages imported with transformers' training modules."""

import logging


def quiet_optional_kernels() -> None:
    """bitsandbytes (imported with transformers' training modules when installed) warns at import that its
    optional CPU kernel hub is missing; nothing here needs it."""
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
