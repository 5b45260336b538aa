"""Shelf's nightly pipeline as an Airflow DAG: [ingest (M shards) ->] train -> score (N shards) -> commit.

Each task is one `shelf` sub-command in its own pod (KubernetesPodOperator),
keyed by the logical date `{{ ds }}`, so re-running or backfilling a date
redoes exactly that date. The pods mirror deploy/kubernetes (same image,
ConfigMap, Secrets, security settings); apply an overlay there first for the
ConfigMap `shelf-config`, the ServiceAccount and the namespace.

Supported: Airflow 2.10+ or 3.x with apache-airflow-providers-cncf-kubernetes
10.9.0 or later (10.5.0 added automount_service_account_token, 10.6.0 the
xcom_result/context arguments of cleanup(), and before 10.9.0
termination_grace_period never reached the pod, which then had 30 s instead of
120 s to checkpoint). An older provider fails at import with that message.

Airflow Variables (templated at run time, so no database access at parse time):
  shelf_events_url  required: bucket URL of the event dumps (SHELF_EVENTS_URL)
  shelf_output_url  required: bucket URL of models and tables (SHELF_OUTPUT_URL)
  shelf_image       optional: image, default ghcr.io/shelfml/shelf:0.1.0
Environment of the scheduler (read at parse time; they change the DAG's shape):
  SHELF_DAG_SHARDS      number of score shards, default 4
  SHELF_DAG_INGEST_SHARDS  number of ingest shards, default 0: train and score
                        read the dumps themselves. M > 0 adds ingest_0..M-1
                        (`shelf ingest --shard i --shards M`, one share of the
                        dumps each) before train, and train and score merge
                        their shards (--ingest-shards M): same version, same
                        tables, for dumps one pod should not read alone
  SHELF_DAG_NAMESPACE   namespace of the pods, default "shelf"
  SHELF_DAG_START_DATE  first logical date, default 2024-01-01
  SHELF_DAG_CATCHUP     "true" to run every missed date since the start date
                        when the DAG is unpaused; default false: only the
                        latest interval runs, and past dates are backfilled on
                        purpose (airflow dags backfill / shelf backfill)

Retries and exit codes. `shelf` exits 0 (ok), 1 (retryable: storage, an
interruption, a crash, a live lock, a score shard started before train) or 2
(permanent: bad config or data, quality gate refused). The cncf provider has
no exit-code-aware retry (`skip_on_exit_code` only turns a code into
"skipped", which would let commit run without a model). So ShelfPodOperator
turns a failure whose `shelf` container exited 2 into AirflowFailException,
which fails the task without using its retries; every other failure (exit 1,
OOM kill, eviction, pod that never started) stays an AirflowException and is
retried with exponential back-off (retries, retry_delay, max_retry_delay
below). The check runs in cleanup(), which both the synchronous and the
deferrable paths call with the finished pod.

The XCom sidecar the provider adds (airflow-xcom-sidecar) has no security
context of its own; ShelfPodOperator gives it the same restricted one as the
`shelf` container, so the pods pass the PodSecurity "restricted" profile.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

from airflow import DAG
from airflow.exceptions import AirflowException, AirflowFailException
from airflow.providers.cncf.kubernetes import __version__ as PROVIDER_VERSION
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.timetables.interval import CronDataIntervalTimetable
from kubernetes.client import models as k8s

PROVIDER_MIN = "10.9.0"


def version_tuple(v):
    """(10, 9, 0) from "10.9.0", "10.9.0rc1" or "10.10.0.dev0"."""
    out = []
    for part in v.split(".")[:3]:
        digits = ""
        for ch in part:
            if not ch.isdigit():
                break
            digits += ch
        out.append(int(digits or 0))
    return tuple(out + [0] * (3 - len(out)))


if version_tuple(PROVIDER_VERSION) < version_tuple(PROVIDER_MIN):
    raise ImportError(
        f"shelf_dag needs apache-airflow-providers-cncf-kubernetes >= {PROVIDER_MIN}, found {PROVIDER_VERSION}: "
        "pip install -U 'apache-airflow-providers-cncf-kubernetes>=10.9.0' (see the docstring for why)"
    )

DAG_ID = "shelf_nightly"
SHARDS = int(os.environ.get("SHELF_DAG_SHARDS", "4"))
INGEST_SHARDS = int(os.environ.get("SHELF_DAG_INGEST_SHARDS", "0"))
NAMESPACE = os.environ.get("SHELF_DAG_NAMESPACE", "shelf")
START_DATE = datetime.strptime(os.environ.get("SHELF_DAG_START_DATE", "2024-01-01"), "%Y-%m-%d").replace(
    tzinfo=timezone.utc
)
CATCHUP = os.environ.get("SHELF_DAG_CATCHUP", "false").strip().lower() in ("1", "true", "yes")

IMAGE = "{{ var.value.get('shelf_image', 'ghcr.io/shelfml/shelf:0.1.0') }}"
CONTAINER = "shelf"  # the container name podFailurePolicy and this file look at
XCOM_SIDECAR = "airflow-xcom-sidecar"  # the provider's PodDefaults.SIDECAR_CONTAINER_NAME
CONFIG = "/etc/shelf/config.yaml"
CONFIG_MAP = "shelf-config"
DATE = "{{ ds }}"
EXIT_PERMANENT = 2
RUN_AS = 65532
POD_SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": RUN_AS,
    "runAsGroup": RUN_AS,
    "fsGroup": RUN_AS,
    "seccompProfile": {"type": "RuntimeDefault"},
}
CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
}


class ShelfPodOperator(KubernetesPodOperator):
    """A KubernetesPodOperator that does not retry permanent failures (exit 2)
    and runs the XCom sidecar under the restricted security context."""

    def build_pod_request_obj(self, context=None):
        pod = super().build_pod_request_obj(context)
        for c in pod.spec.containers or []:
            if c.name == XCOM_SIDECAR and c.security_context is None:
                # sh, sleep and cat as uid 65532 on a read-only root: all it does.
                c.security_context = k8s.V1SecurityContext(
                    allow_privilege_escalation=False,
                    read_only_root_filesystem=True,
                    run_as_non_root=True,
                    capabilities=k8s.V1Capabilities(drop=["ALL"]),
                )
        return pod

    def cleanup(self, pod, remote_pod, xcom_result=None, context=None):
        try:
            return super().cleanup(pod=pod, remote_pod=remote_pod, xcom_result=xcom_result, context=context)
        except AirflowException as err:
            if isinstance(err, AirflowFailException):
                raise
            code = exit_code(remote_pod, self.base_container_name)
            if code == EXIT_PERMANENT:
                raise AirflowFailException(
                    f"shelf exited {code} (permanent: bad config/data or quality gate refused); not retrying"
                ) from err
            raise


def exit_code(remote_pod, container_name):
    """Exit code of the named container of a finished pod, or None."""
    status = getattr(remote_pod, "status", None)
    for cs in getattr(status, "container_statuses", None) or []:
        if cs.name != container_name:
            continue
        terminated = getattr(getattr(cs, "state", None), "terminated", None)
        if terminated is not None:
            return terminated.exit_code
    return None


def shelf_task(task_id, args, memory, cpu, timeout, xcom=False):
    """One `shelf` sub-command in a pod configured like deploy/kubernetes.

    CPU request = limit: the binary's workers follow the CPU limit (the Go
    runtime reads the cgroup quota), and its heap limit follows the memory
    limit (90 %), so neither is set by hand here.
    """
    return ShelfPodOperator(
        task_id=task_id,
        name=f"shelf-{task_id.replace('_', '-')}",
        namespace=NAMESPACE,
        image=IMAGE,
        image_pull_policy="IfNotPresent",
        arguments=args,
        base_container_name=CONTAINER,
        labels={
            "app.kubernetes.io/name": "shelf",
            "app.kubernetes.io/part-of": "shelf",
            "app.kubernetes.io/component": task_id.split("_")[0],
        },
        service_account_name="shelf",
        automount_service_account_token=False,
        env_vars=[
            k8s.V1EnvVar(name="SHELF_EVENTS_URL", value="{{ var.value.shelf_events_url }}"),
            k8s.V1EnvVar(name="SHELF_OUTPUT_URL", value="{{ var.value.shelf_output_url }}"),
            k8s.V1EnvVar(name="SHELF_LOG_FORMAT", value="json"),
            k8s.V1EnvVar(name="TMPDIR", value="/tmp"),
            k8s.V1EnvVar(
                name="SHELF_PSEUDONYM_KEY",
                value_from=k8s.V1EnvVarSource(
                    secret_key_ref=k8s.V1SecretKeySelector(name="shelf-pseudonym", key="pseudonym-key", optional=True)
                ),
            ),
        ],
        # AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AZURE_STORAGE_KEY; optional for workload identity.
        env_from=[k8s.V1EnvFromSource(secret_ref=k8s.V1SecretEnvSource(name="shelf-storage", optional=True))],
        volumes=[
            k8s.V1Volume(name="config", config_map=k8s.V1ConfigMapVolumeSource(name=CONFIG_MAP)),
            k8s.V1Volume(name="tmp", empty_dir=k8s.V1EmptyDirVolumeSource(size_limit="10Gi")),
        ],
        volume_mounts=[
            k8s.V1VolumeMount(name="config", mount_path=os.path.dirname(CONFIG), read_only=True),
            k8s.V1VolumeMount(name="tmp", mount_path="/tmp"),
        ],
        container_resources=k8s.V1ResourceRequirements(
            requests={"cpu": cpu, "memory": memory, "ephemeral-storage": "2Gi"},
            limits={"cpu": cpu, "memory": memory, "ephemeral-storage": "10Gi"},
        ),
        security_context=POD_SECURITY,
        container_security_context=CONTAINER_SECURITY,
        # /airflow/xcom/return.json: version URI and metrics (an emptyDir the provider adds).
        do_xcom_push=xcom,
        get_logs=True,
        on_finish_action="delete_succeeded_pod",  # keep failed pods for `kubectl logs`
        startup_timeout_seconds=600,
        termination_grace_period=120,
        execution_timeout=timeout,
    )


with DAG(
    dag_id=DAG_ID,
    description="Shelf: train the recommendation model, score it in shards, publish the tables",
    # Explicit data-interval timetable: the run at D+1 02:30 UTC has ds = D, the
    # day that just ended, in Airflow 2 and 3 alike (Airflow 3's default cron
    # timetable would make ds the run's own, incomplete day).
    schedule=CronDataIntervalTimetable("30 2 * * *", timezone="UTC"),
    start_date=START_DATE,
    catchup=CATCHUP,  # default false: unpausing never queues every date since START_DATE
    max_active_runs=1,  # dates one after another: each gate compares with LATEST
    dagrun_timeout=timedelta(hours=12),
    default_args={
        "owner": "shelf",
        "depends_on_past": False,
        "retries": 3,  # exit 1 and infrastructure failures only, see ShelfPodOperator
        "retry_delay": timedelta(minutes=5),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(hours=1),
    },
    tags=["shelf", "ml"],
) as dag:
    # Sizes from the memory model (docs: 20M events peaked at 5.08 GiB, 100M
    # at 18.33 GiB): 8 GiB holds about 25M kept events. Score re-reads the
    # events and rebuilds the ranker, so it needs what train needs; commit
    # streams the parts.
    # With ingest shards, train and score merge them instead of reading the dumps.
    merge = ["--ingest-shards", str(INGEST_SHARDS)] if INGEST_SHARDS > 0 else []
    ingests = [
        shelf_task(
            f"ingest_{i}",
            ["ingest", "--date", DATE, "--config", CONFIG, "--shard", str(i), "--shards", str(INGEST_SHARDS)],
            memory="8Gi",
            cpu="2",
            timeout=timedelta(hours=2),
        )
        for i in range(INGEST_SHARDS)
    ]
    train = shelf_task(
        "train",
        ["train", "--date", DATE, "--config", CONFIG] + merge,
        memory="8Gi",
        cpu="2",
        timeout=timedelta(hours=6),
        xcom=True,
    )
    scores = [
        shelf_task(
            f"score_{i}",
            ["score", "--date", DATE, "--config", CONFIG, "--shard", str(i), "--shards", str(SHARDS)] + merge,
            memory="8Gi",
            cpu="2",
            timeout=timedelta(hours=2),
        )
        for i in range(SHARDS)
    ]
    commit = shelf_task(
        "commit",
        ["commit", "--date", DATE, "--config", CONFIG, "--shards", str(SHARDS)],
        memory="1Gi",
        cpu="1",
        timeout=timedelta(minutes=30),
        xcom=True,
    )
    if ingests:
        ingests >> train
    train >> scores >> commit
