"""The analysis stage: clinical events derived from stored readings (docs/architecture.md,
"Analysis stage"). It reads the ingest store read-only and writes only DIR/analysis/.

    errors.py      AnalysisError, the package's one exception hierarchy
    model.py       Segment (an analysed reading), Episode (one evaluation's finding), Event (read API)
    detect.py      neurokit2 behind an adapter: R peaks and template-match quality (lazy import)
    spans.py       contiguity, the signal a new reading is read with, the runs the rules see (pure)
    rules.py       bradycardia, tachycardia, pause, AF, unreadable: thresholds and why (pure)
    merge.py       the merge rule that makes events idempotent (pure)
    store.py       analysis/analysis.sqlite: schema and the writer (one transaction per batch)
    stage.py       one batch: spans → detector → beats and segments → rules → merged events
    service.py     the process's loop, its cursor and ready.json
    __main__.py    `python -m analysis --state-dir DIR [--speed S] [--poll SECONDS]`
    store_view.py  the lab's read API: events, detected_beats, progress (no neurokit2)
    measure.py     one reading's beats, HR and PR/QRS/QT intervals (neurokit2 delineation)
"""
