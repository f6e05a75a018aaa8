"""Training methods, registered by name."""

from typing import Any

from ebmctl.methods.ae import Autoencoder
from ebmctl.methods.base import PersistentChainEbm
from ebmctl.methods.cebm import Cebm
from ebmctl.methods.clel import Clel
from ebmctl.methods.ebclr import Ebclr
from ebmctl.methods.hat import Hat
from ebmctl.methods.icd import Icd
from ebmctl.methods.igebm import Igebm
from ebmctl.methods.simclr import Simclr
from ebmctl.methods.sngan import Sngan

METHODS: dict[str, type[Any]] = {
    "igebm": Igebm, "icd": Icd, "clel": Clel, "cebm": Cebm, "ebclr": Ebclr, "simclr": Simclr, "sngan": Sngan,
    "hat": Hat, "ae": Autoencoder,
}

__all__ = ["METHODS", "Autoencoder", "Cebm", "Clel", "Ebclr", "Hat", "Icd", "Igebm", "PersistentChainEbm", "Simclr", "Sngan"]
