#!/usr/bin/env bash
# A one-node SLURM cluster on localhost, to try the SLURM profile before using a real cluster
# (and for the tests). Needs Debian's slurm-wlm and munge packages (apt-get install slurm-wlm).
#
#   workflow/slurm/local-cluster.sh start [DIR]   start munged, slurmctld and slurmd; wait for the node
#   workflow/slurm/local-cluster.sh stop  [DIR]   stop what `start` started (by PID)
#   source DIR/env                                 point sbatch, squeue, sacct... at this cluster
#
# Everything lives in DIR (default /tmp/transferlab-slurm): munge key and socket, slurm.conf,
# state, logs, PID files. The daemons run as the calling user. Commands inside a job find the
# cluster at SLURM's default path only (Snakemake's job step drops SLURM_CONF before its srun),
# so `start` links /etc/slurm/slurm.conf to DIR's (it needs root for that, and refuses to
# replace a configuration that is not its own); `stop` removes the link. No slurmdbd: accounting is off,
# so the profile reads job states through squeue (status_command: squeue), which needs jobs to
# stay in slurmctld's memory after they end (MinJobAge), and submits without an account.
# Partitions: `cpu` (the default). Environment: LOCAL_CLUSTER_GPUS=N gives the node N GPUs of
# type LOCAL_CLUSTER_GPU_TYPE (default "fake"; no devices behind them) and adds a partition
# `gpu`, so that the profile's GPU form (--gpus=TYPE:1 -p gpu) is scheduled and can be checked; LOCAL_CLUSTER_PORT (default 6817) is slurmctld's
# port, slurmd takes the next one.
set -euo pipefail

action=${1:-}
dir=$(realpath -m "${2:-${LOCAL_CLUSTER_DIR:-/tmp/transferlab-slurm}}")
port=${LOCAL_CLUSTER_PORT:-6817}
gpus=${LOCAL_CLUSTER_GPUS:-0}
gpu_type=${LOCAL_CLUSTER_GPU_TYPE:-fake}
node=$(hostname -s)
system_conf=/etc/slurm/slurm.conf

die() { echo "local-cluster: $*" >&2; exit 2; }

stop() {
    for name in slurmd slurmctld munged; do
        pidfile="$dir/$name.pid"
        [ -f "$pidfile" ] || continue
        pid=$(cat "$pidfile")
        if kill "$pid" 2>/dev/null; then
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -9 "$pid" 2>/dev/null || true
        fi
        rm -f "$pidfile"
    done
    [ "$(readlink "$system_conf" 2>/dev/null)" = "$dir/slurm.conf" ] && rm -f "$system_conf"
    return 0
}

start() {
    for tool in munged mungekey slurmctld slurmd sinfo sbatch; do
        command -v "$tool" >/dev/null || die "$tool not found: apt-get install slurm-wlm munge"
    done
    if [ -e "$system_conf" ] || [ -L "$system_conf" ]; then
        [ "$(readlink "$system_conf")" = "$dir/slurm.conf" ] || die "$system_conf exists and is not this cluster's: stop that cluster or remove it"
    fi
    [ -f "$dir/slurmctld.pid" ] && kill -0 "$(cat "$dir/slurmctld.pid")" 2>/dev/null && die "already running in $dir (stop it first)"
    mkdir -p "$dir/state" "$dir/spool" "$dir/log"
    chmod 0700 "$dir"
    [ -f "$dir/munge.key" ] || mungekey --create --keyfile="$dir/munge.key"
    chmod 0400 "$dir/munge.key"
    munged --key-file="$dir/munge.key" --socket="$dir/munge.sock" --pid-file="$dir/munged.pid" \
        --log-file="$dir/log/munged.log" --seed-file="$dir/munged.seed" --force

    # CPUs and memory as slurmd sees them, less 1 GiB for the daemons and the submit host.
    hw=$(slurmd -C | head -1)
    cpus=$(sed -n 's/.* CPUs=\([0-9]*\).*/\1/p' <<<"$hw")
    mem=$(( $(sed -n 's/.* RealMemory=\([0-9]*\).*/\1/p' <<<"$hw") - 1024 ))
    user=$(id -un)
    gres_node="" gres_types=""
    if [ "$gpus" -gt 0 ]; then
        gres_node="Gres=gpu:$gpu_type:$gpus"
        gres_types="GresTypes=gpu"
        # SLURM drops GPUs without device files: empty files stand in for /dev/nvidia*.
        : > "$dir/gres.conf"
        for i in $(seq 0 $((gpus - 1))); do
            : > "$dir/fake-gpu$i"
            echo "NodeName=$node Name=gpu Type=$gpu_type File=$dir/fake-gpu$i" >> "$dir/gres.conf"
        done
    fi
    cat > "$dir/slurm.conf" <<CONF
ClusterName=local
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=$user
SlurmdUser=$user
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge.sock
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/pgid
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
SwitchType=switch/none
ReturnToService=2
MinJobAge=600
KillWait=5
SchedulerParameters=sched_interval=2
$gres_types
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem $gres_node State=UNKNOWN
PartitionName=cpu Nodes=$node Default=YES MaxTime=INFINITE State=UP
CONF
    [ "$gpus" -gt 0 ] && echo "PartitionName=gpu Nodes=$node MaxTime=INFINITE State=UP" >> "$dir/slurm.conf"
    echo "export SLURM_CONF=$dir/slurm.conf" > "$dir/env"
    mkdir -p "$(dirname "$system_conf")"
    ln -sfn "$dir/slurm.conf" "$system_conf" || die "cannot link $system_conf (needs root)"
    export SLURM_CONF=$dir/slurm.conf
    slurmctld -c  # -c: a clean start, no state of an earlier cluster in DIR
    slurmd -N "$node"
    for _ in $(seq 60); do
        state=$(sinfo -h -N -o %t 2>/dev/null | head -1)
        [ "$state" = idle ] && { echo "local-cluster: node $node idle ($cpus CPUs, $mem MB$([ "$gpus" -gt 0 ] && echo ", $gpus GPUs $gpu_type")); source $dir/env"; return; }
        sleep 0.5
    done
    echo "local-cluster: the node did not become idle in 30 s (state: ${state:-none}); logs in $dir/log" >&2
    stop
    exit 1
}

case "$action" in
    start) start ;;
    stop) stop ;;
    *) die "usage: $0 start|stop [DIR]" ;;
esac
