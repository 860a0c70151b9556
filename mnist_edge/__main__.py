"""``python -m mnist_edge`` works like the ``mnist-edge`` script."""

from mnist_edge.cli import main

main()
