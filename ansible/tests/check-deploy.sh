#!/usr/bin/env bash
# check-deploy: lint the Ansible tree and the monitoring files, check the systemd unit, apply
# the pipelined and producer roles for real to a throwaway Debian root (debootstrap, cached)
# through the chroot connection, twice: the second run must report changed=0. Then, live, boot
# that root with systemd-nspawn (private network) and apply the role with the service managed.
# ansible/README.md describes each stage.
#
#   ansible/tests/check-deploy.sh              (from anywhere; needs root)
#
# Environment:
#   CHECK_DEPLOY_LIVE      auto (default: live stage when libchdb.so is cached), 1 (required), 0 (skip)
#   CHDB_LIB_PATH          libchdb.so for the live stage (default: newest under $PIPELINED_CACHE/chdb)
#   PIPELINED_CACHE        cache directory (default $HOME/.cache/pipelined): the Debian root tarball
#   PIPELINED_DEPLOY_BINARY  a prebuilt pipelined binary to deploy ("copy" mode); default: the role
#                          builds the repo with go build ("build" mode)
#   SECURITY_THRESHOLD     highest accepted `systemd-analyze security` exposure (default 2.0)
#   KEEP_ROOT=1            keep the Debian root after the run (its path is printed)
set -euo pipefail

# The body is one block, read whole before it runs: editing this file during a run is safe.
{
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ansible_dir=$(dirname "$here")
repo=$(dirname "$ansible_dir")
unit=$repo/systemd/pipelined.service
cache=${PIPELINED_CACHE:-${HOME:-/root}/.cache/pipelined}
threshold=${SECURITY_THRESHOLD:-2.0}
suite=bookworm
start=$SECONDS

# A command that fails outside an explicit check still says where.
trap 'printf "\ncheck-deploy: FAIL: line %s: %s (exit %s)\n" "$LINENO" "$BASH_COMMAND" "$?" >&2' ERR
step() { printf '\n== %s (%ds)\n' "$*" "$((SECONDS - start))"; }
fail() { printf '\ncheck-deploy: FAIL: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || fail "run as root (apt-get, debootstrap and chroot need it)"

# --- tools -----------------------------------------------------------------------------------
step "tools: ansible, ansible-lint, debootstrap, systemd-analyze, systemd-nspawn, zstd"
need=()
for pkg in ansible ansible-lint debootstrap systemd systemd-container zstd; do
	dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
	echo "installing: ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q >/dev/null || fail "apt-get update"
	apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null || fail "apt-get install ${need[*]}"
fi
# Whole outputs first: `| head -1` under pipefail would fail on the writer's SIGPIPE.
for tool in ansible ansible-lint systemd-analyze; do
	v=$("$tool" --version 2>/dev/null) || fail "$tool --version"
	printf '%s\n' "${v%%$'\n'*}" | sed 's/\x1b\[[0-9;]*m//g'
done
# community.general (chroot connection) must come from Debian's ansible, not Galaxy.
ansible-doc -t connection community.general.chroot >/dev/null 2>&1 ||
	fail "community.general.chroot connection plugin not found (Debian's ansible package ships it)"

# --- lint and syntax ---------------------------------------------------------------------------
step "ansible-lint"
# Every file of the tree (playbooks, roles, inventories, group_vars, monitoring YAML), with the
# strictest profile.
lint_out=$(cd "$ansible_dir" && ansible-lint --offline --profile=production --nocolor 2>&1) || {
	printf '%s\n' "$lint_out"
	fail "ansible-lint reported problems"
}
tail -1 <<<"$lint_out"

step "ansible-playbook --syntax-check"
(cd "$ansible_dir" && ansible-playbook --syntax-check -i inventory/hosts.yml site.yml) || fail "syntax-check of site.yml"
(cd "$ansible_dir" && ansible-playbook --syntax-check -i localhost, tests/chroot.yml) || fail "syntax-check of tests/chroot.yml"

step "README: every role variable documented"
undoc=""
for f in "$ansible_dir"/roles/*/defaults/main.yml; do
	for v in $(grep -oE '^[a-z][a-z0-9_]*:' "$f" | tr -d :); do
		grep -qF "| \`$v\` |" "$ansible_dir/README.md" || undoc="$undoc $v"
	done
done
[ -z "$undoc" ] || fail "variables missing from ansible/README.md's tables:$undoc"
echo "all $(cat "$ansible_dir"/roles/*/defaults/main.yml | grep -cE '^[a-z][a-z0-9_]*:') variables are in ansible/README.md"

step "inventory: hosts.yml has every group site.yml targets"
groups=$(cd "$ansible_dir" && ansible-inventory -i inventory/hosts.yml --list)
for g in pulsar clickhouse pipelined producer; do
	python3 -c 'import json,sys; d=json.load(sys.stdin); g=sys.argv[1]; sys.exit(0 if d.get(g,{}).get("hosts") else 1)' "$g" <<<"$groups" ||
		fail "inventory/hosts.yml: group $g has no hosts"
done
echo "groups pulsar, clickhouse, pipelined, producer: present"
# The EC2 inventory needs AWS to run; offline, check its shape: the plugin, and groups from the role tag.
python3 - "$ansible_dir/inventory/aws_ec2.yml" <<'PY' || fail "inventory/aws_ec2.yml"
import sys, yaml
c = yaml.safe_load(open(sys.argv[1]))
assert c["plugin"] == "amazon.aws.aws_ec2", c["plugin"]
kg = [g for g in c.get("keyed_groups", []) if g.get("key") == "tags.role"]
assert kg and kg[0].get("prefix", None) == "" and kg[0].get("separator", None) == "", "keyed_groups: tags.role without prefix"
print("inventory/aws_ec2.yml: amazon.aws.aws_ec2, grouped by tag role")
PY
ansible-doc -t inventory amazon.aws.aws_ec2 >/dev/null 2>&1 || fail "amazon.aws.aws_ec2 inventory plugin not found"

# --- monitoring ---------------------------------------------------------------------------------
step "monitoring: scrape config, dashboard queries, metric names"
# promtool from Debian's prometheus package, unpacked into the cache (no service installed).
promtool=$cache/promtool/usr/bin/promtool
if [ ! -x "$promtool" ]; then
	mkdir -p "$cache/promtool"
	(cd "$cache/promtool" && apt-get download -q prometheus >/dev/null && dpkg-deb -x prometheus_*.deb . && rm -f prometheus_*.deb) ||
		fail "fetching promtool (Debian package prometheus)"
fi
"$promtool" check config --syntax-only "$ansible_dir/monitoring/prometheus-scrape.yml" || fail "promtool: monitoring/prometheus-scrape.yml"
mon=$(mktemp -d /tmp/check-deploy-mon.XXXXXX)
# Every dashboard query as a recording rule, so promtool parses the PromQL.
python3 - "$ansible_dir/monitoring/grafana-dashboard.json" "$mon/rules.yml" "$mon/metrics.txt" <<'PY' || fail "grafana-dashboard.json"
import json, re, sys
d = json.load(open(sys.argv[1]))
exprs = [t["expr"] for p in d["panels"] for t in p.get("targets", [])]
assert len(exprs) >= 10, f"only {len(exprs)} queries"
with open(sys.argv[2], "w") as f:
    f.write("groups:\n  - name: dashboard\n    rules:\n")
    for i, e in enumerate(exprs):
        e = e.replace("$job", "pipelined").replace("$instance", ".*")
        f.write(f"      - record: dashboard:q{i}\n        expr: {json.dumps(e)}\n")
names = sorted({re.sub(r"_(bucket|sum|count)$", "", m) for e in exprs for m in re.findall(r"\b(?:pipelined|process|go)_[a-z_]+", e)})
open(sys.argv[3], "w").write("\n".join(names) + "\n")
# The signals the reference watched: records in, backpressure, flush duration, lag, CPU, memory.
for want in ["pipelined_messages_received_total", "pipelined_backpressure_seconds_total",
             "pipelined_flush_duration_seconds", "pipelined_backlog_lag_seconds",
             "process_cpu_seconds_total", "process_resident_memory_bytes"]:
    assert want in names, f"dashboard lacks {want}"
print(f"{len(exprs)} queries over {len(names)} metrics")
PY
"$promtool" check rules "$mon/rules.yml" >/dev/null || { "$promtool" check rules "$mon/rules.yml"; fail "promtool: a dashboard query does not parse"; }
echo "promtool: every dashboard query parses"
# The daemon's metric names are literals in its Go source (STYLE.md habit 7): each name the
# dashboard uses must be one of them.
missing=""
while read -r m; do
	case $m in process_* | go_*) continue ;; esac
	grep -rqE "[\`\"]$m[\`\"{]" --include='*.go' "$repo/pipeline" "$repo/internal" "$repo"/*.go 2>/dev/null || missing="$missing $m"
done <"$mon/metrics.txt"
rm -rf "$mon"
[ -z "$missing" ] || fail "dashboard uses metrics the daemon does not define:$missing"
echo "dashboard metric names: all defined by the daemon"

# --- systemd unit, offline --------------------------------------------------------------------
step "systemd-analyze security --offline (threshold $threshold)"
# --threshold counts in tenths: exposure 2.0 is 20.
tenths=$(awk -v t="$threshold" 'BEGIN { printf "%d", t * 10 + 0.5 }')
sec_out=$(cd "$(dirname "$unit")" && systemd-analyze security --offline=true --threshold="$tenths" "$(basename "$unit")" 2>&1) && sec_rc=0 || sec_rc=$?
grep -E '✗' <<<"$sec_out" || true
overall=$(grep -E 'Overall exposure level' <<<"$sec_out") || fail "systemd-analyze security printed no overall level:
$sec_out"
echo "$overall"
[ "$sec_rc" -eq 0 ] || fail "systemd-analyze security: exposure above $threshold (exit $sec_rc)"
level=$(sed -E 's/.*: ([0-9.]+) .*/\1/' <<<"$overall")
awk -v l="$level" -v t="$threshold" 'BEGIN { exit !(l <= t) }' || fail "exposure $level > $threshold"

