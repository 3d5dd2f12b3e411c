"""`python -m trainer`: the training entry for torchrun (and a plain single process), the same
command as `namae train` (`trainer.cli.train`).

    torchrun --nproc_per_node 4 -m trainer --device cuda
    torchrun --nproc_per_node 2 -m trainer --device cpu --from-folder DIR   # gloo on CPUs
"""

from trainer.cli import main

main()
