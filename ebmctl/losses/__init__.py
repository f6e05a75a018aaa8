"""The methods' losses as pure functions of their inputs: contrastive divergence (IGEBM, ICD, the Hat EBM),
contrastive objectives (NT-Xent, EBCLR) and the losses of generators."""
