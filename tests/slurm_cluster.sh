#!/usr/bin/env bash
# A real single-node SLURM cluster on localhost, to try workflow/profiles/slurm (and for the tests).
#
#   sudo bash tests/slurm_cluster.sh install         # Debian/Ubuntu: apt-get install slurm-wlm munge
#   sudo bash tests/slurm_cluster.sh start  [DIR]    # write slurm.conf under DIR, start munged, slurmctld, slurmd
#   sudo bash tests/slurm_cluster.sh stop   [DIR]    # stop exactly the daemons started from DIR (PID files);
#                                                      # clients then fail at once (MessageTimeout=1)
#
# DIR defaults to /tmp/atomloc-slurm.  The node gets every core and most of the memory that
# `slurmd -C` reports, and one fake GPU (gres.conf: File=/dev/null), so that rules asking for
# --gpus=1 are scheduled; no GPU is needed to run them.  Needs root (the daemons run as root
# here, munged as the munge user).  Partition: "debug" (the default); account: "root".
set -euo pipefail

cmd=${1:-}
dir=${2:-/tmp/atomloc-slurm}
conf_dir=/etc/slurm

install() {
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q slurm-wlm munge >/dev/null
}

wait_for() {  # wait_for SECONDS COMMAND...: retry a command until it succeeds
    local limit=$1
    shift
    for _ in $(seq 1 "$((limit * 4))"); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.25
    done
    echo "slurm_cluster: timed out waiting for: $*" >&2
    return 1
}

start() {
    mkdir -p "$dir"/state "$dir"/spool "$dir"/log
    local host cpus mem
    host=$(hostname -s)
    cpus=$(slurmd -C | sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' | head -1)
    mem=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' | head -1)
    mem=$((mem * 9 / 10))
    # munge: key and runtime directory owned by the munge user
    mkdir -p /run/munge /etc/munge
    chown munge:munge /run/munge
    if [ ! -s /etc/munge/munge.key ]; then
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
    mkdir -p "$conf_dir"
    cat > "$conf_dir/slurm.conf" <<EOF
ClusterName=atomloc
SlurmctldHost=$host
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmUser=root
AuthType=auth/munge
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
ReturnToService=2
MinJobAge=600
GresTypes=gpu
NodeName=$host CPUs=$cpus RealMemory=$mem Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    cat > "$conf_dir/gres.conf" <<EOF
AutoDetect=off
NodeName=$host Name=gpu File=/dev/null
EOF
    # stale node state from an earlier run makes slurmctld keep the node down
    rm -f "$dir"/state/node_state*
    # munged runs as munge, so its PID file lives in /run/munge; $dir/munged.pid links to it
    local munge_pid
    munge_pid=/run/munge/atomloc-$(printf '%s' "$dir" | md5sum | cut -c1-12).pid
    ln -sf "$munge_pid" "$dir/munged.pid"
    runuser -u munge -- /usr/sbin/munged --pid-file="$munge_pid"
    wait_for 10 munge -n
    slurmctld
    wait_for 20 scontrol ping
    slurmd
    wait_for 30 sh -c "sinfo -h -N -o '%T' | grep -qE '^(idle|mixed|allocated)'"
    echo "slurm_cluster: up ($host, $cpus CPUs, ${mem} MB, 1 fake GPU); stop with: $0 stop $dir"
}

stop() {
    local name pid
    for name in slurmd slurmctld munged; do
        if [ -s "$dir/$name.pid" ]; then
            pid=$(cat "$dir/$name.pid")
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
            rm -f "$dir/$name.pid"
        fi
    done
    # With the controller gone, every SLURM client retries its connection for MessageTimeout (10 s by
    # default) before failing, and the SLURM executor plugin runs `scontrol show config` whenever snakemake
    # starts: every later snakemake call on this machine would wait 9 s.  Clients now fail at once; the
    # next `start` writes the full configuration again.
    if [ -f "$conf_dir/slurm.conf" ] && ! grep -q '^MessageTimeout=' "$conf_dir/slurm.conf"; then
        echo "MessageTimeout=1" >> "$conf_dir/slurm.conf"
    fi
}

case "$cmd" in
    install) install ;;
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 install | start [DIR] | stop [DIR]" >&2; exit 2 ;;
esac
