"""Click commands whose options that take one value refuse to be given twice (every `fluo` command)."""

from __future__ import annotations

import click


class OneValueCommand(click.Command):
    """A command whose options that take one value (`--junit-xml FILE`, `--expect EXPR`) refuse to be given twice:
    click keeps the last without a word, and what the first asked for (a gate, a report) was dropped. A usage error
    (exit 2) names the option. Flags, `multiple=True` options and those that refuse repetition themselves
    (`refuses_repeats`, as serve's sinks do, naming the values) are left alone."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        given = list(args)  # click's parser consumes the list it parses
        rest = super().parse_args(ctx, args)
        if not ctx.resilient_parsing:
            _, _, order = self.make_parser(ctx).parse_args(args=given)
            for param in dict.fromkeys(order):
                times = order.count(param)
                if times > 1 and takes_one_value(param):
                    flag, said = max(param.opts, key=len), "twice" if times == 2 else f"{times} times"
                    raise click.UsageError(f"{flag} is given {said}: it takes one value", ctx)
        return rest


def takes_one_value(param: click.Parameter) -> bool:
    """Whether `param` is an option that takes one value and leaves refusing a repeat to `OneValueCommand`."""
    return (
        isinstance(param, click.Option)
        and not (param.multiple or param.count or param.is_flag)
        and not getattr(param, "refuses_repeats", False)
    )
