#!/usr/bin/env bash
# A throw-away single-node SLURM cluster on this machine, for tests/test_slurm.py and
# `make test-slurm`. Root only; Debian/Ubuntu (apt-get); no systemd needed (daemons are
# started directly).
#
#   tools/slurm-cluster.sh up       install slurm-wlm, slurmdbd, munge, mariadb-server when
#                                   missing; write the configs; start munged, mariadbd,
#                                   slurmdbd, slurmctld, slurmd; wait for the node to be idle
#   tools/slurm-cluster.sh status   which daemons run, sinfo (exit 1 when not up)
#   tools/slurm-cluster.sh down     stop the daemons it started, delete its state and configs
#
# One node (this machine's short host name) sized from `nproc` and the memory, with
# $GPUS fake GPUs (GRES on /dev/null-like device files: the profile's `gpu:` requests
# can be scheduled; nothing runs on a GPU). Partitions `cpu` (default) and `gpu` hold the same node, so
# profiles/slurm's names resolve. Accounting: slurmdbd on a private MariaDB (port
# $DB_PORT on 127.0.0.1, its own data folder), so `sacct` (the executor plugin's default
# status query) and MaxRSS/Elapsed work; cluster `bt3d`, account `bt3d` with user root.
#
# Everything lives in $STATE (default /var/lib/bt3d-slurm) except /etc/slurm/slurm.conf,
# gres.conf and slurmdbd.conf (where the SLURM commands look); `up` refuses to overwrite
# configs it did not write. Idempotent: `up` on a running cluster and `down` on a stopped
# one only say so. A daemon that does not start stops `up` with the end of its log.
set -euo pipefail

STATE=${BT3D_SLURM_STATE:-/var/lib/bt3d-slurm}
ETC=/etc/slurm
MARK="# written by bt3d tools/slurm-cluster.sh"
CLUSTER=bt3d
DB_PORT=${BT3D_SLURM_DB_PORT:-3307}
GPUS=${BT3D_SLURM_GPUS:-2}
NODE=$(hostname -s)
PACKAGES=(slurm-wlm slurmdbd munge mariadb-server)

die() {
	echo "slurm-cluster: $*" >&2
	exit 1
}

# Show the last lines of a daemon's log and stop.
fail_with_log() {
	local what=$1 log=$2
	echo "slurm-cluster: $what did not start; last lines of $log:" >&2
	tail -n 30 "$log" >&2 2>/dev/null || echo "  (no log written)" >&2
	exit 1
}

pid_alive() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

# wait_for SECONDS COMMAND...: retry COMMAND every 0.5 s until it succeeds.
wait_for() {
	local deadline=$((SECONDS + $1))
	shift
	until "$@" >/dev/null 2>&1; do
		((SECONDS < deadline)) || return 1
		sleep 0.5
	done
}

