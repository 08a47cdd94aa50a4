#!/usr/bin/env bash
# Brings up a one-node Slurm cluster on this machine for the campaign
# executor's tests: Debian's slurm-wlm and munge, munged, slurmctld and
# slurmd started by hand (no systemd), four fake GPUs (gres) backed by
# mknod'ed character devices, MaxArraySize=5 so that array chunking is
# exercised. Idempotent: a second run with the daemons up only checks them.
# Needs root. Prints the environment the tests read, e.g.
#
#	eval "$(scripts/ci/slurm-up.sh)"     # exports PTB_SLURM=1
#
# Everything else it prints goes to stderr. Files: /etc/slurm/slurm.conf,
# /etc/slurm/gres.conf, state and logs under $PTB_SLURM_STATE
# (default /var/lib/ptb-slurm).
set -euo pipefail
start=$(date +%s)
log() { echo "slurm-up: $*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
	log "must run as root (it installs packages and starts slurmctld, slurmd and munged)"
	exit 1
fi
state=${PTB_SLURM_STATE:-/var/lib/ptb-slurm}
node=$(hostname -s)

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
	export DEBIAN_FRONTEND=noninteractive
	# Another apt may hold the lock (CI installs other engines too): wait for it.
	apt() {
		for i in $(seq 60); do
			apt-get -o DPkg::Lock::Timeout=120 "$@" >&2 && return 0
			log "apt-get $1 failed (lock held?); retrying in 5s"
			sleep 5
		done
		return 1
	}
	apt update -qq
	apt install -y -qq --no-install-recommends slurm-wlm munge
	log "packages installed in $(($(date +%s) - start))s"
fi

mkdir -p "$state"/{ctld,slurmd,log,dev} /etc/slurm /run/munge /var/log/munge /var/lib/munge
# Fake GPUs: gres needs a device file per GPU; slurmd only stats them and
# sets CUDA_VISIBLE_DEVICES to the indices it allocates.
for i in 0 1 2 3; do
	[ -c "$state/dev/gpu$i" ] || mknod "$state/dev/gpu$i" c 195 "$i"
done

conf=$(
	cat <<EOF
# Written by scripts/ci/slurm-up.sh: a one-node test cluster.
ClusterName=ptb
SlurmctldHost=$node
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/slurmd
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$state/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=2
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$state/log/jobcomp.txt
ReturnToService=2
MaxArraySize=5
MinJobAge=300
KillWait=30
# The node claims more CPUs and memory than this machine has so that about
# eight small jobs run at once.
SlurmdParameters=config_overrides
GresTypes=gpu
NodeName=$node CPUs=16 RealMemory=16000 Gres=gpu:4 State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
)
gres="NodeName=$node Name=gpu File=$state/dev/gpu[0-3]"

changed=0
if [ "$(cat /etc/slurm/slurm.conf 2>/dev/null)" != "$conf" ]; then
	printf '%s\n' "$conf" >/etc/slurm/slurm.conf
	changed=1
fi
if [ "$(cat /etc/slurm/gres.conf 2>/dev/null)" != "$gres" ]; then
	printf '%s\n' "$gres" >/etc/slurm/gres.conf
	changed=1
fi

running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# munge: Debian's package creates the key; make one if it is missing.
if [ ! -s /etc/munge/munge.key ]; then
	if command -v mungekey >/dev/null; then mungekey --create >&2; else create-munge-key -f >&2; fi
fi
chown -R munge:munge /etc/munge /run/munge /var/log/munge /var/lib/munge
chmod 0700 /etc/munge
chmod 0400 /etc/munge/munge.key
if ! running /run/munge/munged.pid; then
	runuser -u munge -- /usr/sbin/munged >&2
	log "munged started"
fi
for i in $(seq 50); do munge -n </dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done

if [ $changed = 1 ]; then
	# A new configuration: restart whatever runs with the old one.
	for p in slurmd slurmctld; do
		if running "$state/$p.pid"; then kill "$(cat "$state/$p.pid")"; fi
	done
	for i in $(seq 100); do
		running "$state/slurmctld.pid" || running "$state/slurmd.pid" || break
		sleep 0.1
	done
fi
if ! running "$state/slurmctld.pid"; then
	slurmctld >&2
	log "slurmctld started"
fi
for i in $(seq 100); do scontrol ping >/dev/null 2>&1 && break; sleep 0.2; done
if ! running "$state/slurmd.pid"; then
	slurmd >&2
	log "slurmd started"
fi

ok=0
for i in $(seq 150); do
	st=$(sinfo -h -n "$node" -o %T 2>/dev/null || true)
	case $st in
	idle* | mixed* | allocated*) ok=1; break ;;
	down* | drain*) scontrol update nodename="$node" state=resume >/dev/null 2>&1 || true ;;
	esac
	sleep 0.2
done
if [ $ok != 1 ]; then
	log "node $node is not idle (sinfo says '${st:-nothing}'); see $state/log/slurmctld.log and $state/log/slurmd.log"
	exit 1
fi
log "node $node is $st; up in $(($(date +%s) - start))s"
echo "export PTB_SLURM=1"
