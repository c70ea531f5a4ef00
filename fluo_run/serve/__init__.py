"""`fluo serve`: the OTLP evaluator runtime.

OTLP receivers (`receivers`) hand spans to trace assembly (`assembly`); completed
traces go to the evaluator thread (`evaluator`), which runs the one compiled
`Program` of `fluo_lang` over traces and tumbling windows and publishes signals
to the sinks (`sinks`, `store`). `runtime` wires them together; `cli` is the shell.
"""
