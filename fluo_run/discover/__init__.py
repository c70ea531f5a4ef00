"""`fluo discover`: rules that hold on a corpus of traces, mined from compact per-trace summaries."""
