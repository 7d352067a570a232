"""Model-based search in rounds (``hyperlax search``): Optuna asks for a round of
configurations, the round trains as an ordinary plan of listed samples, Optuna is told the
results, and the study file records each round so a search resumes, replays and can be
reviewed.

    spaces.py       [space] -> Optuna distributions, and Optuna's params -> hyperparameter values
    objectives.py   what a trial is told: final return, best return, area under the curve
    study_file.py   the study file (search.json): asked params and told values per round
    sampler.py      Optuna itself: the sampler, the study, the SQLite mirror (imported lazily)
    rounds.py       the ask / train / tell loop, and the replay of recorded rounds
    round_plan.py   one round as a plan of listed samples, run by the exec use case
    run.py          the search use case: validation, the search directory, stops

The ``hyperlax search`` command itself (parsing, printing) is ``cli/search.py``.

Only sampler.py imports optuna, and only when a search runs or a report asks for importance;
nothing here imports JAX at module level.
"""
