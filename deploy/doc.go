// Package deploy holds Shelf's deployment manifests and their validation:
// the Kubernetes kustomizations under kubernetes/ (nightly CronJob, Indexed
// scoring Job and backfill Job templates, dev and prod overlays) and the
// Airflow DAG under airflow/.
//
// The package has no Go API. Its tests render every kustomization with the
// kustomize engine that `kubectl kustomize` uses, decode each object strictly
// into the k8s.io/api types and check the operating contract: exit code 2
// fails a Job at once, runs never overlap, pods run as non-root on a read-only
// root filesystem, secrets come only from Secret references, and the config a
// pod would see loads and validates.
//
//	go test ./deploy/
//	deploy/check.sh   # the Airflow DAG tests and the Dockerfile lint
package deploy
