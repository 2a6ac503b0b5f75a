"""Copies of a BasicSR options YAML with some values set: how the paper road, the demo and the benchmarks
give BasicSR the options of each run.

A copy, rather than basicsr 1.4.2's ``--force_yml key=value``: that parses values with its own
``_postprocess``, which reads a negative number (``-0.1``) as a string. The copy written is what
BasicSR trains with; its first line is a comment saying what it was made from.
"""
import copy
import os
import os.path as osp
from typing import Any, Dict, Mapping, Optional

import yaml


def write_options_with(options_file: str, values: Mapping[str, Any], output: str,
                       header: Optional[str] = None) -> str:
    """A copy of the options YAML ``options_file`` with ``values`` (dotted keys, e.g. ``train.rank_opt.bias``) set,
    written to ``output`` (first line: the comment ``header``, by default naming the original and the keys set).
    Returns ``output``."""
    with open(options_file, encoding='utf-8') as f:
        options = yaml.safe_load(f)
    default = f'{osp.basename(options_file)} with {", ".join(values)} set'
    return write_options(options, values, output, header or default)


def write_options(options: Dict[str, Any], values: Mapping[str, Any], output: str, header: str) -> str:
    """Write ``options`` with ``values`` (dotted keys) set as a YAML file whose first line is the comment
    ``header`` (see :func:`write_options_with`); ``options`` itself is left as it was. Returns ``output``."""
    options = copy.deepcopy(options)
    for dotted, value in values.items():
        *parents, leaf = dotted.split('.')
        section = options
        for key in parents:
            section = section[key]
        section[leaf] = value
    os.makedirs(osp.dirname(osp.abspath(output)), exist_ok=True)
    with open(output, 'w', encoding='utf-8') as f:
        f.write(f'# {header}\n')
        yaml.safe_dump(options, f, sort_keys=False)
    return output
