"""``keyless doctor``: everything that can stand between a machine and its file share, checked in order.

Each check is a plain function returning a :class:`CheckResult` (OK / WARN / FAIL / SKIP, what was seen,
and the fix). :func:`run_checks` runs them in dependency order: identity before anything that needs a token,
DNS before TLS, read before write before delete. The CLI (``keyless.cli.doctor_cmd``) only renders.
"""

from keyless.doctor.result import CheckResult, Status
from keyless.doctor.runner import DoctorTarget, run_checks

__all__ = ["CheckResult", "DoctorTarget", "Status", "run_checks"]
