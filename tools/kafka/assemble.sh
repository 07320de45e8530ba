#!/usr/bin/env bash
# Assembles Apache Kafka (tools/kafka/pom.xml: kafka_2.13 and a log4j2 backend) from Maven
# Central into HOME_DIR (default $HOME/.cache/outpost/kafka-<version>), for the tests and the
# bench: HOME_DIR/libs/*.jar (the runtime classpath: java -cp 'HOME_DIR/libs/*') and
# HOME_DIR/log4j2.xml, plus HOME_DIR/kafka.jsa: a class-data-sharing archive of a broker
# start (about a third less CPU per start on 2 cores; JVMs use it when it matches, and
# ignore it when it does not).
#
#   tools/kafka/assemble.sh VERSION HOME_DIR
#
# Idempotent: when HOME_DIR/.stamp matches the inputs (pom.xml, log4j2.xml, this script), it
# does nothing (no mvn call). Atomic: it builds in a temp dir beside HOME_DIR and renames it
# into place; the stamp is written last, so an interrupted run never leaves a directory that
# looks complete (the harness checks the stamp).
set -euo pipefail

version=${1:?usage: assemble.sh VERSION HOME_DIR}
home=${2:?usage: assemble.sh VERSION HOME_DIR}
here=$(cd "$(dirname "$0")" && pwd)

die() { echo "make kafka: $*" >&2; exit 1; }

grep -q "<kafka.version>$version</kafka.version>" "$here/pom.xml" \
	|| die "tools/kafka/pom.xml does not pin Kafka $version (the Makefile's KAFKA_VERSION)"

command -v java >/dev/null || die "java not found: install a JDK 17+ (Debian: apt-get install openjdk-17-jdk-headless)"
stamp=$( (cat "$here/pom.xml" "$here/log4j2.xml" "$0" "$here/run.sh"; java -version 2>&1) | sha256sum | cut -d' ' -f1)
if [[ -f "$home/.stamp" && "$(cat "$home/.stamp")" == "$stamp" ]]; then
	echo "make kafka: Kafka $version is ready in $home"
	exit 0
fi

command -v mvn >/dev/null || die "mvn not found: install Maven (Debian: apt-get install maven)"
jv=$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)
[[ -n "$jv" && "$jv" -ge 17 ]] || die "Kafka $version needs Java 17+, found: $(java -version 2>&1 | head -1)"

parent=$(dirname "$home")
mkdir -p "$parent"
tmp=$(mktemp -d "$parent/.kafka-$version.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

echo "make kafka: downloading Kafka $version and its runtime dependencies with mvn into $home"
mvn -q -B -Dstyle.color=never -f "$here/pom.xml" dependency:copy-dependencies \
	-DincludeScope=runtime -DoutputDirectory="$tmp/libs" \
	|| die "mvn could not resolve tools/kafka/pom.xml (is Maven Central reachable?)"
[[ -f "$tmp/libs/kafka_2.13-$version.jar" && -f "$tmp/libs/kafka-clients-$version.jar" ]] \
	|| die "mvn ran but kafka_2.13-$version.jar / kafka-clients-$version.jar are missing in $tmp/libs"
cp "$here/log4j2.xml" "$tmp/log4j2.xml"
# The classpath as a file too, for tools that want one.
ls "$tmp"/libs/*.jar | sed "s|^$tmp|$home|" | paste -sd: > "$tmp/kafka.cp"
# Kafka's main class must load from this classpath.
java -cp "$tmp/libs/*" kafka.tools.StorageTool random-uuid >/dev/null \
	|| die "the assembled classpath cannot run kafka.tools.StorageTool"

if [[ -e "$home" ]]; then
	old=$(mktemp -d "$parent/.kafka-$version.old.XXXXXX")
	mv "$home" "$old/"
	mv "$tmp" "$home"
	rm -rf "$old"
else
	mv "$tmp" "$home"
fi
trap - EXIT

# The CDS archive records the classpath, so it is made in place: one broker start and stop
# (tools/kafka/run.sh, with the harness's JVM flags) dumps the classes it loaded.
cds=$(mktemp -d "${TMPDIR:-/tmp}/outpost-kafka-cds.XXXXXX")
trap 'OUTPOST_KAFKA_HOME="$home" "$here/run.sh" stop "$cds" || true; rm -rf "$cds"' EXIT
rm -f "$home/kafka.jsa" "$home/kafka.jsa.tmp"
if OUTPOST_KAFKA_HOME="$home" OUTPOST_KAFKA_NO_CDS=1 \
	KAFKA_JVM_OPTS="-Xms64m -Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:-UsePerfData -XX:ArchiveClassesAtExit=$home/kafka.jsa.tmp" \
	"$here/run.sh" start "$cds" >/dev/null \
	&& OUTPOST_KAFKA_HOME="$home" "$here/run.sh" stop "$cds" && [[ -s "$home/kafka.jsa.tmp" ]]; then
	mv "$home/kafka.jsa.tmp" "$home/kafka.jsa"
else
	echo "make kafka: warning: no class-data-sharing archive (Kafka starts a little slower)" >&2
	rm -f "$home/kafka.jsa.tmp"
fi
echo "$stamp" > "$home/.stamp"
echo "make kafka: Kafka $version ready in $home ($(ls "$home/libs" | wc -l) jars, $(du -sh "$home" | cut -f1))"
