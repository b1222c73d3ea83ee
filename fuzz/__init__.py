"""Fuzzing the parsers that take bytes from the network (docs/security.md, "Hostile input").

    .venv/bin/python -m fuzz [TARGET ...] [--runs N] [--corpus DIR]

`targets.py` names what is fuzzed and what counts as a crash; `__main__.py` runs the targets
under atheris (coverage-guided, libFuzzer) with the project's own modules instrumented. The
suite runs the same targets over a regression corpus (tests/fuzz_corpus/) and over hypothesis
strategies (tests/test_fuzz_targets.py).
"""
