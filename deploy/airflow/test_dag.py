"""Checks of shelf_dag.py without Airflow.

Airflow cannot be installed where these run, so the few classes the DAG uses
are replaced by minimal stubs in sys.modules; the stubs reject keyword
arguments the real classes do not take (cncf-kubernetes provider 10.x,
Airflow 2.10/3.x), so a typo still fails here. Run from the repository root:

    python3 -m unittest discover -s deploy/airflow -p 'test_*.py' -v
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import py_compile
import sys
import tempfile
import types
import unittest
from types import SimpleNamespace

HERE = os.path.dirname(os.path.abspath(__file__))
DAG_FILE = os.path.join(HERE, "shelf_dag.py")
CRONJOB = os.path.join(HERE, "..", "kubernetes", "base", "cronjob.yaml")

# Parameters of KubernetesPodOperator.__init__ (provider 10.x) and BaseOperator.
KPO_PARAMS = set(
    """kubernetes_conn_id namespace image name random_name_suffix cmds arguments ports volume_mounts volumes
    env_vars env_from secrets in_cluster cluster_context labels reattach_on_restart startup_timeout_seconds
    startup_check_interval_seconds schedule_timeout_seconds get_logs base_container_name
    base_container_status_polling_interval init_container_logs container_logs image_pull_policy annotations
    container_resources affinity config_file node_selector image_pull_secrets service_account_name
    automount_service_account_token hostnetwork host_aliases tolerations security_context
    container_security_context dnspolicy dns_config hostname subdomain schedulername full_pod_spec
    init_containers log_events_on_failure do_xcom_push pod_template_file pod_template_dict priority_class_name
    pod_runtime_info_envs termination_grace_period configmaps skip_on_exit_code deferrable poll_interval
    log_pod_spec_on_failure on_finish_action termination_message_policy active_deadline_seconds callbacks
    progress_callback logging_interval trigger_kwargs container_name_log_prefix_enabled log_formatter
    task_id owner email retries retry_delay retry_exponential_backoff max_retry_delay start_date end_date
    depends_on_past wait_for_downstream params default_args priority_weight weight_rule queue pool pool_slots
    execution_timeout on_execute_callback on_failure_callback on_success_callback on_retry_callback
    trigger_rule doc_md executor_config max_active_tis_per_dag""".split()
)
DAG_PARAMS = set(
    """dag_id description schedule start_date end_date default_args max_active_tasks max_active_runs
    dagrun_timeout catchup doc_md params tags owner_links render_template_as_native_obj
    is_paused_upon_creation on_success_callback on_failure_callback""".split()
)
SECRET_ENV = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AZURE_STORAGE_KEY", "SHELF_PSEUDONYM_KEY"}
# SHELF_* names the binary accepts that the DAG may set (it exits 2 on unknown ones).
SHELF_ENV = {"SHELF_EVENTS_URL", "SHELF_OUTPUT_URL", "SHELF_LOG_FORMAT", "SHELF_LOG_LEVEL", "SHELF_PSEUDONYM_KEY"}


class AirflowException(Exception):
    pass


class AirflowFailException(AirflowException):
    pass


class DAG:
    current = None

    def __init__(self, dag_id, **kwargs):
        unknown = set(kwargs) - DAG_PARAMS
        if unknown:
            raise TypeError(f"DAG got unexpected keyword arguments {sorted(unknown)}")
        self.dag_id = dag_id
        self.tasks = {}
        self.__dict__.update(kwargs)

    def __enter__(self):
        DAG.current = self
        return self

    def __exit__(self, *exc):
        DAG.current = None
        return False


class KubernetesPodOperator:
    BASE_CONTAINER_NAME = "base"

    def __init__(self, *, task_id, **kwargs):
        unknown = set(kwargs) - KPO_PARAMS
        if unknown:
            raise TypeError(f"KubernetesPodOperator got unexpected keyword arguments {sorted(unknown)}")
        if DAG.current is None:
            raise RuntimeError(f"task {task_id} created outside a DAG")
        if task_id in DAG.current.tasks:
            raise ValueError(f"duplicate task_id {task_id}")
        DAG.current.tasks[task_id] = self
        self.task_id = task_id
        self.kwargs = kwargs
        self.base_container_name = kwargs.get("base_container_name") or self.BASE_CONTAINER_NAME
        self.do_xcom_push = kwargs.get("do_xcom_push", False)
        self.upstream, self.downstream = set(), set()

    def __rshift__(self, other):
        for o in other if isinstance(other, (list, tuple)) else [other]:
            self.downstream.add(o.task_id)
            o.upstream.add(self.task_id)
        return other

    def __rrshift__(self, other):
        for o in other if isinstance(other, (list, tuple)) else [other]:
            o >> self
        return self

    def cleanup(self, pod, remote_pod, xcom_result=None, context=None):
        # As the provider: a pod that did not succeed raises AirflowException.
        if remote_pod.status.phase != "Succeeded":
            raise AirflowException(f"Pod {pod} returned a failure")


class CronDataIntervalTimetable:
    def __init__(self, cron, timezone):
        self.cron, self.timezone = cron, timezone


def k8s_model(name):
    """A stand-in for a kubernetes.client.models class: keeps its keyword arguments."""

    def init(self, **kwargs):
        self.__dict__.update(kwargs)

    def getattr_(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return None  # unset fields read as None, as in the real client

    return type(name, (), {"__init__": init, "__getattr__": getattr_})


def stub_modules():
    mods = {}

    def mod(name, **attrs):
        m = types.ModuleType(name)
        m.__dict__.update(attrs)
        mods[name] = m
        return m

    mod("airflow", DAG=DAG)
    mod("airflow.exceptions", AirflowException=AirflowException, AirflowFailException=AirflowFailException)
    for name in ("airflow.providers", "airflow.providers.cncf", "airflow.providers.cncf.kubernetes",
                 "airflow.providers.cncf.kubernetes.operators", "airflow.timetables"):
        mod(name)
    mod("airflow.providers.cncf.kubernetes.operators.pod", KubernetesPodOperator=KubernetesPodOperator)
    mod("airflow.timetables.interval", CronDataIntervalTimetable=CronDataIntervalTimetable)
    models = mod("kubernetes.client.models")
    models.__getattr__ = k8s_model
    mod("kubernetes", client=mod("kubernetes.client", models=models))
    return mods


@contextlib.contextmanager
def loaded_dag(**env):
    """Imports shelf_dag.py against the stubs with the given scheduler environment."""
    saved_env = {k: os.environ.get(k) for k in env}
    saved_mods = {k: sys.modules.get(k) for k in stub_modules()}
    try:
        os.environ.update(env)
        sys.modules.update(stub_modules())
        spec = importlib.util.spec_from_file_location("shelf_dag_under_test", DAG_FILE)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        for k, v in saved_mods.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


def flag(args, name):
    i = args.index(name)
    return args[i + 1]


def require(module):
    """Imports an optional module: a missing one skips the test, or fails it under CI=true."""
    try:
        return importlib.import_module(module)
    except ImportError:
        if os.environ.get("CI") == "true":
            raise
        raise unittest.SkipTest(f"{module} not installed")


def run_with_retries(op, default_args, exit_codes):
    """Runs op's cleanup as Airflow runs a task's tries; returns (tries, state).

    Each try's pod exits with the next code (0 succeeds). As Airflow's
    TaskInstance.handle_failure: AirflowFailException fails the task at once
    (force_fail), any other exception is retried while tries <= retries.
    """
    retries = op.kwargs.get("retries", default_args.get("retries", 0))
    for tries, code in enumerate(exit_codes, start=1):
        pod = finished_pod("Succeeded" if code == 0 else "Failed", code)
        try:
            op.cleanup(pod="p", remote_pod=pod)
            return tries, "success"
        except AirflowFailException:
            return tries, "failed"
        except AirflowException:
            if tries > retries:
                return tries, "failed"
    raise AssertionError(f"ran out of exit codes after {len(exit_codes)} tries")


def finished_pod(phase, code):
    state = SimpleNamespace(terminated=SimpleNamespace(exit_code=code) if code is not None else None)
    return SimpleNamespace(
        status=SimpleNamespace(phase=phase, container_statuses=[
            SimpleNamespace(name="istio-proxy", state=SimpleNamespace(terminated=SimpleNamespace(exit_code=0))),
            SimpleNamespace(name="shelf", state=state),
        ])
    )


class ShelfDagTest(unittest.TestCase):
    def setUp(self):
        env = {"SHELF_DAG_SHARDS": "4", "SHELF_DAG_NAMESPACE": "shelf", "SHELF_DAG_START_DATE": "2024-01-01"}
        ctx = loaded_dag(**env)
        self.mod = ctx.__enter__()
        self.addCleanup(ctx.__exit__, None, None, None)
        self.dag = self.mod.dag
        self.tasks = self.dag.tasks
        self.scores = [f"score_{i}" for i in range(4)]

    def test_compiles(self):
        with tempfile.TemporaryDirectory() as tmp:  # keep __pycache__ out of the tree
            py_compile.compile(DAG_FILE, cfile=os.path.join(tmp, "shelf_dag.pyc"), doraise=True)

    def test_dag(self):
        self.assertEqual(self.dag.dag_id, "shelf_nightly")
        self.assertTrue(self.dag.catchup, "catchup runs missed dates as backfills")
        self.assertIsInstance(self.dag.schedule, CronDataIntervalTimetable)
        self.assertEqual((self.dag.schedule.cron, self.dag.schedule.timezone), ("30 2 * * *", "UTC"))
        self.assertIsNotNone(self.dag.start_date.tzinfo)
        self.assertEqual(self.dag.start_date.strftime("%Y-%m-%d"), "2024-01-01")
        self.assertEqual(self.dag.max_active_runs, 1)
        args = self.dag.default_args
        self.assertGreater(args["retries"], 0)
        self.assertTrue(args["retry_exponential_backoff"])
        self.assertGreaterEqual(args["max_retry_delay"], args["retry_delay"])

    def test_tasks_and_edges(self):
        self.assertEqual(set(self.tasks), {"train", "commit", *self.scores})
        self.assertEqual(self.tasks["train"].upstream, set())
        self.assertEqual(self.tasks["train"].downstream, set(self.scores))
        for s in self.scores:
            self.assertEqual(self.tasks[s].upstream, {"train"}, s)
            self.assertEqual(self.tasks[s].downstream, {"commit"}, s)
        self.assertEqual(self.tasks["commit"].upstream, set(self.scores))
        self.assertEqual(self.tasks["commit"].downstream, set())

    def test_arguments(self):
        for tid, t in self.tasks.items():
            with self.subTest(task=tid):
                args = t.kwargs["arguments"]
                self.assertEqual(args[0], tid.split("_")[0])
                self.assertEqual(flag(args, "--date"), "{{ ds }}")
                self.assertEqual(flag(args, "--config"), "/etc/shelf/config.yaml")
                self.assertNotIn("cmds", t.kwargs, "the image's ENTRYPOINT is /shelf")
        for i, s in enumerate(self.scores):
            args = self.tasks[s].kwargs["arguments"]
            self.assertEqual((flag(args, "--shard"), flag(args, "--shards")), (str(i), "4"))
        self.assertEqual(flag(self.tasks["commit"].kwargs["arguments"], "--shards"), "4")

    def test_shards_from_environment(self):
        for n in (1, 3, 16):
            with self.subTest(shards=n), loaded_dag(SHELF_DAG_SHARDS=str(n)) as mod:
                tasks = mod.dag.tasks
                scores = [f"score_{i}" for i in range(n)]
                self.assertEqual(set(tasks), {"train", "commit", *scores})
                self.assertEqual(tasks["train"].downstream, set(scores))
                self.assertEqual(tasks["commit"].upstream, set(scores))
                for i, s in enumerate(scores):
                    args = tasks[s].kwargs["arguments"]
                    self.assertEqual((flag(args, "--shard"), flag(args, "--shards")), (str(i), str(n)))
                    self.assertEqual((tasks[s].upstream, tasks[s].downstream), ({"train"}, {"commit"}))
                self.assertEqual(flag(tasks["commit"].kwargs["arguments"], "--shards"), str(n))
                names = [t.kwargs["name"] for t in tasks.values()]
                self.assertEqual(len(names), len(set(names)), "pod names are unique")

    def test_xcom(self):
        self.assertTrue(self.tasks["train"].do_xcom_push)
        self.assertTrue(self.tasks["commit"].do_xcom_push)
        for s in self.scores:
            self.assertFalse(self.tasks[s].do_xcom_push, s)

    def test_pod(self):
        for tid, t in self.tasks.items():
            with self.subTest(task=tid):
                k = t.kwargs
                self.assertIn("ghcr.io/shelfml/shelf:", k["image"])
                self.assertNotIn(":latest", k["image"])
                self.assertEqual(k["namespace"], "shelf")
                self.assertEqual(k["service_account_name"], "shelf")
                self.assertFalse(k["automount_service_account_token"])
                self.assertEqual(t.base_container_name, "shelf")
                self.assertIsNotNone(k["execution_timeout"])
                self.assertEqual(k["security_context"]["runAsUser"], 65532)
                self.assertTrue(k["security_context"]["runAsNonRoot"])
                self.assertEqual(k["security_context"]["seccompProfile"], {"type": "RuntimeDefault"})
                csc = k["container_security_context"]
                self.assertTrue(csc["readOnlyRootFilesystem"])
                self.assertFalse(csc["allowPrivilegeEscalation"])
                self.assertEqual(csc["capabilities"], {"drop": ["ALL"]})
                res = k["container_resources"]
                self.assertEqual(res.requests["memory"], res.limits["memory"])
                mounts = {m.mount_path: m for m in k["volume_mounts"]}
                vols = {v.name: v for v in k["volumes"]}
                self.assertTrue(mounts["/etc/shelf"].read_only)
                self.assertEqual(vols[mounts["/etc/shelf"].name].config_map.name, "shelf-config")
                self.assertIsNotNone(vols[mounts["/tmp"].name].empty_dir)

    def test_env_and_secrets(self):
        for tid, t in self.tasks.items():
            with self.subTest(task=tid):
                env = {e.name: e for e in t.kwargs["env_vars"]}
                self.assertEqual(len(env), len(t.kwargs["env_vars"]), "duplicate env names")
                for name, e in env.items():
                    if name.startswith("SHELF_"):
                        self.assertIn(name, SHELF_ENV)
                    if name in SECRET_ENV or "SECRET" in name or "PASSWORD" in name or "TOKEN" in name:
                        self.assertIsNone(e.value, f"{name} must come from a Secret")
                        self.assertIsNotNone(e.value_from.secret_key_ref, name)
                self.assertEqual(env["SHELF_EVENTS_URL"].value, "{{ var.value.shelf_events_url }}")
                self.assertEqual(env["SHELF_OUTPUT_URL"].value, "{{ var.value.shelf_output_url }}")
                refs = [f.secret_ref.name for f in t.kwargs["env_from"]]
                self.assertEqual(refs, ["shelf-storage"])
                self.assertNotIn("secrets", t.kwargs)

    def test_exit_codes(self):
        cases = [
            ("success", "Succeeded", 0, None),
            ("retryable io", "Failed", 1, AirflowException),
            ("permanent", "Failed", 2, AirflowFailException),
            ("oom killed", "Failed", 137, AirflowException),
            ("never started", "Failed", None, AirflowException),
        ]
        for tid, op in self.tasks.items():
            self.assertIsInstance(op, self.mod.ShelfPodOperator, tid)
            for name, phase, code, want in cases:
                with self.subTest(task=tid, case=name):
                    pod = finished_pod(phase, code)
                    if want is None:
                        op.cleanup(pod="p", remote_pod=pod)
                        continue
                    with self.assertRaises(want) as cm:
                        op.cleanup(pod="p", remote_pod=pod)
                    if want is AirflowException:
                        self.assertNotIsInstance(cm.exception, AirflowFailException, "exit 1 must stay retryable")

    def test_retries_only_retryable_exit_codes(self):
        retries = self.dag.default_args["retries"]
        self.assertEqual(retries, 3)
        cases = [
            ("exit 1 every time: every retry used", [1] * 10, retries + 1, "failed"),
            ("exit 1 then ok", [1, 0], 2, "success"),
            ("exit 1 twice, then ok", [1, 1, 0], 3, "success"),
            ("exit 2: permanent, never retried", [2] * 10, 1, "failed"),
            ("exit 1, then 2: stops at the 2", [1, 2, 0], 2, "failed"),
            ("killed (137), then ok", [137, 0], 2, "success"),
        ]
        for tid, op in self.tasks.items():
            with self.subTest(task=tid):
                self.assertNotIn("retries", op.kwargs, "retries come from default_args")
                self.assertNotIn("skip_on_exit_code", op.kwargs, "a skipped task would let commit run without it")
            for name, codes, tries, state in cases:
                with self.subTest(task=tid, case=name):
                    self.assertEqual(run_with_retries(op, self.dag.default_args, codes), (tries, state))

    def test_templates_render(self):
        jinja2 = require("jinja2")

        class Vars(dict):
            __getattr__ = dict.__getitem__

        env = jinja2.Environment(undefined=jinja2.StrictUndefined)
        ctx = {"ds": "2024-11-02", "var": {"value": Vars(shelf_events_url="s3://e", shelf_output_url="s3://o")}}
        for tid, task in self.tasks.items():
            with self.subTest(task=tid):
                args = [env.from_string(a).render(ctx) for a in task.kwargs["arguments"]]
                self.assertEqual(flag(args, "--date"), "2024-11-02", "the as-of date is the logical date ds")
        t = self.tasks["score_1"]
        self.assertEqual(env.from_string(t.kwargs["image"]).render(ctx), "ghcr.io/shelfml/shelf:0.1.0")
        rendered = {e.name: env.from_string(e.value).render(ctx) for e in t.kwargs["env_vars"] if e.value}
        self.assertEqual((rendered["SHELF_EVENTS_URL"], rendered["SHELF_OUTPUT_URL"]), ("s3://e", "s3://o"))
        # Airflow's var.value raises KeyError for a missing Variable: the task fails at render time.
        with self.assertRaises(KeyError):
            env.from_string(t.kwargs["env_vars"][0].value).render({"var": {"value": Vars()}})

    def test_matches_kubernetes_manifests(self):
        yaml = require("yaml")
        with open(CRONJOB) as f:
            pod = yaml.safe_load(f)["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        c = pod["containers"][0]
        k = self.tasks["train"].kwargs
        self.assertEqual(c["name"], self.tasks["train"].base_container_name)
        self.assertEqual(pod["securityContext"], k["security_context"])
        self.assertEqual(c["securityContext"], k["container_security_context"])
        self.assertEqual(pod["serviceAccountName"], k["service_account_name"])
        self.assertEqual(c["envFrom"][0]["secretRef"]["name"], k["env_from"][0].secret_ref.name)
        want = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in c["env"] if "valueFrom" in e}
        got = {e.name: e.value_from.secret_key_ref for e in k["env_vars"] if e.value_from}
        self.assertEqual(set(want), set(got))
        for name, ref in want.items():
            self.assertEqual((ref["name"], ref["key"]), (got[name].name, got[name].key), name)


if __name__ == "__main__":
    unittest.main()
