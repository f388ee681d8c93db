"""The freshness promise on the refresher's side: its CronJob runs often
enough, and each run ends in time, for rates never to be older than
spin.toml's max_rate_age."""

from __future__ import annotations

import re

from ..context import Context
from ..model import Check, containers_of, deployable, get, pod_spec, rule
from ..workloads import REFRESHER_DEFAULTS, UNRESOLVED, env_value


def parse_minutes(field_text: str) -> list[int]:
    """Minutes of the hour a cron minute field fires at: `*`, `*/N`, `A`,
    `A-B`, `A-B/N`, `A/N` and comma lists of these."""
    minutes: set[int] = set()
    for part in field_text.split(","):
        m = re.fullmatch(r"(\*|\d+(?:-\d+)?)(?:/(\d+))?", part)
        if not m:
            raise ValueError(f"cannot read minute field part {part!r}")
        span, step = m.group(1), int(m.group(2) or 1)
        if step < 1:
            raise ValueError(f"step 0 in {part!r}")
        if span == "*":
            lo, hi = 0, 59
        elif "-" in span:
            lo, hi = map(int, span.split("-"))
        else:
            lo = int(span)
            hi = 59 if m.group(2) else lo
        if not (0 <= lo <= hi <= 59):
            raise ValueError(f"minute range {part!r} is outside 0-59 or reversed")
        minutes.update(range(lo, hi + 1, step))
    return sorted(minutes)


def gaps_seconds(minutes: list[int]) -> list[int]:
    """Time between each run and the next, across the hour boundary too."""
    gaps = [b - a for a, b in zip(minutes, minutes[1:])]
    gaps.append(minutes[0] + 60 - minutes[-1])
    return [g * 60 for g in gaps]


def parse_schedule(schedule: str) -> list[int]:
    text = schedule.strip()
    if text == "@hourly":
        text = "0 * * * *"
    if text.startswith("@"):
        raise ValueError(f"{schedule!r} runs at most hourly")
    fields = text.split()
    if len(fields) != 5:
        raise ValueError(f"{schedule!r} does not have 5 fields")
    for name, value in zip(("hour", "day of month", "month", "day of week"), fields[1:]):
        if value not in ("*", "?"):
            raise ValueError(
                f"{schedule!r}: the {name} field must be '*' (this check only reasons about the minute field)"
            )
    return parse_minutes(fields[0])


def parse_duration(text: str) -> float:
    """The refresher's durations: `250ms`, `30s`, `4m`, `1h` (refresher/src/config.rs)."""
    m = re.fullmatch(r"(\d+)(ms|s|m|h)", text.strip())
    if not m or int(m.group(1)) == 0:
        raise ValueError(f"{text!r} is not a duration the refresher accepts (e.g. 500ms, 30s, 4m, 1h)")
    return int(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m.group(2)]


@rule("freshness")
def freshness(ctx: Context, c: Check) -> None:
    """The refresher's CronJob runs often enough that rates never grow older
    than spin.toml's max_rate_age: the largest gap between two scheduled runs
    is below it (only the minute field is reasoned about; the others must be
    `*`). A run always ends before the next one is due (activeDeadlineSeconds
    below the smallest gap), or concurrencyPolicy Forbid, which is required,
    would skip that next run and double the gap. The refresher's own deadline
    (REFRESH_DEADLINE, or its default) lets every attempt the Job makes
    (backoffLimit + 1) end within activeDeadlineSeconds, or the Job is killed
    mid-run and its retry never happens."""
    max_age = ctx.max_rate_age
    seen = []
    for s in deployable(ctx.sets):
        for o in s.of_kind("CronJob"):
            schedule = get(o.doc, "spec", "schedule")
            if not schedule:
                c.fail(f"{o.ref()}: spec.schedule is missing")
                continue
            try:
                minutes = parse_schedule(str(schedule))
            except ValueError as e:
                c.fail(f"{o.ref()}: schedule {schedule!r} cannot be proven to keep rates fresh: {e}")
                continue
            gaps = gaps_seconds(minutes)
            gap, smallest = max(gaps), min(gaps)
            if gap >= max_age:
                c.fail(
                    f"{o.ref()}: schedule {schedule!r} leaves {gap} s between runs; rates must be refreshed "
                    f"in under {max_age} s (e.g. '*/4 * * * *')"
                )
            deadline = get(o.doc, "spec", "jobTemplate", "spec", "activeDeadlineSeconds")
            if deadline is None:
                c.fail(f"{o.ref()}: spec.jobTemplate.spec.activeDeadlineSeconds is missing; a hung run would block later runs")
            elif deadline >= smallest:
                c.fail(
                    f"{o.ref()}: activeDeadlineSeconds {deadline} is not below the {smallest} s between runs; "
                    f"with concurrencyPolicy Forbid a slow run would skip the next one"
                )
            if get(o.doc, "spec", "concurrencyPolicy") != "Forbid":
                c.fail(f"{o.ref()}: concurrencyPolicy must be Forbid (two refreshers would race for the same quota)")
            attempts = get(o.doc, "spec", "jobTemplate", "spec", "backoffLimit", default=6) + 1
            for _, cont in containers_of(pod_spec(o) or {}):
                value = env_value(s, o, cont, "REFRESH_DEADLINE")
                if value is UNRESOLVED:
                    c.fail(f"{o.ref()}: container {cont.get('name')!r} REFRESH_DEADLINE must be a literal or a ConfigMap key of the manifests")
                    continue
                value = REFRESHER_DEFAULTS["REFRESH_DEADLINE"] if value is None else value
                try:
                    run = parse_duration(value)
                except ValueError as e:
                    c.fail(f"{o.ref()}: container {cont.get('name')!r} REFRESH_DEADLINE: {e}")
                    continue
                if deadline is not None and run * attempts >= deadline:
                    c.fail(
                        f"{o.ref()}: container {cont.get('name')!r} REFRESH_DEADLINE {value} × {attempts} attempt(s) "
                        f"(backoffLimit {attempts - 1}) = {run * attempts:g} s is not below activeDeadlineSeconds "
                        f"{deadline}: the Job would be killed before its runs end"
                    )
                seen.append(f"{o.name} {schedule!r}: max gap {gap} s, {attempts} × {value} < {deadline} s")
    if not seen and not c.failures:
        c.fail("no CronJob found: nothing refreshes the rates")
    c.summary = "; ".join(sorted(set(seen))) + f" (gaps < {max_age} s)"
