"""The paper's road as one resumable command (``tools/reproduce.py``): check -> rank_dataset -> ranker ->
ranksrgan -> test -> report, with the paper's option files, and its CPU rehearsal."""
from .layout import TOOLBOXES, RoadLayout, road_folder
from .preflight import Problem, check_road
from .road import EXIT_MISSING_INPUTS, PaperRoad, RoadPlan
from .stages import StageFailed
from .variants import STAGES, VARIANTS, Variant

__all__ = ['EXIT_MISSING_INPUTS', 'PaperRoad', 'Problem', 'RoadLayout', 'RoadPlan', 'STAGES', 'StageFailed',
           'TOOLBOXES', 'VARIANTS', 'Variant', 'check_road', 'road_folder']
