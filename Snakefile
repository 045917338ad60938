# A thin, generic adapter: Snakemake runs the stages of dvc.yaml that DVC says are stale, in
# parallel, with the same commands and resources:
#     snakemake --cores 8 --resources gpu=4
# DVC is the one judge of what is up to date (workflow/dvc_plan.py): on this (submit) host the
# Snakefile takes DVC's repository lock, asks DVC which stages are stale and plans them and
# what depends on them; each job (workflow/stage_job.py) runs its stage's command and ends, and
# the submit host records the stage in dvc.lock once it has run to the end. Snakemake's own metadata and
# mtimes decide nothing: a rule's output is only a marker of this invocation.
import os
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(workflow.basedir) / "workflow"))
from dvc_plan import PLAN_ENV, EngineBusy, Plan, job_resources, submit_host_plan
from site_cache import ensure_private_site_cache
from transferlab.errors import InputError

STAGE_JOB = Path(workflow.basedir) / "workflow" / "stage_job.py"

if workflow.is_main_process:
    # A run's thread count is one of its settings (params.yaml `threads`): each job gets it.
    THREADS = int((yaml.safe_load(Path("params.yaml").read_text()) or {}).get("threads", 1))
    try:
        ensure_private_site_cache(Path("."))  # before DVC reads its databases
        PLAN, COMMITTER = submit_host_plan(Path("."), THREADS)
    except (EngineBusy, InputError) as err:
        sys.exit(f"transferlab: {err}")
    PLAN_FILE = os.environ[PLAN_ENV]
else:  # a job reading the Snakefile again (SLURM): the submit host's plan, no DVC
    PLAN_FILE = os.environ[PLAN_ENV]
    PLAN, COMMITTER = Plan.load(PLAN_FILE), None


if PLAN.stages:

    rule all:
        input:
            PLAN.recorded,
        default_target: True

    rule recorded_in_dvc_lock__:  # the last job: waits until every stage that ran is recorded
        input:
            [PLAN.marker(s.rule, "ok") for s in PLAN.stages],
        output:
            PLAN.recorded,
        params:
            job=f"{sys.executable} {STAGE_JOB} {PLAN_FILE} --recorded",
        localrule: True
        shell:
            "{params.job}"

else:  # nothing stale: a target that exists, so that Snakemake says "Nothing to be done"

    rule all:
        output:
            PLAN_FILE,
        default_target: True


for _stage in PLAN.stages:

    rule:
        name:
            _stage.rule
        input:
            [PLAN.marker(up, "ok") for up in _stage.upstream],
        output:
            PLAN.marker(_stage.rule, "ok"),
        params:
            # Evaluated now, in the loop (a shell directive would read _stage at run time).
            job=f"{sys.executable} {STAGE_JOB} {PLAN_FILE} {_stage.rule}",
        threads: PLAN.threads
        localrule: _stage.local  # bookkeeping (code, plan, settings, split, reports): never queued on a cluster
        resources:
            **job_resources(_stage.resources, config),
        shell:
            "{params.job}"


onstart:
    if COMMITTER is not None:
        COMMITTER.start()


onsuccess:
    if COMMITTER is not None:
        COMMITTER.finish()


onerror:
    if COMMITTER is not None:
        COMMITTER.finish()
