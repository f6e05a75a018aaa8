"""Data-parallel training on several processes: the process group, what the processes share, the launcher.

Processes come from torchrun (``torchrun --nproc-per-node N -m ebmctl train ...``, on one node or several) or
from ``ebmctl train --nproc N``, which runs torchrun's launcher itself. Each finds its place in the variables
torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) and joins the process group: NCCL
with one GPU per process (``cuda:LOCAL_RANK``), gloo on CPU. Without those variables, or with one process,
nothing here changes a run.

Gradients are averaged by DistributedDataParallel around each trained net (see
:meth:`ebmctl.methods.energy_model.EnergyModel.replicate`). The state file (:mod:`.rank_state`) keeps one state file per run:
rank 0's full state at the keys a one-process run uses, and every other rank's own part (replay buffer,
bank, RNG) under ``rank{r}.``.
"""
