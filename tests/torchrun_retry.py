"""Two-process CPU (gloo) runs through torchrun, retried once when gloo's thread teardown aborts a finished worker.

On the 2-core box a worker sometimes aborts at exit, after its work is done ("terminate called without an active
exception", exit status -6; compat.basicsr.close_distributed / compat.mmagic.close_distributed make it rarer).
Exactly that signature gets one fresh run, which must then succeed; any other failure is a failure.
"""
import subprocess
from typing import Callable, Optional, Sequence

GLOO_TEARDOWN_ABORT = 'terminate called without an active exception'


def run_torchrun(command: Sequence[str], before_retry: Optional[Callable[[], None]] = None,
                 **kwargs) -> subprocess.CompletedProcess:
    """``subprocess.run(command, capture_output=True, text=True, **kwargs)``, retried once on the teardown abort."""
    result = subprocess.run(list(command), capture_output=True, text=True, **kwargs)
    if result.returncode and GLOO_TEARDOWN_ABORT in result.stdout + result.stderr:
        if before_retry is not None:
            before_retry()
        result = subprocess.run(list(command), capture_output=True, text=True, **kwargs)
    return result
