"""Workarounds for upstream defects: :mod:`.basicsr` (BasicSR 1.4.2) and :mod:`.mmagic` (MMagic 1.2.0,
mmengine 0.10.7, mmcv-lite).

Each workaround lives once, in one of the two modules, with a docstring naming the upstream defect
and version and what changes for a user of the host library; ``docs/workarounds.md`` lists them all, with
the test that pins each. Nothing but workarounds lives here. Importing this package applies what must precede
the first ``import basicsr`` (the torchvision alias); ``ranksrgan_plugin/__init__.py`` imports it
first. The MMagic side is applied by ``ranksrgan_plugin.mmagic`` (:func:`.mmagic.apply`).
"""
from . import basicsr


def apply() -> None:
    """Apply the import-time workarounds of the BasicSR side (idempotent)."""
    basicsr.alias_torchvision_functional_tensor()


apply()
