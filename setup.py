"""Packaging for ranksrgan_plugin: RankSRGAN as a BasicSR and MMagic plugin.

The Makefile installs the verified stack (requirements/) before this package; `pip install .`
alone on an existing BasicSR set-up works too (basicsr 1.4.2 then needs
`pip install --no-build-isolation basicsr==1.4.2` first: it is a source package whose build
would otherwise pull a second torch).
"""
from pathlib import Path

from setuptools import find_packages, setup


def read_version() -> str:
    init = Path(__file__).parent / 'ranksrgan_plugin' / 'version.py'
    namespace: dict = {}
    exec(init.read_text(), namespace)
    return namespace['__version__']


setup(
    name='ranksrgan_plugin',
    version=read_version(),
    description='RankSRGAN (ICCV 2019) as a plugin for BasicSR and MMagic',
    long_description=Path(__file__).with_name('README.md').read_text(encoding='utf-8'),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['ranksrgan_plugin', 'ranksrgan_plugin.*']),
    python_requires='>=3.9',
    install_requires=[
        'basicsr==1.4.2',
        'torch>=1.13',
        'torchvision',
        'numpy',
        'scipy',
        'lmdb',
        'opencv-python',
        'pyyaml',
        'tqdm',
        'scikit-image',
        'matplotlib',  # tools/plot_curves.py
    ],
    extras_require={
        # The combination verified to import and train (see requirements/constraints.txt). mmagic's
        # own requirements also pull mediapipe, facexlib, controlnet-aux, ... which SR training
        # never imports: the Makefile installs mmagic with --no-deps and this list instead.
        'mmagic': [
            'mmagic==1.2.0',
            'mmengine==0.10.7',
            'mmcv-lite==2.1.0',
            'numpy<2',
            'opencv-python<4.12',
            'setuptools<81',
            'diffusers==0.24.0',
            'huggingface_hub<0.26',
            'transformers==4.46.3',
            'einops',
            'safetensors',
            'imageio',
            'lpips',
            'pandas<2.3',
            'resize-right',
            'click',
            'requests',
            'albumentations',
        ],
        'dev': ['pytest', 'ruff'],
    },
    entry_points={'console_scripts': ['ranksrgan-train = ranksrgan_plugin.train:main']},
    license='Apache-2.0',
)
