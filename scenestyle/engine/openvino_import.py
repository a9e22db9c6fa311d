"""Import OpenVINO without its telemetry; no torch here, so a probe can time the import alone."""

from __future__ import annotations

import contextlib
from types import ModuleType


@contextlib.contextmanager
def telemetry_declined():
    """Within the block OpenVINO's telemetry sends nothing and writes no client id.

    ``import openvino`` and ``openvino.convert_model`` report to Google Analytics unless the user has
    opted out; scenestyle sends nothing anywhere. Each report is also sent from a forked process that,
    on a machine without network, can hang in the DNS lookup and keep the parent from exiting. The
    consent check answers 'declined' (the first import in a process sets the telemetry up for good)
    and the sender, which every message passes, drops what it is given.
    """
    try:
        from openvino_telemetry.utils.opt_in_checker import ConsentCheckResult, OptInChecker
        from openvino_telemetry.utils.sender import TelemetrySender
    except ImportError:  # no telemetry package: OpenVINO uses its own stub, which sends nothing
        yield
        return
    saved = OptInChecker.check, TelemetrySender.send
    OptInChecker.check = lambda self, *args, **kwargs: ConsentCheckResult.DECLINED
    TelemetrySender.send = lambda self, *args, **kwargs: None
    try:
        yield
    finally:
        OptInChecker.check, TelemetrySender.send = saved


def import_openvino() -> ModuleType:
    """``import openvino`` with its telemetry declined: the import itself reports an event otherwise."""
    with telemetry_declined():
        import openvino
    return openvino