# --- binary -----------------------------------------------------------------------------------
work=$(mktemp -d /tmp/check-deploy.XXXXXX)
root=$work/root
nspawn_pid=""
cleanup() {
	local rc=$?
	if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
		kill -TERM "$nspawn_pid" 2>/dev/null || true
		for _ in $(seq 50); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.2; done
		kill -KILL "$nspawn_pid" 2>/dev/null || true
		wait "$nspawn_pid" 2>/dev/null || true
	fi
	for m in proc sys dev/pts dev; do
		mountpoint -q "$root/$m" 2>/dev/null && umount -l "$root/$m" || true
	done
	if [ "${KEEP_ROOT:-0}" = 1 ]; then
		echo "kept: $work"
	else
		rm -rf --one-file-system "$work"
	fi
	exit "$rc"
}
trap cleanup EXIT

extra=(-e "pipelined_build_output=$work/pipelined")
if [ -n "${PIPELINED_DEPLOY_BINARY:-}" ]; then
	[ -x "$PIPELINED_DEPLOY_BINARY" ] || fail "PIPELINED_DEPLOY_BINARY=$PIPELINED_DEPLOY_BINARY is not an executable"
	bin=$(realpath "$PIPELINED_DEPLOY_BINARY")
	extra=(-e pipelined_binary_mode=copy -e "pipelined_binary_src=$bin" -e producer_binary_mode=copy -e "producer_binary_src=$bin")
	echo "deploying the prebuilt $PIPELINED_DEPLOY_BINARY"
