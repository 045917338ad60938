# A thin, generic adapter: one Snakemake rule per DVC stage of dvc.yaml, with the same
# command, inputs, outputs and resources, so that
#     snakemake --cores 8 --resources gpu=4
# runs the same graph as `dvc repro`, in parallel. When it succeeds, `dvc commit` records
# what ran in dvc.lock on this (submit) host, so `dvc status` is clean afterwards.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "workflow"))
from dvc_stages import commit, is_directory, job_resources, producers, read_stages

STAGES = read_stages(Path("."))
ALL_OUTS = [o for s in STAGES for o in s.outs]


def _output(path):
    return directory(path) if is_directory(path, Path(".")) else path


rule all:
    input:
        ALL_OUTS,
    default_target: True


for _stage in STAGES:

    rule:
        name:
            _stage.rule
        input:
            [p for d in _stage.deps for p in producers(d, ALL_OUTS)],
        output:
            [_output(o) for o in _stage.outs],
        params:
            # Evaluated now, in the loop (a shell directive would read _stage at run time).
            cmd=_stage.cmd,
            dvc=_stage.params,
        threads:
            # The job's CPUs (sbatch --cpus-per-task); Snakemake sets OMP_NUM_THREADS to it.
            int(config.get("threads", 1))
        resources:
            **job_resources(_stage, config),
        shell:
            "{params.cmd}"


onsuccess:
    commit(STAGES)
