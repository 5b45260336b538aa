#!/bin/sh
# Validates what `go test ./deploy/` cannot: the Airflow DAG (byte-compiled and
# unit-tested against stubs of the Airflow classes, since Airflow is not
# installable here) and the Dockerfile (dockerfilelint, installed with npm on
# first use; hadolint too when it is on PATH). With --go it also runs the Go
# tests that render and check every kustomization.
#
#   deploy/check.sh [--go]
#
# Env: PYTHON (default python3), DOCKERFILELINT_PREFIX (npm install prefix).
set -eu

cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
DFL_VERSION=1.8.0

# No __pycache__ in the working tree.
PYTHONDONTWRITEBYTECODE=1
export PYTHONDONTWRITEBYTECODE

echo "== airflow: py_compile"
PYTHONPYCACHEPREFIX=$(mktemp -d)
export PYTHONPYCACHEPREFIX
trap 'rm -rf "$PYTHONPYCACHEPREFIX"' EXIT
"$PYTHON" -m py_compile deploy/airflow/shelf_dag.py deploy/airflow/test_dag.py

echo "== airflow: unittest"
"$PYTHON" -m unittest discover -s deploy/airflow -p 'test_*.py'

echo "== Dockerfile: dockerfilelint $DFL_VERSION"
if command -v dockerfilelint >/dev/null 2>&1; then
	DFL=dockerfilelint
else
	prefix=${DOCKERFILELINT_PREFIX:-${XDG_CACHE_HOME:-$HOME/.cache}/shelf/dockerfilelint-$DFL_VERSION}
	if [ ! -x "$prefix/node_modules/.bin/dockerfilelint" ]; then
		mkdir -p "$prefix"
		npm install --no-save --no-audit --no-fund --prefix "$prefix" "dockerfilelint@$DFL_VERSION" >/dev/null
	fi
	DFL=$prefix/node_modules/.bin/dockerfilelint
fi
"$DFL" Dockerfile

if command -v hadolint >/dev/null 2>&1; then
	echo "== Dockerfile: hadolint"
	hadolint Dockerfile
fi

if [ "${1:-}" = "--go" ]; then
	echo "== kustomize: go test ./deploy/"
	go test ./deploy/
fi
echo "deploy: all checks passed"
