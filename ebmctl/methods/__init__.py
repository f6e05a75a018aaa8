"""Training methods: each owns its energy, its training step and its state (:mod:`ebmctl.methods.base`), and
offers commands the capabilities typed in :mod:`ebmctl.methods.capabilities`. Recipes (:mod:`ebmctl.recipes`) build
them from run specs."""