install_packages() {
	local missing=()
	for tool in slurmctld slurmd slurmdbd sbatch sacct munged mariadbd mariadb-install-db; do
		command -v "$tool" >/dev/null || missing+=("$tool")
	done
	((${#missing[@]} == 0)) && return 0
	echo "slurm-cluster: installing ${PACKAGES[*]} (missing: ${missing[*]})"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		"${PACKAGES[@]}" >"$STATE/apt.log" 2>&1 || {
		tail -n 20 "$STATE/apt.log" >&2
		die "apt-get install ${PACKAGES[*]} failed (log: $STATE/apt.log)"
	}
}

# Refuse to overwrite a config that a real installation wrote.
check_foreign_configs() {
	for f in slurm.conf slurmdbd.conf gres.conf; do
		if [[ -f $ETC/$f ]] && ! grep -qF "$MARK" "$ETC/$f"; then
			die "$ETC/$f exists and was not written by this script; not touching a real SLURM set-up"
		fi
	done
}

write_configs() {
	local cpus mem_mb
	cpus=$(nproc)
	# Leave 1 GiB to the system; slurmd refuses a node configured with more than it has.
	mem_mb=$(($(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo) - 1024))
	mkdir -p "$ETC" "$STATE"/{log,run,spool/ctld,spool/d}
	cat >"$ETC/slurm.conf" <<EOF
$MARK: a throw-away single-node cluster
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/spool/ctld
SlurmdSpoolDir=$STATE/spool/d
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
GresTypes=gpu
ReturnToService=2
MinJobAge=300
EnforcePartLimits=ALL
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=5
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStorageTRES=gres/gpu
AccountingStoreFlags=job_comment
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb Gres=gpu:$GPUS State=UNKNOWN
PartitionName=cpu Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$NODE MaxTime=INFINITE State=UP
EOF
	# Fake GPUs: slurmd counts a GPU per device file, so give it character devices with
	# /dev/null's numbers (reads give nothing, writes vanish); nothing runs on them.
	mkdir -p "$STATE/dev"
	for ((i = 0; i < GPUS; i++)); do
		[[ -c $STATE/dev/gpu$i ]] || mknod "$STATE/dev/gpu$i" c 1 3
	done
	cat >"$ETC/gres.conf" <<EOF
$MARK: fake GPUs (/dev/null-like device files)
NodeName=$NODE Name=gpu File=$STATE/dev/gpu[0-$((GPUS - 1))]
EOF
	[[ -f $STATE/db.password ]] || (umask 077 && head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$STATE/db.password")
	(
		umask 077
		cat >"$ETC/slurmdbd.conf" <<EOF
$MARK: accounting on the private MariaDB in $STATE/mysql
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=root
PidFile=$STATE/run/slurmdbd.pid
LogFile=$STATE/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$(cat "$STATE/db.password")
StorageLoc=slurm_acct_db
EOF
	)
}

start_munge() {
	if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
		return 0 # a munged is already running (ours or the machine's)
	fi
	[[ -s /etc/munge/munge.key ]] || mungekey --create --keyfile /etc/munge/munge.key
	chown munge:munge /etc/munge/munge.key && chmod 600 /etc/munge/munge.key
	install -d -o munge -g munge -m 0755 /run/munge
	install -d -o munge -g munge -m 0700 /var/log/munge /var/lib/munge
	runuser -u munge -- /usr/sbin/munged 2>>"$STATE/log/munged.log" ||
		fail_with_log munged /var/log/munge/munged.log
	wait_for 10 bash -c 'munge -n | unmunge' || fail_with_log munged /var/log/munge/munged.log
	cp /run/munge/munged.pid "$STATE/run/munged.pid"
}

# shellcheck disable=SC2120 # (called with -e inside wait_for)
db() { mariadb --protocol=tcp -h 127.0.0.1 -P "$DB_PORT" -u root "$@"; }

start_mariadb() {
	local data=$STATE/mysql log=$STATE/log/mariadb.log
	pid_alive "$STATE/run/mariadb.pid" && return 0
	if [[ ! -d $data/mysql ]]; then
		mkdir -p "$data" && chown mysql:mysql "$data" "$STATE/log"
		mariadb-install-db --no-defaults --user=mysql --datadir="$data" \
			--auth-root-authentication-method=normal --skip-test-db >"$STATE/log/mariadb-install.log" 2>&1 ||
			fail_with_log mariadb-install-db "$STATE/log/mariadb-install.log"
	fi
	chown mysql:mysql "$STATE/run"
	setsid mariadbd --no-defaults --user=mysql --datadir="$data" --bind-address=127.0.0.1 \
		--port="$DB_PORT" --socket="$STATE/run/mariadb.sock" --pid-file="$STATE/run/mariadb.pid" \
		--log-error="$log" --innodb-buffer-pool-size=64M </dev/null >/dev/null 2>&1 &
	wait_for 60 db -e 'select 1' || fail_with_log mariadbd "$log"
	local password
	password=$(cat "$STATE/db.password")
	# shellcheck disable=SC2119
	db <<EOF
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$password';
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$password';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
EOF
}

# start_slurm_daemon NAME CHECK...: start NAME (it daemonises) unless its pid file is alive.
start_slurm_daemon() {
	local name=$1
	shift
	pid_alive "$STATE/run/$name.pid" && return 0
	"/usr/sbin/$name" >>"$STATE/log/$name.log" 2>&1 || fail_with_log "$name" "$STATE/log/$name.log"
	wait_for 60 "$@" || fail_with_log "$name" "$STATE/log/$name.log"
}

register_accounts() {
	sacctmgr -i -Q add cluster "$CLUSTER" >/dev/null 2>&1 || true
	sacctmgr -i -Q add account bt3d Cluster="$CLUSTER" Description=bt3d Organization=bt3d >/dev/null 2>&1 || true
	sacctmgr -i -Q add user root Account=bt3d Cluster="$CLUSTER" >/dev/null 2>&1 || true
	sacctmgr -n -P show assoc where user=root account=bt3d format=account | grep -q bt3d ||
		die "sacctmgr could not register user root in account bt3d (see $STATE/log/slurmdbd.log)"
}

node_idle() { sinfo -h -n "$NODE" -o %T | grep -qE '^(idle|mixed|allocated)'; }

up() {
	[[ $(id -u) == 0 ]] || die "run as root (it installs packages and starts daemons)"
	mkdir -p "$STATE"
	install_packages
	check_foreign_configs
	write_configs
	start_munge
	start_mariadb
	start_slurm_daemon slurmdbd sacctmgr -n show cluster
	register_accounts
	start_slurm_daemon slurmctld scontrol ping
	start_slurm_daemon slurmd pid_alive "$STATE/run/slurmd.pid"
	if ! wait_for 30 node_idle; then
		scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true
		wait_for 30 node_idle ||
			fail_with_log "node $NODE ($(sinfo -h -n "$NODE" -o '%T: %E'))" "$STATE/log/slurmd.log"
	fi
	echo "slurm-cluster: up: node $NODE ($(nproc) CPUs, $GPUS fake GPUs), partitions cpu and gpu, accounting via slurmdbd"
}

stop_pidfile() {
	local name=$1 file=$2
	pid_alive "$file" || return 0
	local pid
	pid=$(cat "$file")
	kill "$pid" 2>/dev/null || true
	for _ in $(seq 60); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.5
	done
	echo "slurm-cluster: $name (pid $pid) did not stop in 30 s; killing it" >&2
	kill -9 "$pid" 2>/dev/null || true
}

down() {
	[[ $(id -u) == 0 ]] || die "run as root"
	if [[ ! -d $STATE ]]; then
		echo "slurm-cluster: already down"
		return 0
	fi
	if pid_alive "$STATE/run/slurmctld.pid"; then
		scancel --full --quiet --user=root >/dev/null 2>&1 || true
	fi
	stop_pidfile slurmd "$STATE/run/slurmd.pid"
	stop_pidfile slurmctld "$STATE/run/slurmctld.pid"
	stop_pidfile slurmdbd "$STATE/run/slurmdbd.pid"
	stop_pidfile mariadbd "$STATE/run/mariadb.pid"
	stop_pidfile munged "$STATE/run/munged.pid" # only when this script started it
	for f in slurm.conf slurmdbd.conf gres.conf; do
		if [[ -f $ETC/$f ]] && grep -qF "$MARK" "$ETC/$f"; then rm -f "$ETC/$f"; fi
	done
	rm -rf "$STATE"
	echo "slurm-cluster: down"
}

status() {
	local ok=0
	for name in munged mariadb slurmdbd slurmctld slurmd; do
		if pid_alive "$STATE/run/$name.pid"; then
			echo "$name: running (pid $(cat "$STATE/run/$name.pid"))"
		elif [[ $name == munged ]] && munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
			echo "munged: running (not started by this script)"
		else
			echo "$name: not running"
			ok=1
		fi
	done
	if ((ok == 0)); then sinfo; fi
	return $ok
}

case ${1:-} in
up) up ;;
down) down ;;
status) status ;;
*) die "usage: $0 up|down|status" ;;
esac
