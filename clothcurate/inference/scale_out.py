"""``predict`` under ``torchrun``: every rank stops together when one fails, with one error line.

The ranks of a ``torchrun`` job meet at a few points (after the preparation, after each batch,
at the end). At each point every rank says whether it failed and how many photos it finished
(one small ``all_gather_object`` over the process group that training uses,
:mod:`clothcurate.training.distributed`). When some rank failed, every rank stops there:

* rank 0 raises the error: its own (the original exception), or the first failed rank's, as
  the same kind of error (``BadInputError`` -> exit code 2, else 1) prefixed ``rank R:``;
* the other ranks raise :class:`~clothcurate.errors.StoppedWithOtherRank`, which the CLI turns
  into the same exit code without printing, so the job prints one ``error:`` line.

A single process (no ``torchrun``) just raises its error.

Example::

    done = agree(ctx, error=None, done=len(batch))     # photos finished by all ranks at this step
"""

from __future__ import annotations

from clothcurate.errors import BadInputError, ClothcurateError, StoppedWithOtherRank, exit_status
from clothcurate.training.distributed import DistContext

__all__ = ["agree"]


def agree(ctx: DistContext, *, error: Exception | None, done: int = 0) -> int:
    """Meet the other ranks: stop every rank if any failed, else count what they finished.

    Every rank must call it the same number of times (it is a collective call).

    Args:
        ctx: the distributed context (a single process: no collective call).
        error: this rank's error since the last meeting, or None.
        done: photos this rank finished since the last meeting.

    Returns:
        The photos finished by all ranks since the last meeting.

    Raises:
        Exception: on rank 0 (or alone), this rank's ``error``, or the first failed rank's
            error as ``BadInputError`` / ``ClothcurateError`` prefixed ``rank R:``.
        StoppedWithOtherRank: on the other ranks, when any rank failed (the CLI prints nothing).
    """
    if not ctx.distributed:
        if error is not None:
            raise error
        return done
    told = ctx.gather((done, None if error is None else exit_status(error)))
    failed = [(rank, failure) for rank, (_, failure) in enumerate(told) if failure is not None]
    if not failed:
        return sum(count for count, _ in told)
    rank, (code, message) = failed[0]
    if ctx.is_main and error is not None and rank == 0:
        raise error
    if ctx.is_main:
        raise (BadInputError if code == 2 else ClothcurateError)(f"rank {rank}: {message}")
    raise StoppedWithOtherRank(code, f"rank {rank}: {message}") from error
