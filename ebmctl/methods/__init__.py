"""Training methods, registered by name."""

from ebmctl.methods.base import PersistentChainEbm
from ebmctl.methods.clel import Clel
from ebmctl.methods.icd import Icd
from ebmctl.methods.igebm import Igebm

METHODS: dict[str, type[PersistentChainEbm]] = {"igebm": Igebm, "icd": Icd, "clel": Clel}

__all__ = ["METHODS", "Clel", "Icd", "Igebm", "PersistentChainEbm"]
