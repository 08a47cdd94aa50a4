#!/usr/bin/env bash
# Brings up a personal HTCondor pool for the htcondor executor's tests.
#
# HTCondor is not packaged in Debian 12 but is in Debian 13, so this makes a
# Debian 13 (trixie) chroot with debootstrap, installs condor in it, writes a
# personal-pool config (four simulated GPUs, fast negotiation) and starts
# condor_master inside it. The host's /proc, /dev, /tmp and each directory of
# PTB_CONDOR_SHARE are bound into the chroot at the same paths, so jobs see
# the ptb binary and the output root where the harness does. Jobs are
# submitted by a non-root user (ptbcondor, uid PTB_CONDOR_UID): HTCondor does
# not run root's jobs.
#
# The harness calls the pool through wrappers in $PTB_CONDOR_ROOT/ptb-bin
# (condor_submit, condor_q, condor_history, condor_rm, condor_vacate_job,
# condor_status, ...), each running the real command in the chroot as
# ptbcondor, in the caller's working directory when the chroot has it.
#
# Idempotent: the chroot is made once (to start over, stop the pool, then
# `umount -R` what is bound under $PTB_CONDOR_ROOT before deleting it: it
# holds the host's /tmp and /work), mounts are bound once, and a running
# pool is left alone. Measured on a 2-core machine: about 11 minutes cold
# (debootstrap and apt), 20 s to restart the pool, 6 s when it is up.
# Jobs cannot make user namespaces in a chroot, so ptb runs in them with
# --sandbox none. It ends by printing the variables the tests read:
#
#	eval "$(scripts/ci/condor-up.sh)"
#	go test ./internal/campaign/htcondor/
set -euo pipefail
# Only the export lines go to stdout; everything else to stderr.
exec 3>&1 1>&2
start=$(date +%s)
root=${PTB_CONDOR_ROOT:-/opt/ptb-condor}
share=${PTB_CONDOR_SHARE:-/tmp /work}
uid=${PTB_CONDOR_UID:-4242}
user=ptbcondor
# The Debian mirror: PTB_CONDOR_MIRROR, else the one this machine's apt uses.
apt_mirror() {
	{
		sed -n 's/^URIs: *\([^ ]*\).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null || true
		sed -n 's/^deb \(\[[^]]*\] \)\{0,1\}\([^ ]*\).*/\2/p' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true
	} | { grep -v -- '-security' || true; } | sed -n 1p
}
mirror=${PTB_CONDOR_MIRROR:-$(apt_mirror)}
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
log() { echo "condor-up: $* ($(($(date +%s) - start))s)" >&2; }

if [ ! -x "$root/usr/sbin/condor_master" ]; then
	if [ -z "$mirror" ]; then
		echo "condor-up: no Debian mirror in /etc/apt; set PTB_CONDOR_MIRROR" >&2
		exit 1
	fi
	if ! command -v debootstrap >/dev/null; then
		$SUDO apt-get update -qq
		DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
	fi
	if [ ! -x "$root/usr/bin/apt-get" ]; then
		# Into a fresh folder, moved in place when complete: $root itself may
		# hold bind mounts of the host (/tmp, /work) and is never deleted.
		if [ -e "$root" ]; then
			echo "condor-up: $root exists but is no Debian chroot; move it aside (unmount what is bound in it first)" >&2
			exit 1
		fi
		log "debootstrap trixie into $root"
		$SUDO rm -rf "$root.partial"
		$SUDO debootstrap --variant=minbase trixie "$root.partial" "$mirror" >"${TMPDIR:-/tmp}/condor-debootstrap.log" 2>&1 ||
			{ tail -20 "${TMPDIR:-/tmp}/condor-debootstrap.log" >&2; exit 1; }
		$SUDO mv "$root.partial" "$root"
	fi
	# No service may start inside the chroot while packages install.
	printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$root/usr/sbin/policy-rc.d" >/dev/null
	$SUDO chmod 755 "$root/usr/sbin/policy-rc.d"
	$SUDO cp /etc/resolv.conf "$root/etc/resolv.conf"
	log "apt-get install condor in the chroot"
	$SUDO chroot "$root" /usr/bin/env DEBIAN_FRONTEND=noninteractive sh -c \
		'apt-get update -qq && apt-get install -y -qq --no-install-recommends condor procps >/dev/null'
fi

# The job user, known inside the chroot (the host needs no such user: files
# it writes carry its uid).
if ! $SUDO chroot "$root" getent passwd "$user" >/dev/null; then
	$SUDO chroot "$root" groupadd -g "$uid" "$user"
	$SUDO chroot "$root" useradd -u "$uid" -g "$uid" -m -s /bin/bash "$user"
