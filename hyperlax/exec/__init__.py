"""Running a plan (``hyperlax exec``) and everything that runs it: which entries, on which
devices, with which compiled programs, with checkpoints, halving rungs, Ray, stops and progress.

Use cases and their JAX-free helpers (safe to import from the front end):
    run_plan.py     exec as a use case: open the output root, pick entries, run, report
    options.py      exec's options (devices, shards, Ray, compile cache) and the resume line
    status.py       ``hyperlax status``: what is done, partial, pending or corrupt
    benchmark.py    ``hyperlax benchmark``: several manifests planned and run in one process
    schedule.py     entries -> sub-batches -> programs (no JAX)
    stopping.py     SIGINT/SIGTERM turned into a stop at the next safe point
    starting.py     a stop while the command line starts (before a command's own handling)
    progress.py     the progress line and its log
    recheck.py      ``status --recheck N``: one entry run again, its curves compared
    halving/        successive halving: decide.py (rung rules and decision files, JAX-free),
                    job.py (how one rung's entries run), rungs.py (the rung loop)
    checkpoints/    files.py (checkpoint records on disk, JAX-free), snapshots.py (carries)
Imports JAX:
    local_exec.py   exec in this process: the entry loop, or the rung loop around it
    executor.py     the entry loop: claim, skip what is done, run, write, release
    runner.py       one compiled program over a batch of lanes, chunk by chunk
    programs.py     building and compiling the programs, ahead of time and in parallel
    sharding.py     a batch axis spread over several devices
    outputs.py      an entry's outputs and its success marker
    provenance.py   this process's provenance record (versions, device, numerics settings)
    ray_exec.py     entries as Ray tasks
"""
