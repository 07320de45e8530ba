#!/usr/bin/env bash
# Creates or updates the project venv with tools/py/requirements.txt.
#
#   tools/py/setup_venv.sh VENV_DIR
#
# Idempotent: VENV_DIR/.outpost-stamp holds a hash of requirements.txt and the base Python's
# version; when it matches, nothing runs. The stamp is written last, so an interrupted
# install is redone next time.
set -euo pipefail

venv=${1:?usage: setup_venv.sh VENV_DIR}
here=$(cd "$(dirname "$0")" && pwd)
req="$here/requirements.txt"
py=${PYTHON3:-python3}

die() { echo "make venv: $*" >&2; exit 1; }

command -v "$py" >/dev/null || die "python3 not found: install Python 3.9+ (Debian: apt-get install python3 python3-venv)"
stamp=$( (cat "$req" "$0"; "$py" -c 'import sys; print(sys.version)') | sha256sum | cut -d' ' -f1)
if [[ -x "$venv/bin/python" && -f "$venv/.outpost-stamp" && "$(cat "$venv/.outpost-stamp")" == "$stamp" ]]; then
	echo "make venv: $venv is up to date"
	exit 0
fi

rm -f "$venv/.outpost-stamp"
if [[ ! -x "$venv/bin/python" ]]; then
	"$py" -m venv "$venv" || die "'$py -m venv' failed (Debian: apt-get install python3-venv)"
fi
"$venv/bin/python" -m pip install --disable-pip-version-check -q -r "$req" \
	|| die "pip could not install $req"
"$venv/bin/python" -c 'import confluent_kafka as c; v = c.version(); print("make venv: confluent-kafka %s, librdkafka %s" % (v if isinstance(v, str) else v[0], c.libversion()[0]))' \
	|| die "confluent_kafka does not import in $venv"
echo "$stamp" > "$venv/.outpost-stamp"
