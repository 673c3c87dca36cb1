"""Phase-1 checks: one concept per module, each ``async def check(ctx) -> CheckResult``.

A check reads a :class:`~mailadmin.checks.context.RecipientContext` and returns
a verdict, :class:`~mailadmin.verdicts.Pass`/``None`` (no opinion) or
:class:`~mailadmin.verdicts.NotScanned`.  It never talks to a socket or the
database itself: scans come memoised through ``ctx.scans``, rules as a frozen
snapshot.
"""
