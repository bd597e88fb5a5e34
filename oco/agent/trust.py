"""What our agent refuses to run: jobs its pinned publishers did not sign (checked before any download)."""

from __future__ import annotations

from oco.domain.signing import SIGNATURE_INVALID, JobClaim, TrustPolicy, signature_problem


class JobRefused(Exception):
    """The job must not run; reported failed (-9999) with this message as it is."""


def check_signature(policy: TrustPolicy, claim: JobClaim) -> None:
    """Raise JobRefused ("package signature invalid: …") unless `policy` lets the job run."""
    problem = signature_problem(policy, claim)
    if problem is not None:
        raise JobRefused(f"{SIGNATURE_INVALID}: {problem}")
