"""Library helpers shared by the BasicSR side, the MMagic side and the tools: checkpoint reading,
tiled network inference, receptive fields, training-log parsing, usable CPU cores. Import the submodules
directly."""