else
	export PATH=/usr/local/go/bin:$PATH
	command -v go >/dev/null || fail "go not found (needed to build pipelined; or set PIPELINED_DEPLOY_BINARY)"
	# The role builds from a snapshot of the work tree (tracked and untracked files, no .git):
	# both runs see the same source, whatever else changes in the tree meanwhile, and the
	# build stamps no VCS state, so equal source gives equal bytes.
	mkdir -p "$work/src"
	(cd "$repo" && git ls-files -z -co --exclude-standard | xargs -0 cp --parents -t "$work/src" 2>/dev/null) ||
		(cd "$repo" && tar --exclude=.git --exclude=./pipelined -cf - . | tar -C "$work/src" -xf -) ||
		fail "copying the source to $work/src"
	extra+=(-e "pipelined_source_dir=$work/src" -e "producer_source_dir=$work/src" -e "producer_binary_src=$work/pipelined")
	echo "the role builds $repo (snapshot in $work/src) with go build"
fi

# --- Debian root ------------------------------------------------------------------------------
step "Debian $suite root (cache: $cache)"
tarball=$cache/debian-$suite-minbase-python3-systemd.tar.zst
mkdir -p "$cache" "$root"
if [ ! -s "$tarball" ]; then
	# The mirror apt already uses here (deb822 or one-line sources), else Debian's default.
	mirror=$(grep -hoE '^URIs: *http[^ ]*/debian/?$' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1 | sed 's/^URIs: *//') || true
	[ -n "$mirror" ] || mirror=$(grep -hoE '^deb +http[^ ]*/debian/? ' /etc/apt/sources.list 2>/dev/null | head -1 | awk '{print $2}') || true
	mirror=${mirror:-http://deb.debian.org/debian}
	echo "debootstrap from $mirror (once; cached afterwards)"
	boot=$work/boot
	debootstrap --variant=minbase --include=python3,systemd "$suite" "$boot" "$mirror" >"$work/debootstrap.log" 2>&1 ||
		{ tail -20 "$work/debootstrap.log" >&2; fail "debootstrap $suite from $mirror"; }
	for m in proc sys; do mountpoint -q "$boot/$m" && umount -l "$boot/$m"; done
	tar -C "$boot" --one-file-system -cf - . | zstd -q -T0 -o "$tarball.tmp"
	mv "$tarball.tmp" "$tarball"
	rm -rf --one-file-system "$boot"
fi
tar -C "$root" -xf "$tarball" --use-compress-program=unzstd || fail "unpacking $tarball"
[ -x "$root/usr/bin/python3" ] || fail "$tarball has no python3: delete it to rebuild"
du -sh "$root" 2>/dev/null | cut -f1 | sed 's/^/root size: /'

# --- apply the role, twice --------------------------------------------------------------------
# Test secrets with characters a shell or systemd could interpret: the env file must keep them verbatim.
export CHECK_DEPLOY_TOKEN="tok-$RANDOM$RANDOM-secret \$HOME \"x\" \\n %%"
export CHECK_DEPLOY_PASSWORD="pw-$RANDOM$RANDOM-secret"
export ANSIBLE_CONFIG=$ansible_dir/ansible.cfg ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0
play() { # log-file [more ansible-playbook arguments]
	local log=$1
	shift
	(cd "$ansible_dir" && ansible-playbook -i "$root," tests/chroot.yml "${extra[@]}" "$@") >"$log" 2>&1
}
recap() { grep -A1 '^PLAY RECAP' "$1" | tail -1; }

# A stand-in Pulsar release for the pulsar role (the real one is not downloaded here).
mkdir -p "$work/apache-pulsar-4.0.0/bin" "$work/apache-pulsar-4.0.0/conf"
for b in pulsar pulsar-admin; do printf '#!/bin/sh\necho "stand-in %s $*"\n' "$b" >"$work/apache-pulsar-4.0.0/bin/$b"; done
chmod 755 "$work/apache-pulsar-4.0.0/bin/"*
tar -C "$work" -czf "$work/apache-pulsar-4.0.0-bin.tar.gz" apache-pulsar-4.0.0
export CHECK_DEPLOY_PULSAR_TARBALL=$work/apache-pulsar-4.0.0-bin.tar.gz

step "apply the pipelined, producer and pulsar roles (first run)"
play "$work/run1.log" || { cat "$work/run1.log"; fail "first run of the role failed"; }
recap "$work/run1.log"
grep -qE 'failed=0 ' <(recap "$work/run1.log") || fail "first run: failures"

step "apply the roles again (second run: must change nothing)"
play "$work/run2.log" || { cat "$work/run2.log"; fail "second run of the role failed"; }
recap "$work/run2.log"
if ! grep -qE ' changed=0 .*failed=0 ' <(recap "$work/run2.log"); then
	grep -E '^(changed|TASK)' "$work/run2.log" | grep -B1 '^changed' >&2 || true
	fail "second run is not idempotent (changed tasks above)"
fi

# --- what the role left in the root ------------------------------------------------------------
step "inspect the root"
check_stat() { # path expected-"mode owner group"
	local got
	# stat inside the root: owner names resolve against the root's own passwd.
	got=$(chroot "$root" stat -c '%a %U %G' "$1") || fail "$1: missing"
	[ "$got" = "$2" ] || fail "$1: want '$2', got '$got'"
	echo "ok  $1  $got"
}
check_stat /usr/local/bin/pipelined "755 root root"
check_stat /etc/pipelined "750 root pipelined"
check_stat /etc/pipelined/config.yaml "640 root pipelined"
check_stat /etc/pipelined/SensorData.avsc "640 root pipelined"
check_stat /etc/pipelined/pipelined.env "600 root root"
check_stat /etc/systemd/system/pipelined.service "644 root root"
check_stat /etc/systemd/system/pipelined.service.d/override.conf "644 root root"
check_stat /etc/systemd/system/pipelined-thp.service "644 root root"
cmp -s "$unit" "$root/etc/systemd/system/pipelined.service" || fail "installed unit differs from $unit"
cmp -s "$repo/internal/schemas/SensorData.avsc" "$root/etc/pipelined/SensorData.avsc" || fail "installed schema differs from the repo's"

pw=$(chroot "$root" getent passwd pipelined) || fail "user pipelined missing"
[ "$(cut -d: -f7 <<<"$pw")" = /usr/sbin/nologin ] || fail "user pipelined has a login shell: $pw"
[ "$(cut -d: -f3 <<<"$pw")" -lt 1000 ] || fail "user pipelined is not a system user: $pw"
echo "ok  user: $pw"

[ "$(readlink "$root/etc/systemd/system/multi-user.target.wants/pipelined.service")" = /etc/systemd/system/pipelined.service ] ||
	fail "pipelined.service is not enabled in multi-user.target"
echo "ok  enabled: multi-user.target.wants/pipelined.service"

thp_unit=$root/etc/systemd/system/pipelined-thp.service
grep -Fqx "ExecStart=/bin/sh -c 'echo always > /sys/kernel/mm/transparent_hugepage/enabled'" "$thp_unit" ||
	fail "pipelined-thp.service does not write always (the role's default) to the THP mode"
for want in Type=oneshot RemainAfterExit=yes Before=pipelined.service WantedBy=multi-user.target; do
	grep -Fqx "$want" "$thp_unit" || fail "pipelined-thp.service lacks $want"
done
[ "$(readlink "$root/etc/systemd/system/multi-user.target.wants/pipelined-thp.service")" = /etc/systemd/system/pipelined-thp.service ] ||
	fail "pipelined-thp.service is not enabled in multi-user.target"
# Ordering only, from the THP unit's side: pipelined must start where the mode cannot be set.
if grep -q thp "$root/etc/systemd/system/pipelined.service" "$root/etc/systemd/system/pipelined.service.d/"*.conf; then
	fail "pipelined.service depends on pipelined-thp.service"
fi
echo "ok  pipelined-thp.service: writes always before pipelined.service, enabled; pipelined.service does not depend on it"

grep -Fqx "PIPELINED_PULSAR_TOKEN='$CHECK_DEPLOY_TOKEN'" "$root/etc/pipelined/pipelined.env" || fail "env file lacks the Pulsar token"
grep -Fqx "PIPELINED_CLICKHOUSE_PASSWORD='$CHECK_DEPLOY_PASSWORD'" "$root/etc/pipelined/pipelined.env" || fail "env file lacks the ClickHouse password"
grep -Fqx "PIPELINED_PULSAR_SUBSCRIPTION='pipelined-chroot'" "$root/etc/pipelined/pipelined.env" || fail "env file lacks pipelined_extra_env"
if grep -lF -e "${CHECK_DEPLOY_TOKEN%% *}" -e "$CHECK_DEPLOY_PASSWORD" "$work"/run*.log "$root/etc/pipelined/config.yaml"; then
	fail "a secret leaked into the Ansible output or config.yaml (no_log)"
fi
echo "ok  secrets: in the 0600 env file only, not in the Ansible output"

python3 - "$root/etc/pipelined/config.yaml" <<'PY' || fail "config.yaml does not hold tests/chroot.yml's values"
import sys, yaml
c = yaml.safe_load(open(sys.argv[1]))
want = {("pulsar", "url"): "pulsar://127.0.0.1:16650", ("http", "listen"): "0.0.0.0:9650",
        ("clickhouse", "addr"): "127.0.0.1:19000", ("schema", "file"): "/etc/pipelined/SensorData.avsc",
        ("window", "size"): "1m", ("limits", "memory_limit_mb"): 2048,
        ("pulsar", "receiver_queue_size"): 20000, ("pulsar", "topic"): "persistent://public/default/iot-sensor-data"}
bad = [f"{a}.{b}={c.get(a, {}).get(b)!r}, want {v!r}" for (a, b), v in want.items() if c.get(a, {}).get(b) != v]
if c.get("shutdown_timeout") != "30s":
    bad.append(f"shutdown_timeout={c.get('shutdown_timeout')!r}")
print("\n".join(bad) or "ok  config.yaml: templated values and pipelined_config_extra merged")
sys.exit(1 if bad else 0)
PY
# The daemon's own validation, run inside the root as the service would.
# As the service user: the 0640 root:pipelined files must be readable by it, the env file not.
chroot --userspec=pipelined:pipelined "$root" /usr/local/bin/pipelined check -c /etc/pipelined/config.yaml ||
	fail "pipelined check (as user pipelined) rejects the templated config"
echo "ok  pipelined check -c /etc/pipelined/config.yaml (as user pipelined)"
chroot --userspec=pipelined:pipelined "$root" cat /etc/pipelined/SensorData.avsc >/dev/null || fail "user pipelined cannot read the schema"
if chroot --userspec=pipelined:pipelined "$root" cat /etc/pipelined/pipelined.env >/dev/null 2>&1; then
	fail "user pipelined can read the secrets file"
fi
echo "ok  user pipelined reads config and schema, not the env file"
chroot "$root" /usr/local/bin/pipelined version || fail "pipelined version in the root"

grep -qE '^ExecStart=/usr/local/bin/pipelined produce .*-url pulsar://127.0.0.1:16650 .*-rate 250000 .*-count 1000 .*-padded$' \
	<(sed -e ':a' -e '/\\$/N; s/\\\n *//; ta' "$root/etc/systemd/system/pipelined-producer.service") ||
	fail "pipelined-producer.service: ExecStart lacks the producer_* flags"
echo "ok  pipelined-producer.service: ExecStart with the producer_* flags"

[ "$(readlink "$root/opt/pulsar")" = /opt/apache-pulsar-4.0.0 ] || fail "pulsar: /opt/pulsar does not point at the release"
conf=$root/opt/apache-pulsar-4.0.0/conf # (/opt/pulsar is an absolute link: resolve it in the root)
for want in "bookkeeper.conf:journalSyncData=false" "bookkeeper.conf:journalDirectories=/srv/nvme1/journal" \
	"bookkeeper.conf:ledgerDirectories=/srv/nvme2/ledgers" \
	"bookkeeper.conf:metadataServiceUri=metadata-store:zk:127.0.0.1:2181/ledgers" \
	"broker.conf:metadataStoreUrl=zk:127.0.0.1:2181" "broker.conf:allowAutoTopicCreation=false" \
	"broker.conf:clusterName=pipelined" "zookeeper.conf:clientPort=2181" "broker.env:PULSAR_MEM=\"-Xms16g -Xmx16g -XX:MaxDirectMemorySize=32g\""; do
	grep -Fqx "${want#*:}" "$conf/${want%%:*}" || fail "pulsar: ${want%%:*} lacks ${want#*:}"
done
[ "$(cat "$root/var/lib/pulsar/zookeeper/myid")" = 1 ] || fail "pulsar: zookeeper myid is not 1"
check_stat /srv/nvme1/journal "750 pulsar pulsar"
check_stat /srv/nvme2/ledgers "750 pulsar pulsar"
check_stat /opt/pulsar/conf/bookkeeper.conf "640 root pulsar"
echo "ok  pulsar: broker.conf, bookkeeper.conf (journal and ledgers apart, journalSyncData=false), zookeeper.conf, myid"

step "systemd-analyze verify (unit + drop-in, in the root)"
# verify loads the unit with its drop-in and checks that ExecStart's binary exists: run it
# inside the root, where the role installed both.
mount -t proc proc "$root/proc"
verify_out=$(chroot "$root" env SYSTEMD_LOG_LEVEL=notice systemd-analyze verify \
	/etc/systemd/system/pipelined.service /etc/systemd/system/pipelined-thp.service /etc/systemd/system/pipelined-producer.service \
	pulsar@zookeeper.service pulsar@bookie.service pulsar@broker.service 2>&1) && v_rc=0 || v_rc=$?
umount -l "$root/proc"
# A minimal root lacks targets and units the host has; only pipelined.service's own lines count.
own=$(grep -E 'pipelined|pulsar' <<<"$verify_out" || true)
[ -n "$verify_out" ] && printf '%s\n' "$verify_out"
[ "$v_rc" -eq 0 ] && [ -z "$own" ] || fail "systemd-analyze verify pipelined.service pipelined-thp.service pipelined-producer.service pulsar@*.service (exit $v_rc)"
echo "ok  systemd-analyze verify: clean"

step "apply the roles with pipelined_transparent_hugepages=\"\" (the THP unit goes), then with an invalid mode"
play "$work/run3.log" -e '{"pipelined_transparent_hugepages": ""}' || { cat "$work/run3.log"; fail "the run with pipelined_transparent_hugepages=\"\" failed"; }
recap "$work/run3.log"
# One task changes: the removal of the unit and its link; nothing else moves.
if ! grep -qE ' changed=1 .*failed=0 ' <(recap "$work/run3.log"); then
	grep -E '^(changed|TASK)' "$work/run3.log" | grep -B1 '^changed' >&2 || true
	fail "pipelined_transparent_hugepages=\"\": want exactly the THP unit's removal changed (changed tasks above)"
fi
for f in /etc/systemd/system/pipelined-thp.service /etc/systemd/system/multi-user.target.wants/pipelined-thp.service; do
	[ ! -e "$root$f" ] && [ ! -L "$root$f" ] || fail "$f is still there with pipelined_transparent_hugepages=\"\""
done
[ -L "$root/etc/systemd/system/multi-user.target.wants/pipelined.service" ] || fail "pipelined.service lost its enabled link"
echo "ok  pipelined_transparent_hugepages=\"\": unit and link removed, pipelined.service still enabled"
if play "$work/run4.log" -e pipelined_transparent_hugepages=sometimes; then
	fail "pipelined_transparent_hugepages=sometimes passed the role's variable check"
fi
grep -A3 'TASK \[pipelined : Check the role.s variables\]' "$work/run4.log" | grep -q 'pipelined_transparent_hugepages must be always, madvise, never' ||
	{ cat "$work/run4.log"; fail "pipelined_transparent_hugepages=sometimes did not stop at the variable check"; }
echo "ok  pipelined_transparent_hugepages=sometimes: stopped by the variable check"

# --- live: the role and the unit under a real systemd ------------------------------------------
# The root boots with systemd-nspawn, network-isolated (--private-network: loopback only),
# with an in-memory Pulsar (internal/cmd/pulsar-local) and chDB over the native protocol
# (internal/cmd/clickhouse-local) inside. Ansible reaches it through the same chroot connection
# with ansible_chroot_exe = nsenter into the container, and applies the role with
# pipelined_manage_service=true: handlers, start, /readyz. Then messages flow, and a stop must
# be graceful. CHECK_DEPLOY_LIVE=0 skips this stage, 1 requires it, auto (default) runs it when
# libchdb.so is in the cache (make chdb).
live=${CHECK_DEPLOY_LIVE:-auto}
chdb_lib=${CHDB_LIB_PATH:-$(find "$cache/chdb" -name libchdb.so 2>/dev/null | sort -V | tail -1 || true)}
if [ "$live" = 0 ]; then
	step "live stage: skipped (CHECK_DEPLOY_LIVE=0)"
elif [ -z "$chdb_lib" ] || [ ! -f "$chdb_lib" ] || ! command -v go >/dev/null; then
	[ "$live" = auto ] || fail "live stage: needs libchdb.so (make chdb, or CHDB_LIB_PATH) and go"
	step "live stage: SKIPPED (no libchdb.so under $cache/chdb: run make chdb; or no go)"
else
	step "live: boot the root with systemd-nspawn (private network), role with the service managed"
	src=$repo
	[ -d "$work/src" ] && src=$work/src
	(cd "$src" && CGO_ENABLED=0 go build -trimpath -o "$root/usr/local/bin/pulsar-local" ./internal/cmd/pulsar-local &&
		go build -trimpath -o "$root/usr/local/bin/clickhouse-local" ./internal/cmd/clickhouse-local) ||
		fail "building internal/cmd/pulsar-local and clickhouse-local"
	mkdir -p "$root/opt/chdb"
	cat >"$root/etc/systemd/system/pulsar-local.service" <<-'UNIT'
	[Unit]
	Description=check-deploy: in-memory Pulsar on 127.0.0.1:16650
	[Service]
	Environment=PULSAR_LISTEN=127.0.0.1:16650 PULSAR_PARTITIONS=4
	ExecStart=/usr/local/bin/pulsar-local
	UNIT
	cat >"$root/etc/systemd/system/clickhouse-local.service" <<-'UNIT'
	[Unit]
	Description=check-deploy: chDB over the native protocol on 127.0.0.1:19000
	[Service]
	Environment=CLICKHOUSE_LISTEN=127.0.0.1:19000 CLICKHOUSE_DATA=/var/lib/clickhouse-local CHDB_LIB_PATH=/opt/chdb/libchdb.so
	StateDirectory=clickhouse-local
	ExecStart=/usr/local/bin/clickhouse-local
	UNIT
	cat >"$root/etc/systemd/system/pipelined.service.d/check-deploy.conf" <<-'UNIT'
	[Unit]
	Wants=pulsar-local.service clickhouse-local.service
	After=pulsar-local.service clickhouse-local.service
	UNIT
	systemd-nspawn -D "$root" --private-network --register=no --keep-unit --boot -q --console=pipe \
		--bind-ro="$chdb_lib:/opt/chdb/libchdb.so" </dev/null >"$work/nspawn.log" 2>&1 &
	nspawn_pid=$!
	# The container's PID 1 is nspawn's child once it has exec'd systemd; before the exec it is
	# still "systemd-nspawn" and its mount namespace not yet the root's, so wait for the name.
	leader=""
	for _ in $(seq 150); do
		leader=$(pgrep -P "$nspawn_pid" -x systemd | head -1) && [ -n "$leader" ] && break
		sleep 0.2
	done
	[ -n "$leader" ] || { cat "$work/nspawn.log"; fail "systemd-nspawn did not start the container's systemd in 30s"; }
	in_ct() { nsenter --target "$leader" --mount --uts --ipc --net --pid -- "$@"; }
	diag() { # what the daemon says: /readyz, and its last warnings and errors
		in_ct python3 -c '
import urllib.request, urllib.error
try:
    r = urllib.request.urlopen("http://127.0.0.1:9650/readyz", timeout=5); print("/readyz:", r.status, r.read().decode().strip())
except urllib.error.HTTPError as e:
    print("/readyz:", e.code, e.read().decode().strip())
except Exception as e:
    print("/readyz:", e)' || true
		in_ct journalctl -u pipelined.service --no-pager -o short-precise | python3 -c '
import json, sys
lines = [l for l in sys.stdin if "pulsar-client" not in l]
for l in lines[-14:]:
    head, _, rest = l.partition(": ")
    try:
        d = json.loads(rest)
        extra = " ".join(f"{k}={v}" for k, v in d.items() if k not in ("time", "level", "msg"))
        print(" ", head.split()[2], d["level"], d["msg"], extra[:250])
    except ValueError:
        print(" ", l.rstrip()[:300])' || true
	}
	# Ask until it has booted: systemctl fails at once while systemd has not yet opened its
	# socket (or says "offline"), and answers "initializing" or "starting" while units start.
	state="" answer=""
	for _ in $(seq 240); do
		answer=$(in_ct systemctl is-system-running 2>&1) || true
		state=${answer##*$'\n'}
		case $state in running | degraded | maintenance | stopping) break ;; esac
		sleep 0.5
	done
	echo "container systemd: $state"
	case $state in running | degraded) ;; *)
		cat "$work/nspawn.log"
		in_ct systemctl list-jobs --no-pager 2>&1 | head -20 || true
		fail "the container's systemd did not come up in 120s (last answer: ${answer:-none})" ;;
	esac
	nets=$(in_ct ls /sys/class/net | tr '\n' ' ')
	[ "$nets" = "lo " ] || fail "the container's network is not private: $nets"
	echo "container network interfaces: $nets(private)"
	cat >"$work/nsenter-exe" <<-EXE
	#!/bin/sh
	# ansible_chroot_exe: run in the booted container; \$1 is the root path the connection passes.
	shift
	exec nsenter --target $leader --mount --uts --ipc --net --pid -- "\$@"
	EXE
	chmod +x "$work/nsenter-exe"
	# The database the clickhouse role would create; chDB starts with "default" only.
	# THP: the container's /sys is read-only, so pipelined-thp.service is skipped by its
	# condition; should it ever be writable, the unit writes the host's own mode back.
	host_thp=$(sed -nE 's/.*\[([a-z]+)\].*/\1/p' /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null || true)
	live_extra=(-e "ansible_chroot_exe=$work/nsenter-exe" -e pipelined_manage_service=true
		-e pipelined_clickhouse_database=default -e pipelined_window_size=10s -e pipelined_readyz_retries=15
		-e "pipelined_transparent_hugepages=${host_thp:-always}")

	step "live: apply the role (config changed: handlers restart, then /readyz)"
	play "$work/live1.log" "${live_extra[@]}" || {
		grep -E '^(fatal|failed):' "$work/live1.log" | cut -c1-400
		diag
		fail "live run of the role failed (the daemon's state above)"
	}
	recap "$work/live1.log"
	grep -q 'RUNNING HANDLER \[pipelined : Restart pipelined\]' "$work/live1.log" || fail "live run: the restart handler did not run"
	grep -A1 'TASK \[pipelined : Wait for /readyz\]' "$work/live1.log" | grep -q '^ok:' || fail "live run: /readyz wait did not pass"
	echo "ok  handler restarted pipelined; /readyz answered 200"
	grep -q 'RUNNING HANDLER \[pipelined : Apply the transparent huge pages mode\]' "$work/live1.log" ||
		fail "live run: the THP handler did not run for the reinstalled unit"
	[ "$(in_ct systemctl is-enabled pipelined-thp.service)" = enabled ] || fail "live run: pipelined-thp.service is not enabled"
	thp_state=$(in_ct systemctl show -p ActiveState --value pipelined-thp.service)/$(in_ct systemctl show -p ConditionResult --value pipelined-thp.service)
	case $thp_state in inactive/no | active/yes) ;; *) fail "live run: pipelined-thp.service is $thp_state (ActiveState/ConditionResult)" ;; esac
	echo "ok  pipelined-thp.service enabled, $thp_state (ActiveState/ConditionResult: skipped where /sys is read-only)"

	step "live: apply the role again (changed=0, no restart)"
	pid_before=$(in_ct systemctl show -p MainPID --value pipelined.service)
	play "$work/live2.log" "${live_extra[@]}" || { grep -E '^(fatal|failed):' "$work/live2.log" | cut -c1-400; diag; fail "second live run failed"; }
	recap "$work/live2.log"
	grep -qE ' changed=0 .*failed=0 ' <(recap "$work/live2.log") || fail "second live run is not idempotent"
	[ "$(in_ct systemctl show -p MainPID --value pipelined.service)" = "$pid_before" ] || fail "second live run restarted pipelined"
	echo "ok  no restart (MainPID $pid_before)"
	# What systemd made of the env file: the daemon's environment holds the secret verbatim.
	in_ct cat "/proc/$pid_before/environ" | tr '\0' '\n' | grep -Fqx "PIPELINED_PULSAR_TOKEN=$CHECK_DEPLOY_TOKEN" ||
		fail "the daemon's environment lacks PIPELINED_PULSAR_TOKEN exactly as set (env file quoting)"
	echo "ok  the daemon got the secrets from the env file verbatim"
	if grep -lF -e "${CHECK_DEPLOY_TOKEN%% *}" -e "$CHECK_DEPLOY_PASSWORD" "$work"/live*.log; then
		fail "a secret leaked into the live Ansible output"
	fi

	step "live: messages through the hardened unit"
	show=$(in_ct systemctl show -p ActiveState -p SubState -p NRestarts -p User pipelined.service | tr '\n' ' ')
	echo "$show"
	grep -q 'ActiveState=active SubState=running' <<<"$show" && grep -q 'NRestarts=0' <<<"$show" || { diag; fail "pipelined.service not running cleanly: $show"; }
	in_ct /usr/local/bin/pipelined produce -url pulsar://127.0.0.1:16650 -count 20000 -rate 0 -devices 1000 -producers 2 >"$work/produce.log" 2>&1 ||
		{ cat "$work/produce.log"; fail "pipelined produce into the container's Pulsar"; }
	got=0
	for _ in $(seq 60); do
		got=$(in_ct python3 -c '
import re, urllib.request
t = urllib.request.urlopen("http://127.0.0.1:9650/metrics", timeout=5).read().decode()
print(int(sum(float(v) for v in re.findall(r"^pipelined_messages_received_total\{[^}]*\} (\S+)$", t, re.M))))' 2>/dev/null) || got=0
		[ "${got:-0}" -ge 20000 ] && break
		sleep 0.5
	done
	[ "${got:-0}" -ge 20000 ] || { diag; fail "pipelined received $got of 20000 messages"; }
	echo "ok  pipelined_messages_received_total = $got (20000 produced)"
	# The dashboard's process and runtime series must survive the sandbox (ProcSubset=pid etc.).
	in_ct python3 -c '
import re, sys, urllib.request
t = urllib.request.urlopen("http://127.0.0.1:9650/metrics", timeout=5).read().decode()
want = ["process_cpu_seconds_total", "process_resident_memory_bytes", "go_memstats_heap_inuse_bytes",
        "pipelined_backpressure_seconds_total", "pipelined_backlog_lag_seconds", "pipelined_flush_duration_seconds_bucket"]
miss = [m for m in want if not re.search(r"^" + m + r"[ {]", t, re.M)]
print("missing from /metrics:", " ".join(miss)) if miss else print("ok  /metrics has", " ".join(want))
sys.exit(1 if miss else 0)' || fail "/metrics under the hardened unit lacks series the dashboard uses"

	step "live: graceful stop"
	t0=$SECONDS
	in_ct systemctl stop pipelined.service
	took=$((SECONDS - t0))
	show=$(in_ct systemctl show -p Result -p ExecMainCode -p ExecMainStatus pipelined.service | tr '\n' ' ')
	echo "$show (took ${took}s)"
	grep -q 'Result=success' <<<"$show" && grep -q 'ExecMainStatus=0' <<<"$show" || { diag; fail "pipelined did not stop cleanly: $show"; }
	in_ct journalctl -u pipelined --no-pager -o cat | grep -qE 'status=31/SYS|code=killed' && fail "a process was killed (seccomp?)" || true
	echo "ok  stopped with exit 0 in ${took}s"
	in_ct systemctl poweroff 2>/dev/null || true
	for _ in $(seq 100); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.2; done
	kill -0 "$nspawn_pid" 2>/dev/null && fail "the container did not power off"
	nspawn_pid=""
fi

step "done"
echo "check-deploy: OK in $((SECONDS - start))s (second run: $(recap "$work/run2.log" | tr -s ' '))"
exit 0
}
