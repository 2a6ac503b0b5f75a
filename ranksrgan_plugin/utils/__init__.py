"""Library helpers shared by the BasicSR side, the MMagic side and the tools: tiled network inference, receptive
fields, training-log parsing, options copies, training states, usable CPU cores, the package's import graph.
Import the submodules directly. (Checkpoints have their own package: :mod:`ranksrgan_plugin.checkpoints`.)"""
