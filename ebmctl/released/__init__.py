"""Checkpoints the papers' authors' released code writes, read without running code and mapped onto the nets of
the matching recipe, so that `ebmctl import` turns them into ordinary runs."""
