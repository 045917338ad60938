"""The project's SLURM profile filled in for the one-node cluster of local-cluster.sh: its `cpu`
partition (and `gpu` for GPU jobs when asked), no account and `squeue` for job states (the
cluster has no slurmdbd, so neither accounts nor sacct), small jobs. Writes DIR/config.yaml:

    python workflow/slurm/local_profile.py DIR [--gpus 1]
    snakemake --workflow-profile DIR
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

PROJECT_PROFILE = Path(__file__).resolve().parents[1] / "profiles/slurm/config.yaml"


def write_local_profile(folder: Path, gpus: int = 0) -> Path:
    """The profile folder (made here; it must not exist) for the local cluster; `gpus: 1` sends
    GPU jobs to its `gpu` partition with `--gpus=fake:1` (local-cluster.sh's LOCAL_CLUSTER_GPUS=1)."""
    profile = yaml.safe_load(PROJECT_PROFILE.read_text())
    profile["default-resources"].update(slurm_partition="cpu", mem_mb=1000, runtime=30)
    del profile["default-resources"]["slurm_account"]
    gpu = {"gpus": 1, "gpu_model": "fake", "gpu_partition": "gpu"} if gpus else {"gpus": 0}
    profile["config"].update(gpu)
    profile |= {
        "slurm-no-account": True,
        "slurm-status-command": "squeue",  # slurmctld keeps ended jobs for MinJobAge (10 minutes)
        "slurm-init-seconds-before-status-checks": 2,
        "verbose": True,  # logs each sbatch call and the job id it got
    }
    folder.mkdir()
    (folder / "config.yaml").write_text(yaml.safe_dump(profile))
    return folder


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--gpus", type=int, choices=[0, 1], default=0)
    args = parser.parse_args()
    print(write_local_profile(args.folder, args.gpus))
