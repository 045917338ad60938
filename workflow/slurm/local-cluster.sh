#!/usr/bin/env bash
# A one-node SLURM cluster on localhost, to try the SLURM profile before using a real cluster
# (and for the tests). Needs Debian's slurm-wlm and munge packages (apt-get install slurm-wlm).
#
#   workflow/slurm/local-cluster.sh start [DIR]   start munged, slurmctld and slurmd; wait for the node
#   workflow/slurm/local-cluster.sh stop  DIR     stop what `start` started, remove its files
#   source DIR/env                                 point sbatch, squeue, scancel... at this cluster
#
# Everything lives in DIR, a private folder: without DIR, a fresh one from mktemp (its name
# is printed); a given DIR must be empty or absent, owned by you, mode 0700 or 0711 and not a
# link, and every folder above it searchable by all (munged checks); the folder ends up 0711
# (on a shared machine, a folder in /tmp that someone else made first is theirs). Every start
# generates a new munge key; files are created exclusively (noclobber), never through a link;
# a failed start undoes itself. The daemons run as the calling user.
# Commands inside a job find the cluster at SLURM's default path only (Snakemake's job step
# drops SLURM_CONF before its srun), so `start` links /etc/slurm/slurm.conf to DIR's; it needs
# root for that, and refuses to start on a host that already has a SLURM configuration of any
# kind (a slurm.conf, a configless cache in /run/slurm/conf, running SLURM daemons). `stop`
# removes the link. No slurmdbd: accounting is off, so the profile reads job states through
# squeue (status_command: squeue), which needs jobs to stay in slurmctld's memory after they
# end (MinJobAge), and submits without an account.
# Partitions: `cpu` (the default). Environment: LOCAL_CLUSTER_GPUS=N gives the node N GPUs of
# type LOCAL_CLUSTER_GPU_TYPE (default "fake"; no devices behind them) and adds a partition
# `gpu`, so that the profile's GPU form (--gpus=TYPE:1 -p gpu) is scheduled and can be
# checked; LOCAL_CLUSTER_PORT (default 6817) is slurmctld's port, slurmd takes the next one.
set -euo pipefail
set -o noclobber  # `>` creates: it never truncates nor follows an existing name
umask 077

action=${1:-}
given=${2:-}
port=${LOCAL_CLUSTER_PORT:-6817}
gpus=${LOCAL_CLUSTER_GPUS:-0}
gpu_type=${LOCAL_CLUSTER_GPU_TYPE:-fake}
node=$(hostname -s)
system_conf=/etc/slurm/slurm.conf
daemons="slurmd slurmctld munged"

die() { echo "local-cluster: $*" >&2; exit 2; }

# A folder of ours that nobody else can write to or swap: refuse anything else.
check_private() {
    local d=$1 owner mode
    [ -L "$d" ] && die "$d is a symbolic link: refusing it"
    [ -d "$d" ] || die "$d is not a folder"
    owner=$(stat -c %u "$d") mode=$(stat -c %a "$d")
    [ "$owner" = "$(id -u)" ] || die "$d is owned by uid $owner, not by you: refusing it"
    case "$mode" in 700|711) ;; *) die "$d has mode $mode, not 700 or 711: refusing it" ;; esac
}

stop_daemons() {
    local dir=$1 pid comm
    for name in $daemons; do
        [ -f "$dir/$name.pid" ] && [ ! -L "$dir/$name.pid" ] || continue
        pid=$(head -c 20 "$dir/$name.pid" | tr -dc 0-9)
        # only a process of ours that is the daemon the file names
        comm=$(cat "/proc/$pid/comm" 2>/dev/null || true)
        if [ -n "$pid" ] && [ "$comm" = "$name" ] && [ "$(stat -c %u "/proc/$pid")" = "$(id -u)" ]; then
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -9 "$pid" 2>/dev/null || true
        fi
    done
    if [ -L "$system_conf" ] && [ "$(readlink "$system_conf")" = "$dir/slurm.conf" ]; then
        rm -f "$system_conf"
    fi
}

