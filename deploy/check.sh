#!/bin/sh
# Validates what `go test ./deploy/` cannot: the Airflow DAG (byte-compiled and
# unit-tested against stubs of the Airflow classes, since Airflow is not
# installable here), the Dockerfile (dockerfilelint, pinned in .ci/node and
# installed there with `npm ci` on first use; hadolint too when it is on PATH)
# and every kustomization as the real client renders it (`kubectl kustomize`).
# With --go it also runs the Go tests that render and check every
# kustomization strictly against the k8s.io/api types.
#
#   deploy/check.sh [--go]
#
# A tool that is missing (kubectl, or Python's jinja2/yaml for two DAG tests)
# is skipped with a warning on a developer machine and fails the check under
# CI=true, so CI cannot pass without really checking.
# Env: PYTHON (default python3), KUBECTL (default kubectl), CI.
set -eu

cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
KUBECTL=${KUBECTL:-kubectl}

# missing WHAT: fail under CI, warn loudly elsewhere.
missing() {
	if [ "${CI:-}" = true ]; then
		echo "deploy/check.sh: FAIL: $1 (required when CI=true)" >&2
		exit 1
	fi
	echo "deploy/check.sh: WARNING: SKIPPED: $1" >&2
}

# No __pycache__ in the working tree.
PYTHONDONTWRITEBYTECODE=1
export PYTHONDONTWRITEBYTECODE

echo "== airflow: py_compile"
PYTHONPYCACHEPREFIX=$(mktemp -d)
export PYTHONPYCACHEPREFIX
trap 'rm -rf "$PYTHONPYCACHEPREFIX"' EXIT
"$PYTHON" -m py_compile deploy/airflow/shelf_dag.py deploy/airflow/test_dag.py

echo "== airflow: unittest"
# test_dag.py itself fails under CI=true when jinja2 or yaml is missing. It
# runs the DAG's task commands with the real binary, built here.
SHELF_BIN="$PYTHONPYCACHEPREFIX/shelf"
go build -o "$SHELF_BIN" ./jobs/shelf
export SHELF_BIN
"$PYTHON" -m unittest discover -s deploy/airflow -p 'test_*.py'

echo "== Dockerfile: dockerfilelint"
DFL=.ci/node/node_modules/.bin/dockerfilelint
if [ ! -x "$DFL" ]; then
	npm ci --prefix .ci/node --no-audit --no-fund >&2
fi
"$DFL" --version
# The linter must be live: a Dockerfile with known problems has to fail.
bad="$PYTHONPYCACHEPREFIX/bad.Dockerfile"
printf 'FROM debian:latest\nRUN apt-get install curl\n' >"$bad"
if "$DFL" "$bad" >/dev/null 2>&1; then
	echo "deploy/check.sh: dockerfilelint accepted a Dockerfile with known problems" >&2
	exit 1
fi
# No rule is ignored (there is no .dockerfilelintrc): the Dockerfile passes them all.
# dockerfilelint 1.8 predates BuildKit's FROM flags and reads "--platform=…" as
# the image name, so it lints the file with that flag removed (TestDockerfile
# checks the flag itself).
lintable="$PYTHONPYCACHEPREFIX/lint.Dockerfile"
sed 's/^FROM --platform=[^ ]* /FROM /' Dockerfile >"$lintable"
"$DFL" "$lintable"

if command -v hadolint >/dev/null 2>&1; then
	echo "== Dockerfile: hadolint"
	hadolint Dockerfile
fi

echo "== kustomize: $KUBECTL kustomize on every root"
# Debian's kubernetes-client (1.20) embeds kustomize v2, which predates
# Components: it cannot render these roots, so it is no substitute. CI
# machines have kubectl >= 1.31 (kustomize v5).
if ! command -v "$KUBECTL" >/dev/null 2>&1; then
	missing "kubectl not on PATH: kubectl kustomize not run (install kubectl >= 1.31)"
elif ! "$KUBECTL" version --client 2>/dev/null | grep -q '^Kustomize Version: v5'; then
	missing "$KUBECTL embeds no kustomize v5 ($("$KUBECTL" version --client 2>&1 | tr '\n' ' ')): kubectl kustomize not run"
else
	"$KUBECTL" version --client | sed -n 's/^/   /p'
	n=0
	for k in $(find deploy/kubernetes -name kustomization.yaml | sort); do
		dir=$(dirname "$k")
		if grep -q '^kind: Component' "$k"; then
			continue # a Component only renders inside a root
		fi
		"$KUBECTL" kustomize "$dir" >"$PYTHONPYCACHEPREFIX/rendered.yaml"
		objs=$(grep -c '^kind: ' "$PYTHONPYCACHEPREFIX/rendered.yaml" || true)
		if [ "$objs" -eq 0 ]; then
			echo "deploy/check.sh: $KUBECTL kustomize $dir rendered no objects" >&2
			exit 1
		fi
		echo "   $dir: $objs objects"
		n=$((n + 1))
	done
	echo "   $n roots rendered"
fi

if [ "${1:-}" = "--go" ]; then
	echo "== kustomize: go test ./deploy/"
	go test ./deploy/
fi
echo "deploy: all checks passed"
