#!/usr/bin/env bash
# Runs one KRaft Kafka node (broker+controller) on loopback from the `make kafka` cache, for
# the bench and for poking at by hand. The tests use tests/support/kafka.rs instead (same
# server.properties).
#
#   tools/kafka/run.sh start DIR   format DIR (if new) on free ports, start in the background,
#                                  wait for "Kafka Server started", print the bootstrap
#                                  address (127.0.0.1:PORT) on stdout
#   tools/kafka/run.sh fg DIR      the same, in the foreground (Ctrl-C stops it)
#   tools/kafka/run.sh stop DIR    SIGTERM, wait (SIGKILL after 30 s)
#
# Environment: OUTPOST_KAFKA_HOME (default $HOME/.cache/outpost/kafka-4.1.1),
# KAFKA_JVM_OPTS (default: full JIT, serial GC, 512 MiB heap: throughput, not start time);
# the cache's class-data-sharing archive (kafka.jsa) is used unless OUTPOST_KAFKA_NO_CDS=1.
set -euo pipefail

cmd=${1:?usage: run.sh start|fg|stop DIR}
dir=${2:?usage: run.sh start|fg|stop DIR}
home=${OUTPOST_KAFKA_HOME:-${OUTPOST_CACHE_DIR:-$HOME/.cache/outpost}/kafka-4.1.1}
jvm_opts=${KAFKA_JVM_OPTS:--Xms256m -Xmx512m -XX:+UseSerialGC -XX:-UsePerfData}

die() { echo "run.sh: $*" >&2; exit 1; }

stop() {
	[[ -f "$dir/pid" ]] || return 0
	local pid; pid=$(cat "$dir/pid")
	if kill -TERM "$pid" 2>/dev/null; then
		for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$dir/pid"
}

if [[ "$cmd" == stop ]]; then stop; exit 0; fi
[[ "$cmd" == start || "$cmd" == fg ]] || die "unknown command $cmd"
[[ -f "$home/log4j2.xml" && -d "$home/libs" ]] || die "no Kafka in $home: run \`make kafka\`"
command -v java >/dev/null || die "java not found"

mkdir -p "$dir/logs"
dir=$(cd "$dir" && pwd)
if [[ ! -f "$dir/server.properties" ]]; then
	read -r port cport < <(python3 -c '
import socket
s=[socket.socket() for _ in range(2)]
[x.bind(("127.0.0.1",0)) for x in s]
print(*[x.getsockname()[1] for x in s])')
	cat > "$dir/server.properties" <<P
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/data
num.partitions=1
default.replication.factor=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=2
num.recovery.threads.per.data.dir=1
log.cleaner.enable=true
log.cleaner.threads=1
log.cleaner.dedupe.buffer.size=16777216
P
	echo "$port" > "$dir/port"
fi
port=$(cat "$dir/port")
# shellcheck disable=SC2206
cds=()
if [[ -z "${OUTPOST_KAFKA_NO_CDS:-}" && -f "$home/kafka.jsa" ]]; then
	cds=("-XX:SharedArchiveFile=$home/kafka.jsa" -Xshare:auto)
fi
jopts=("${cds[@]}" $jvm_opts -Djava.awt.headless=true "-Dlog4j2.configurationFile=$home/log4j2.xml" "-Dkafka.logs.dir=$dir/logs")
if [[ ! -f "$dir/data/meta.properties" ]]; then
	java "${jopts[@]}" -cp "$home/libs/*" kafka.tools.StorageTool format \
		--cluster-id "$(java -cp "$home/libs/*" kafka.tools.StorageTool random-uuid)" \
		--config "$dir/server.properties" --standalone >"$dir/logs/format.out" 2>&1 \
		|| { cat "$dir/logs/format.out" >&2; die "StorageTool format failed"; }
fi
if [[ "$cmd" == fg ]]; then
	echo "run.sh: Kafka on 127.0.0.1:$port (logs in $dir/logs)" >&2
	exec java "${jopts[@]}" -cp "$home/libs/*" kafka.Kafka "$dir/server.properties"
fi
from=$(stat -c %s "$dir/logs/server.log" 2>/dev/null || echo 0)
java "${jopts[@]}" -cp "$home/libs/*" kafka.Kafka "$dir/server.properties" \
	>>"$dir/logs/jvm.out" 2>&1 </dev/null &
echo $! > "$dir/pid"
for _ in $(seq 1 900); do
	if tail -c +"$((from + 1))" "$dir/logs/server.log" 2>/dev/null | grep -q "Kafka Server started"; then
		echo "127.0.0.1:$port"
		exit 0
	fi
	kill -0 "$(cat "$dir/pid")" 2>/dev/null || { tail -40 "$dir/logs/server.log" "$dir/logs/jvm.out" >&2 || true; die "Kafka exited during start"; }
	sleep 0.1
done
tail -40 "$dir/logs/server.log" >&2 || true
stop
die "Kafka not started after 90 s"