stop() {
    [ -n "$given" ] || die "usage: $0 stop DIR (the folder that start printed)"
    local dir
    dir=$(realpath -s "$given")
    check_private "$dir"
    stop_daemons "$dir"
    [ -f "$dir/.local-cluster" ] || die "$dir was not made by local-cluster.sh start: left as it is"
    find "$dir" -mindepth 1 -delete
    rmdir "$dir"
}

host_has_slurm() {
    [ -e "$system_conf" ] || [ -L "$system_conf" ] && { echo "$system_conf exists"; return 0; }
    [ -e /run/slurm/conf ] && { echo "a configless SLURM cache (/run/slurm/conf) exists"; return 0; }
    for name in slurmctld slurmd; do
        pgrep -x "$name" >/dev/null && { echo "a $name is running"; return 0; }
    done
    return 1
}

start() {
    for tool in munged mungekey slurmctld slurmd sinfo sbatch; do
        command -v "$tool" >/dev/null || die "$tool not found: apt-get install slurm-wlm munge"
    done
    if why=$(host_has_slurm); then
        die "this host already has a SLURM configuration ($why): use that cluster, not this one"
    fi
    if [ -n "$given" ]; then
        dir=$(realpath -s "$given")
        [ -e "$dir" ] || [ -L "$dir" ] || mkdir -m 0700 "$dir"
        check_private "$dir"
        [ -z "$(ls -A "$dir")" ] || die "$dir is not empty: give an empty folder (or none: a fresh one is made)"
    else
        dir=$(mktemp -d "${TMPDIR:-/tmp}/transferlab-slurm.XXXXXXXX")
    fi
    # munged (without --force) wants its socket's folder and every folder above it searchable
    # by all: 0711 lets others reach the socket by name, but neither list nor write the folder.
    chmod 0711 "$dir"
    started=false
    # Undo everything on any failure, whichever line fails.
    trap 'if [ "$started" != true ]; then stop_daemons "$dir"; find "$dir" -mindepth 1 -delete 2>/dev/null; [ -n "$given" ] || rmdir "$dir"; fi' EXIT
    : > "$dir/.local-cluster"
    mkdir "$dir/state" "$dir/spool" "$dir/log"
    mungekey --create --keyfile="$dir/munge.key"  # a new key every start
    chmod 0400 "$dir/munge.key"
    munged --key-file="$dir/munge.key" --socket="$dir/munge.sock" --pid-file="$dir/munged.pid" \
        --log-file="$dir/log/munged.log" --seed-file="$dir/munged.seed"

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
        for i in $(seq 0 $((gpus - 1))); do
            : > "$dir/fake-gpu$i"
            echo "NodeName=$node Name=gpu Type=$gpu_type File=$dir/fake-gpu$i"
        done > "$dir/gres.conf"
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
$([ "$gpus" -gt 0 ] && echo "PartitionName=gpu Nodes=$node MaxTime=INFINITE State=UP")
CONF
    chmod 0644 "$dir/slurm.conf"  # read by job steps (as this user)
    echo "export SLURM_CONF=$dir/slurm.conf" > "$dir/env"
    mkdir -p "$(dirname "$system_conf")"
    ln -s "$dir/slurm.conf" "$system_conf" || die "cannot link $system_conf (needs root)"  # -s without -f: never replaces
    export SLURM_CONF=$dir/slurm.conf
    slurmctld -c  # -c: a clean start, no state of an earlier cluster
    slurmd -N "$node"
    for _ in $(seq 60); do
        state=$(sinfo -h -N -o %t 2>/dev/null | head -1)
        if [ "$state" = idle ]; then
            started=true
            echo "local-cluster: node $node idle ($cpus CPUs, $mem MB$([ "$gpus" -gt 0 ] && echo ", $gpus GPUs $gpu_type")) in $dir; source $dir/env"
            return
        fi
        sleep 0.5
    done
    die "the node did not become idle in 30 s (state: ${state:-none}); see $dir/log"
}

case "$action" in
    start) start ;;
    stop) stop ;;
    *) die "usage: $0 start [DIR] | stop DIR" ;;
esac
