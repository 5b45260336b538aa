"""Checks of shelf_dag.py without Airflow.

Airflow cannot be installed where these run, so the few classes the DAG uses
are replaced by stand-ins in sys.modules. They are built from
testdata/cncf_kubernetes_provider.json, the provider's own signatures and
XCom sidecar copied from its source (the file names the commits): a DAG that
passes an argument the provider does not take, or overrides a provider method
with another signature, fails here. One test runs the DAG's own task
commands, rendered for a logical date, with the real `shelf` binary
($SHELF_BIN) against file:// buckets, in the DAG's order. Run from the
repository root:

    python3 -m unittest discover -s deploy/airflow -p 'test_*.py' -v
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import json
import os
import py_compile
import re
import subprocess
import sys
import tempfile
import types
import unittest
from types import SimpleNamespace

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
DAG_FILE = os.path.join(HERE, "shelf_dag.py")
CRONJOB = os.path.join(HERE, "..", "kubernetes", "base", "cronjob.yaml")
PROVIDER = json.load(open(os.path.join(HERE, "testdata", "cncf_kubernetes_provider.json")))
RENDERED_PODS = os.path.join(HERE, "testdata", "rendered_pods.json")
PROVIDER_VERSION = "10.21.0"  # what the stand-in reports unless a test says otherwise

KPO_PARAMS = set(PROVIDER["KubernetesPodOperator.__init__"]) | set(PROVIDER["BaseOperator.__init__"])
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


def k8s_model(name):
    """A stand-in for a kubernetes.client.models class: keeps its keyword arguments."""

    def init(self, **kwargs):
        self.__dict__.update(kwargs)

    def getattr_(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return None  # unset fields read as None, as in the real client

    return type(name, (), {"__init__": init, "__getattr__": getattr_, "_k8s": name})


class K8sModels(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        cls = k8s_model(name)
        setattr(self, name, cls)
        return cls


k8s = K8sModels("kubernetes.client.models")


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

    def build_pod_request_obj(self, context=None):
        """The pod the provider builds from the operator's arguments (the
        fields Shelf sets), with the XCom sidecar as xcom_sidecar.py adds it."""
        k = self.kwargs
        volumes = list(k.get("volumes") or [])
        mounts = list(k.get("volume_mounts") or [])
        container = k8s.V1Container(
            image=k.get("image"), name=self.base_container_name, command=k.get("cmds") or [], args=k.get("arguments") or [],
            image_pull_policy=k.get("image_pull_policy"), resources=k.get("container_resources"), volume_mounts=mounts,
            env=list(k.get("env_vars") or []), env_from=list(k.get("env_from") or []),
            security_context=k.get("container_security_context"), termination_message_policy="File",
        )
        pod = k8s.V1Pod(
            api_version="v1", kind="Pod",
            metadata=k8s.V1ObjectMeta(name=k.get("name"), namespace=k.get("namespace"), labels=dict(k.get("labels") or {})),
            spec=k8s.V1PodSpec(
                containers=[container], volumes=volumes, service_account_name=k.get("service_account_name"),
                automount_service_account_token=k.get("automount_service_account_token"),
                security_context=k.get("security_context") or {}, restart_policy="Never",
                termination_grace_period_seconds=k.get("termination_grace_period"),
            ),
        )
        if self.do_xcom_push:
            sc = PROVIDER["xcom_sidecar"]
            mount = k8s.V1VolumeMount(name=sc["volume_name"], mount_path=sc["mount_path"])
            pod.spec.volumes.insert(0, k8s.V1Volume(name=sc["volume_name"], empty_dir=k8s.V1EmptyDirVolumeSource()))
            pod.spec.containers[0].volume_mounts.insert(0, mount)
            pod.spec.containers.append(k8s.V1Container(
                name=sc["container_name"], command=list(sc["command"]), image=sc["image"], volume_mounts=[mount],
                resources=k8s.V1ResourceRequirements(requests=dict(sc["resources"]["requests"])),
            ))
        return pod

    def cleanup(self, pod, remote_pod, xcom_result=None, context=None):
        # As the provider: a pod that did not succeed raises AirflowException.
        if remote_pod.status.phase != "Succeeded":
            raise AirflowException(f"Pod {pod} returned a failure")


class CronDataIntervalTimetable:
    def __init__(self, cron, timezone):
        self.cron, self.timezone = cron, timezone


def stub_modules(provider_version=PROVIDER_VERSION):
    mods = {}

    def mod(name, **attrs):
        m = types.ModuleType(name)
        m.__dict__.update(attrs)
        mods[name] = m
        return m

    mod("airflow", DAG=DAG)
    mod("airflow.exceptions", AirflowException=AirflowException, AirflowFailException=AirflowFailException)
    for name in ("airflow.providers", "airflow.providers.cncf", "airflow.providers.cncf.kubernetes.operators", "airflow.timetables"):
        mod(name)
    mod("airflow.providers.cncf.kubernetes", __version__=provider_version)
    mod("airflow.providers.cncf.kubernetes.operators.pod", KubernetesPodOperator=KubernetesPodOperator)
    mod("airflow.timetables.interval", CronDataIntervalTimetable=CronDataIntervalTimetable)
    mods["kubernetes.client.models"] = k8s
    mod("kubernetes", client=mod("kubernetes.client", models=k8s))
    return mods


@contextlib.contextmanager
def loaded_dag(provider_version=PROVIDER_VERSION, **env):
    """Imports shelf_dag.py against the stubs with the given scheduler environment."""
    keys = set(env) | {"SHELF_DAG_SHARDS", "SHELF_DAG_INGEST_SHARDS", "SHELF_DAG_NAMESPACE", "SHELF_DAG_START_DATE", "SHELF_DAG_CATCHUP"}
    saved_env = {k: os.environ.get(k) for k in keys}
    mods = stub_modules(provider_version)
    saved_mods = {k: sys.modules.get(k) for k in mods}
    try:
        for k in keys - set(env):
            os.environ.pop(k, None)
        os.environ.update(env)
        sys.modules.update(mods)
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


def to_k8s(obj):
    """A stand-in model (or dict/list of them) as Kubernetes JSON: camelCase
    keys, unset fields dropped."""
    if isinstance(obj, list):
        return [to_k8s(x) for x in obj]
    if isinstance(obj, dict):
        return {k: to_k8s(v) for k, v in obj.items() if v is not None}
    if hasattr(obj, "_k8s"):
        out = {}
        for k, v in obj.__dict__.items():
            if v is None or v == [] and k not in ("args",):
                continue
            out[re.sub(r"_([a-z])", lambda m: m.group(1).upper(), k)] = to_k8s(v)
        return out
    return obj


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
        self.assertFalse(self.dag.catchup, "unpausing must not queue every date since the start date")
        self.assertIsInstance(self.dag.schedule, CronDataIntervalTimetable)
        self.assertEqual((self.dag.schedule.cron, self.dag.schedule.timezone), ("30 2 * * *", "UTC"))
        self.assertIsNotNone(self.dag.start_date.tzinfo)
        self.assertEqual(self.dag.start_date.strftime("%Y-%m-%d"), "2024-01-01")
        self.assertEqual(self.dag.max_active_runs, 1)
        args = self.dag.default_args
        self.assertGreater(args["retries"], 0)
        self.assertTrue(args["retry_exponential_backoff"])
        self.assertGreaterEqual(args["max_retry_delay"], args["retry_delay"])

    def test_catchup_from_environment(self):
        for value, want in (("true", True), ("1", True), ("false", False), ("", False)):
            with self.subTest(value=value), loaded_dag(SHELF_DAG_CATCHUP=value) as mod:
                self.assertEqual(mod.dag.catchup, want)

    def test_provider_floor(self):
        for version, ok in (("10.8.2", False), ("10.5.0", False), ("9.0.1", False), ("10.9.0", True), ("10.10.0", True),
                            ("10.22.0rc1", True), ("11.0.0", True)):
            with self.subTest(version=version):
                if ok:
                    with loaded_dag(provider_version=version):
                        pass
                    continue
                with self.assertRaises(ImportError) as cm:
                    with loaded_dag(provider_version=version):
                        pass
                self.assertIn(">= " + PROVIDER["supported"]["provider_min"], str(cm.exception))
                self.assertIn(version, str(cm.exception))
        self.assertEqual(self.mod.PROVIDER_MIN, PROVIDER["supported"]["provider_min"])

    def test_overrides_match_provider_signatures(self):
        op = self.mod.ShelfPodOperator
        for method in ("cleanup", "build_pod_request_obj"):
            with self.subTest(method=method):
                params = [p for p in inspect.signature(getattr(op, method)).parameters if p != "self"]
                self.assertEqual(params, PROVIDER["KubernetesPodOperator." + method])

    def test_pods_pass_restricted_pod_security(self):
        """Every container of every task's pod, the XCom sidecar included,
        meets the PodSecurity "restricted" rules (the Go test in deploy/
        runs the real evaluator on testdata/rendered_pods.json)."""
        pods = {}
        for tid, op in sorted(self.tasks.items()):
            pod = to_k8s(op.build_pod_request_obj(None))
            pods[tid] = pod
            spec = pod["spec"]
            psc = spec.get("securityContext") or {}
            names = [c["name"] for c in spec["containers"]]
            self.assertEqual(names[0], "shelf", tid)
            if op.do_xcom_push:
                self.assertIn(PROVIDER["xcom_sidecar"]["container_name"], names, tid)
            for c in spec["containers"]:
                with self.subTest(task=tid, container=c["name"]):
                    sc = c.get("securityContext") or {}
                    self.assertIs(sc.get("allowPrivilegeEscalation"), False)
                    self.assertEqual(sc.get("capabilities", {}).get("drop"), ["ALL"])
                    self.assertTrue(sc.get("runAsNonRoot", psc.get("runAsNonRoot")))
                    seccomp = sc.get("seccompProfile") or psc.get("seccompProfile") or {}
                    self.assertIn(seccomp.get("type"), ("RuntimeDefault", "Localhost"))
        want = json.dumps(pods, indent=2, sort_keys=True) + "\n"
        if os.environ.get("SHELF_UPDATE_GOLDEN") == "1":
            with open(RENDERED_PODS, "w") as f:
                f.write(want)
        with open(RENDERED_PODS) as f:
            self.assertEqual(f.read(), want, "testdata/rendered_pods.json is stale: rerun with SHELF_UPDATE_GOLDEN=1")

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

    def test_ingest_shards_from_environment(self):
        for m in (1, 3):
            with self.subTest(ingest_shards=m), loaded_dag(SHELF_DAG_SHARDS="2", SHELF_DAG_INGEST_SHARDS=str(m)) as mod:
                tasks = mod.dag.tasks
                ingests = [f"ingest_{i}" for i in range(m)]
                scores = ["score_0", "score_1"]
                self.assertEqual(set(tasks), {"train", "commit", *scores, *ingests})
                self.assertEqual(tasks["train"].upstream, set(ingests))
                for i, tid in enumerate(ingests):
                    args = tasks[tid].kwargs["arguments"]
                    self.assertEqual(args[0], "ingest")
                    self.assertEqual((flag(args, "--shard"), flag(args, "--shards")), (str(i), str(m)))
                    self.assertEqual((tasks[tid].upstream, tasks[tid].downstream), (set(), {"train"}))
                for tid in ["train", *scores]:
                    self.assertEqual(flag(tasks[tid].kwargs["arguments"], "--ingest-shards"), str(m), tid)
                self.assertNotIn("--ingest-shards", tasks["commit"].kwargs["arguments"])
                names = [t.kwargs["name"] for t in tasks.values()]
                self.assertEqual(len(names), len(set(names)), "pod names are unique")
        with loaded_dag() as mod:
            for tid, t in mod.dag.tasks.items():
                self.assertNotIn("--ingest-shards", t.kwargs["arguments"], tid)

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
                self.assertEqual(res.requests["cpu"], res.limits["cpu"], "workers follow the CPU limit: request = limit")
                env_names = {e.name for e in k["env_vars"]}
                self.assertNotIn("GOMEMLIMIT", env_names, "the binary derives it from the memory limit")
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

    def test_dag_commands_end_to_end(self):
        """The DAG's own tasks, rendered for a logical date, run in the DAG's
        order with the real binary against file:// buckets: train publishes
        a version, every score shard stages its part, commit publishes the
        table and LATEST, all naming train's version. With ingest shards
        first (SHELF_DAG_INGEST_SHARDS), the same version and the same
        table bytes."""
        binary = os.environ.get("SHELF_BIN")
        if not binary:
            if os.environ.get("CI") == "true":
                self.fail("SHELF_BIN not set (deploy/check.sh builds it)")
            self.skipTest("SHELF_BIN not set")
        jinja2 = require("jinja2")
        shards = 3
        runs = {}
        for ingest in (0, 2):
            with self.subTest(ingest_shards=ingest):
                runs[ingest] = self.run_dag(binary, jinja2, shards, ingest)
        self.assertEqual(runs[2][0], runs[0][0], "the DAG with ingest shards trained another version")
        self.assertEqual(runs[2][1], runs[0][1], "the DAG with ingest shards published other table bytes")

    def run_dag(self, binary, jinja2, shards, ingest):
        """Runs the DAG's tasks in order; returns the version and the
        committed parts' bytes."""
        env_dag = {"SHELF_DAG_SHARDS": str(shards)}
        if ingest:
            env_dag["SHELF_DAG_INGEST_SHARDS"] = str(ingest)
        with loaded_dag(**env_dag) as mod, tempfile.TemporaryDirectory() as tmp:
            tasks = mod.dag.tasks
            order, done = [], set()
            while len(order) < len(tasks):  # topological, as the scheduler runs them
                ready = sorted(t for t in tasks if t not in done and tasks[t].upstream <= done)
                self.assertTrue(ready, "the DAG has a cycle")
                ready.reverse()  # ingest_1 before ingest_0, score_2 first: no order among shards
                order += ready
                done |= set(ready)
            self.assertEqual(order[0], "train" if not ingest else f"ingest_{ingest - 1}")
            self.assertEqual(order[-1], "commit")

            class Vars(dict):
                __getattr__ = dict.__getitem__

                def get(self, k, d=None):
                    return dict.get(self, k, d)

            out = os.path.join(tmp, "out")
            ctx = {"ds": "2011-03-31", "var": {"value": Vars(
                shelf_events_url="file://" + os.path.join(REPO, "testdata", "online-retail"),
                shelf_output_url="file://" + out)}}
            env = jinja2.Environment(undefined=jinja2.StrictUndefined)
            results = {}
            for tid in order:
                k = tasks[tid].kwargs
                args = [env.from_string(a).render(ctx) for a in k["arguments"]]
                # The ConfigMap's file is the pod's /etc/shelf/config.yaml; here the bundled sample's.
                args[args.index("--config") + 1] = os.path.join(REPO, "configs", "online-retail.yaml")
                penv = {e.name: env.from_string(e.value).render(ctx) for e in k["env_vars"] if e.value is not None}
                penv["TMPDIR"] = tmp
                run_env = {kk: vv for kk, vv in os.environ.items() if not kk.startswith("SHELF_")}
                run_env.update(penv)
                # A small model: the commands are the subject here, not the model.
                run_env.update({"SHELF_TRAIN_DIM": "8", "SHELF_TRAIN_HIDDEN": "16", "SHELF_TRAIN_EPOCHS": "2",
                                "SHELF_PURCHASE_EPOCHS": "3", "SHELF_EVENTS_LOOKBACK_DAYS": "75"})
                proc = subprocess.run([binary] + args, env=run_env, capture_output=True, text=True, timeout=600)
                self.assertEqual(proc.returncode, 0, f"{tid}: {' '.join(args)}\n{proc.stderr[-3000:]}")
                results[tid] = json.loads(proc.stdout)
            version = results["train"]["version"]
            for tid in order:
                if not tid.startswith("ingest_"):
                    self.assertEqual(results[tid]["version"], version, f"{tid} worked on another version than train's")
            self.assertTrue(results["commit"]["published"])
            part_dir = os.path.join(out, "tables", "recommendations", "dt=2011-03-31")
            with open(os.path.join(part_dir, "_SUCCESS")) as f:
                success = json.load(f)
            self.assertEqual(success["model_version"], version)
            self.assertEqual(len(success["parts"]), shards)
            with open(os.path.join(out, "models", "online-retail", "LATEST")) as f:
                self.assertEqual(f.read().strip(), version)
            parts = {}
            for name in sorted(os.listdir(part_dir)):
                if name.endswith(".parquet"):
                    with open(os.path.join(part_dir, name), "rb") as f:
                        parts[name] = f.read()
            self.assertEqual(len(parts), shards)
            return version, parts

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