fi
$SUDO cp /etc/hosts "$root/etc/hosts"
echo "$(hostname)" | $SUDO tee "$root/etc/hostname" >/dev/null

$SUDO tee "$root/etc/condor/config.d/50-ptb.conf" >/dev/null <<'EOF'
# Written by ptb's scripts/ci/condor-up.sh: a personal pool for tests.
use ROLE : Personal
CONDOR_HOST = 127.0.0.1
NETWORK_INTERFACE = 127.0.0.1
# Nested namespaces and scratch mounts do not work in this chroot.
USE_PID_NAMESPACES = False
MOUNT_UNDER_SCRATCH =
BASE_CGROUP =
# Four fake GPUs, one partitionable slot with room for many small jobs.
use FEATURE : GPUs
GPU_DISCOVERY_EXTRA = -simulate:1,4
use FEATURE : PartitionableSlot
NUM_CPUS = 16
MEMORY = 16384
# Run jobs at once, keep them running, and notice changes within seconds.
START = True
SUSPEND = False
PREEMPT = False
KILL = False
WANT_VACATE = False
NEGOTIATOR_INTERVAL = 2
NEGOTIATOR_MIN_INTERVAL = 1
NEGOTIATOR_CYCLE_DELAY = 1
SCHEDD_INTERVAL = 5
SCHEDD_MIN_INTERVAL = 1
UPDATE_INTERVAL = 5
STARTER_UPDATE_INTERVAL = 5
SHADOW_QUEUE_UPDATE_INTERVAL = 5
JOB_START_DELAY = 0
JOB_START_COUNT = 50
SCHEDD_LATE_MATERIALIZE = True
SCHEDD_MATERIALIZE_INTERVAL = 1
CLAIM_WORKLIFE = 0
ALLOW_WRITE = $(ALLOW_WRITE), 127.0.0.1, $(FULL_HOSTNAME)
EOF

# Bind the host's /proc, /dev and the shared directories at the same paths.
bindmount() { # SRC
	local dst=$root$1
	$SUDO mkdir -p "$dst"
	if ! mountpoint -q "$dst"; then
		$SUDO mount --rbind "$1" "$dst"
		# Unmounting in the chroot must never unmount the host's.
		$SUDO mount --make-rslave "$dst"
	fi
}
mountpoint -q "$root/proc" || $SUDO mount -t proc proc "$root/proc"
bindmount /dev
for d in $share; do
	[ -d "$d" ] || $SUDO mkdir -p "$d"
	bindmount "$d"
done
# Made inside the chroot: some are links there (/var/lock -> /run/lock).
$SUDO chroot "$root" sh -c 'for d in /run/condor /run/lock/condor /var/log/condor /var/lib/condor/spool /var/lib/condor/execute; do
	mkdir -p "$d" && chown condor:condor "$d"
done' 

# The wrappers: each runs the real command in the chroot as the job user.
wrap=$root/ptb-bin
$SUDO mkdir -p "$wrap"
for c in condor_submit condor_q condor_history condor_rm condor_vacate_job condor_status \
	condor_hold condor_release condor_wait condor_tail condor_ssh_to_job; do
	$SUDO tee "$wrap/$c" >/dev/null <<EOF
#!/bin/sh
# Written by ptb's scripts/ci/condor-up.sh: runs $c in the HTCondor chroot
# $root as $user, in the caller's directory when the chroot shares it.
d=\$PWD; [ -d "$root\$d" ] || d=/
exec chroot --userspec=$uid:$uid "$root" /usr/bin/env HOME=/home/$user USER=$user LOGNAME=$user \\
	/bin/sh -c 'cd "\$1" && shift && exec "\$@"' sh "\$d" /usr/bin/$c "\$@"
EOF
	$SUDO chmod 755 "$wrap/$c"
done

if ! "$wrap/condor_status" -af Name >/dev/null 2>&1; then
	log "starting condor_master"
	# 3>&-: fd 3 is this script's stdout (the caller's $(...)); a daemon
	# holding it would keep the caller waiting forever.
	$SUDO chroot "$root" /usr/sbin/condor_master 3>&- </dev/null
fi
for _ in $(seq 1 120); do
	if [ -n "$("$wrap/condor_status" -af Name 2>/dev/null)" ] && "$wrap/condor_q" -totals >/dev/null 2>&1; then
		break
	fi
	sleep 1
done
if [ -z "$("$wrap/condor_status" -af Name 2>/dev/null)" ]; then
	echo "condor-up: the pool shows no slot after 120s; see $root/var/log/condor/" >&2
	exit 1
fi
log "pool up: $("$wrap/condor_status" -af Name TotalGPUs | tr '\n' ' ')"
echo "export PTB_CONDOR_ROOT=$root PTB_CONDOR_BIN=$wrap PTB_CONDOR_UID=$uid" >&3
