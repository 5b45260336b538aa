package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	sigyaml "sigs.k8s.io/yaml"

	"github.com/shelfml/shelf/configs"
)

const (
	kustomizeDir  = "kubernetes"
	containerName = "shelf"
	configMapName = "shelf-config"
	configPath    = "/etc/shelf/config.yaml"
	baseConfig    = "kubernetes/base/config.yaml"
	runAsUser     = 65532
)

// root is one kustomization root and what its render must contain.
type root struct {
	dir       string         // relative to kubernetes/
	namespace string         // "" for the namespace-less base and templates
	kinds     map[string]int // objects by kind
	command   string         // the shelf sub-command of the workload
	schedule  string         // CronJob only
	shards    int            // score, commit and ingest Jobs: completions and --shards
	memLimit  string         // the workload container's memory limit
	scheme    string         // scheme of the events and output URLs the pod sees
}

var nightly = map[string]int{"ConfigMap": 1, "ServiceAccount": 1, "CronJob": 1}

var roots = []root{
	{dir: "base", kinds: nightly, command: "run", schedule: "30 2 * * *", memLimit: "4Gi", scheme: "s3"},
	{dir: "jobs/train", kinds: map[string]int{"Job": 1}, command: "train", memLimit: "4Gi", scheme: "s3"},
	{dir: "jobs/ingest", kinds: map[string]int{"Job": 1}, command: "ingest", shards: 4, memLimit: "4Gi", scheme: "s3"},
	{dir: "jobs/score", kinds: map[string]int{"Job": 1}, command: "score", shards: 4, memLimit: "4Gi", scheme: "s3"},
	{dir: "jobs/commit", kinds: map[string]int{"Job": 1}, command: "commit", shards: 4, memLimit: "512Mi", scheme: "s3"},
	{dir: "jobs/backfill", kinds: map[string]int{"Job": 1}, command: "backfill", memLimit: "8Gi", scheme: "s3"},
	{dir: "overlays/dev", namespace: "shelf-dev", kinds: map[string]int{"ConfigMap": 1, "ServiceAccount": 1, "CronJob": 1, "PersistentVolumeClaim": 1},
		command: "run", schedule: "0 6 * * 1-5", memLimit: "1Gi", scheme: "file"},
	{dir: "overlays/dev/train", namespace: "shelf-dev", kinds: map[string]int{"Job": 1}, command: "train", memLimit: "1Gi", scheme: "file"},
	{dir: "overlays/dev/ingest", namespace: "shelf-dev", kinds: map[string]int{"Job": 1}, command: "ingest", shards: 2, memLimit: "1Gi", scheme: "file"},
	{dir: "overlays/dev/score", namespace: "shelf-dev", kinds: map[string]int{"Job": 1}, command: "score", shards: 2, memLimit: "1Gi", scheme: "file"},
	{dir: "overlays/dev/commit", namespace: "shelf-dev", kinds: map[string]int{"Job": 1}, command: "commit", shards: 2, memLimit: "1Gi", scheme: "file"},
	{dir: "overlays/dev/backfill", namespace: "shelf-dev", kinds: map[string]int{"Job": 1}, command: "backfill", memLimit: "1Gi", scheme: "file"},
	{dir: "overlays/prod", namespace: "shelf", kinds: nightly, command: "run", schedule: "30 2 * * *", memLimit: "24Gi", scheme: "s3"},
	{dir: "overlays/prod/train", namespace: "shelf", kinds: map[string]int{"Job": 1}, command: "train", memLimit: "24Gi", scheme: "s3"},
	{dir: "overlays/prod/ingest", namespace: "shelf", kinds: map[string]int{"Job": 1}, command: "ingest", shards: 8, memLimit: "8Gi", scheme: "s3"},
	{dir: "overlays/prod/score", namespace: "shelf", kinds: map[string]int{"Job": 1}, command: "score", shards: 16, memLimit: "24Gi", scheme: "s3"},
	{dir: "overlays/prod/commit", namespace: "shelf", kinds: map[string]int{"Job": 1}, command: "commit", shards: 16, memLimit: "512Mi", scheme: "s3"},
	{dir: "overlays/prod/backfill", namespace: "shelf", kinds: map[string]int{"Job": 1}, command: "backfill", memLimit: "48Gi", scheme: "s3"},
	{dir: "overlays/gke", namespace: "shelf", kinds: nightly, command: "run", schedule: "30 2 * * *", memLimit: "24Gi", scheme: "gs"},
	{dir: "overlays/gke/key-file", namespace: "shelf", kinds: nightly, command: "run", schedule: "30 2 * * *", memLimit: "24Gi", scheme: "gs"},
}

// object is one rendered object, decoded strictly into its k8s.io/api type.
type object struct {
	kind, name, namespace string
	yaml                  []byte
	typed                 any // *batchv1.CronJob, *batchv1.Job, *corev1.ConfigMap, ...
}

// render builds a kustomization root with the engine of `kubectl kustomize`.
func render(dir string) ([]object, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), filepath.Join(kustomizeDir, dir))
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	var out []object
	for _, r := range m.Resources() {
		b, err := r.AsYAML()
		if err != nil {
			return nil, fmt.Errorf("render %s %s/%s: %w", dir, r.GetKind(), r.GetName(), err)
		}
		typed, err := decodeStrict(b)
		if err != nil {
			return nil, fmt.Errorf("decode %s %s/%s: %w", dir, r.GetKind(), r.GetName(), err)
		}
		out = append(out, object{kind: r.GetKind(), name: r.GetName(), namespace: r.GetNamespace(), yaml: b, typed: typed})
	}
	return out, nil
}

// decodeStrict decodes one object into its typed struct; unknown fields,
// unexpected kinds and wrong API versions are errors.
func decodeStrict(b []byte) (any, error) {
	var tm struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := sigyaml.Unmarshal(b, &tm); err != nil {
		return nil, fmt.Errorf("read kind: %w", err)
	}
	var obj any
	want := "v1"
	switch tm.Kind {
	case "CronJob":
		obj, want = &batchv1.CronJob{}, "batch/v1"
	case "Job":
		obj, want = &batchv1.Job{}, "batch/v1"
	case "ConfigMap":
		obj = &corev1.ConfigMap{}
	case "ServiceAccount":
		obj = &corev1.ServiceAccount{}
	case "PersistentVolumeClaim":
		obj = &corev1.PersistentVolumeClaim{}
	default:
		// Secrets in particular: their values never live in this repository.
		return nil, fmt.Errorf("kind %q %s: not expected in Shelf's manifests", tm.Kind, tm.APIVersion)
	}
	if tm.APIVersion != want {
		return nil, fmt.Errorf("%s: apiVersion %q, want %q", tm.Kind, tm.APIVersion, want)
	}
	if err := sigyaml.UnmarshalStrict(b, obj); err != nil {
		return nil, err
	}
	return obj, nil
}

func TestDecodeStrictRejects(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown field", "apiVersion: batch/v1\nkind: CronJob\nspec:\n  concurencyPolicy: Forbid\n", "unknown field"},
		{"misplaced field", "apiVersion: batch/v1\nkind: Job\nspec:\n  template:\n    spec:\n      podFailurePolicy: {}\n", "unknown field"},
		{"wrong type", "apiVersion: batch/v1\nkind: Job\nspec:\n  completions: four\n", "cannot unmarshal"},
		{"secret", "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {k: v}\n", "not expected"},
		{"wrong version", "apiVersion: batch/v1beta1\nkind: CronJob\n", "apiVersion"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeStrict([]byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("decodeStrict = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestRootsAreListed keeps the table above complete: a new kustomization
// root is not silently left unchecked.
func TestRootsAreListed(t *testing.T) {
	listed := map[string]bool{}
	for _, r := range roots {
		listed[r.dir] = true
	}
	err := filepath.WalkDir(kustomizeDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.Name() != "kustomization.yaml" {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var k struct {
			Kind string `json:"kind"`
		}
		if err := sigyaml.Unmarshal(b, &k); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if k.Kind == "Component" {
			return nil
		}
		dir, _ := filepath.Rel(kustomizeDir, filepath.Dir(path))
		if !listed[filepath.ToSlash(dir)] {
			t.Errorf("kustomization root %s is not in the roots table of deploy_test.go", dir)
		}
		delete(listed, filepath.ToSlash(dir))
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", kustomizeDir, err)
	}
	for dir := range listed {
		t.Errorf("roots table names %s, which has no kustomization.yaml", dir)
	}
}

// TestShardsAgree: in each environment, commit checks as many parts as the
// score Job writes.
func TestShardsAgree(t *testing.T) {
	score, commit := map[string]int{}, map[string]int{}
	for _, r := range roots {
		env := filepath.Dir(r.dir)
		switch r.command {
		case "score":
			score[env] = r.shards
		case "commit":
			commit[env] = r.shards
		}
	}
	if len(score) == 0 || !reflect.DeepEqual(score, commit) {
		t.Fatalf("score shards %v, commit shards %v: want the same per environment", score, commit)
	}
}

func TestKustomizations(t *testing.T) {
	for _, r := range roots {
		t.Run(r.dir, func(t *testing.T) {
			objs, err := render(r.dir)
			if err != nil {
				t.Fatal(err)
			}
			kinds := map[string]int{}
			var cm *corev1.ConfigMap
			for _, o := range objs {
				kinds[o.kind]++
				if o.namespace != r.namespace {
					t.Errorf("%s/%s: namespace %q, want %q", o.kind, o.name, o.namespace, r.namespace)
				}
				if got := labelsOf(o.typed)["app.kubernetes.io/name"]; got != "shelf" {
					t.Errorf("%s/%s: label app.kubernetes.io/name=%q, want shelf", o.kind, o.name, got)
				}
				if err := noInlineSecrets(o.yaml); err != nil {
					t.Errorf("%s/%s: %v", o.kind, o.name, err)
				}
				if c, ok := o.typed.(*corev1.ConfigMap); ok {
					cm = c
				}
			}
			if !reflect.DeepEqual(kinds, r.kinds) {
				t.Errorf("objects by kind = %v, want %v", kinds, r.kinds)
			}
			config := configFile(t, cm)
			for _, o := range objs {
				switch v := o.typed.(type) {
				case *batchv1.CronJob:
					checkCronJob(t, r, v)
					checkJobSpec(t, "CronJob/"+v.Name, &v.Spec.JobTemplate.Spec)
					checkPod(t, r, "CronJob/"+v.Name, &v.Spec.JobTemplate.Spec.Template.Spec, config)
				case *batchv1.Job:
					checkJobSpec(t, "Job/"+v.Name, &v.Spec)
					checkIndexed(t, r, v)
					checkPod(t, r, "Job/"+v.Name, &v.Spec.Template.Spec, config)
				case *corev1.ServiceAccount:
					if v.AutomountServiceAccountToken == nil || *v.AutomountServiceAccountToken {
						t.Errorf("ServiceAccount/%s: automountServiceAccountToken must be false", v.Name)
					}
				}
			}
		})
	}
}

// configFile returns the config.yaml the pods mount: the rendered ConfigMap's,
// or for the template roots (which reference the base's) the base file.
func configFile(t *testing.T, cm *corev1.ConfigMap) []byte {
	t.Helper()
	if cm == nil {
		b, err := os.ReadFile(baseConfig)
		if err != nil {
			t.Fatalf("read base config: %v", err)
		}
		return b
	}
	if cm.Name != configMapName {
		t.Errorf("ConfigMap %s: want the stable name %s (the Job templates reference it)", cm.Name, configMapName)
	}
	data, ok := cm.Data["config.yaml"]
	if !ok || len(cm.Data) != 1 {
		t.Fatalf("ConfigMap %s: keys %v, want only config.yaml", cm.Name, keys(cm.Data))
	}
	return []byte(data)
}

func checkCronJob(t *testing.T, r root, cj *batchv1.CronJob) {
	t.Helper()
	at := "CronJob/" + cj.Name
	s := cj.Spec
	if s.ConcurrencyPolicy != batchv1.ForbidConcurrent {
		t.Errorf("%s: concurrencyPolicy %q, want Forbid", at, s.ConcurrencyPolicy)
	}
	if s.StartingDeadlineSeconds == nil || *s.StartingDeadlineSeconds <= 0 {
		t.Errorf("%s: startingDeadlineSeconds must be set", at)
	}
	if s.TimeZone == nil || *s.TimeZone == "" {
		t.Errorf("%s: timeZone must be set (--date yesterday is a UTC date)", at)
	}
	if s.Schedule != r.schedule {
		t.Errorf("%s: schedule %q, want %q", at, s.Schedule, r.schedule)
	}
	if n := len(strings.Fields(s.Schedule)); n != 5 {
		t.Errorf("%s: schedule %q has %d fields, want 5", at, s.Schedule, n)
	}
	if s.Suspend != nil && *s.Suspend {
		t.Errorf("%s: suspended", at)
	}
}

// checkJobSpec checks the retry contract: exit 2 fails the Job at once,
// disruptions do not count, exit 1 is retried, and finished Jobs go away.
func checkJobSpec(t *testing.T, at string, s *batchv1.JobSpec) {
	t.Helper()
	if s.BackoffLimit == nil && s.BackoffLimitPerIndex == nil {
		t.Errorf("%s: backoffLimit (or backoffLimitPerIndex) must be set", at)
	}
	if s.ActiveDeadlineSeconds == nil || *s.ActiveDeadlineSeconds <= 0 {
		t.Errorf("%s: activeDeadlineSeconds must be set", at)
	}
	if s.TTLSecondsAfterFinished == nil || *s.TTLSecondsAfterFinished <= 0 {
		t.Errorf("%s: ttlSecondsAfterFinished must be set", at)
	}
	if s.Template.Spec.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("%s: restartPolicy %q, want Never (podFailurePolicy needs it)", at, s.Template.Spec.RestartPolicy)
	}
	if s.PodFailurePolicy == nil {
		t.Fatalf("%s: podFailurePolicy missing", at)
	}
	var exit2, disruption bool
	for i, rule := range s.PodFailurePolicy.Rules {
		if e := rule.OnExitCodes; e != nil {
			if e.ContainerName == nil || *e.ContainerName != containerName {
				t.Errorf("%s: podFailurePolicy rule %d: containerName must be %q (an init container's exit must not match)", at, i, containerName)
			}
			if e.Operator == batchv1.PodFailurePolicyOnExitCodesOpIn && slices.Contains(e.Values, 1) && rule.Action != batchv1.PodFailurePolicyActionCount {
				t.Errorf("%s: podFailurePolicy rule %d: exit 1 is retryable, action %s", at, i, rule.Action)
			}
			if rule.Action == batchv1.PodFailurePolicyActionFailJob && e.Operator == batchv1.PodFailurePolicyOnExitCodesOpIn &&
				reflect.DeepEqual(e.Values, []int32{2}) {
				exit2 = true
			}
		}
		for _, c := range rule.OnPodConditions {
			if c.Type == corev1.DisruptionTarget && rule.Action == batchv1.PodFailurePolicyActionIgnore {
				disruption = true
			}
		}
	}
	if !exit2 {
		t.Errorf("%s: podFailurePolicy needs a rule: exit code 2 of %q → FailJob", at, containerName)
	}
	if !disruption {
		t.Errorf("%s: podFailurePolicy needs a rule: DisruptionTarget → Ignore", at)
	}
}

func checkIndexed(t *testing.T, r root, j *batchv1.Job) {
	t.Helper()
	at := "Job/" + j.Name
	indexed := j.Spec.CompletionMode != nil && *j.Spec.CompletionMode == batchv1.IndexedCompletion
	if r.command != "score" && r.command != "ingest" {
		if indexed {
			t.Errorf("%s: only the score and ingest Jobs are Indexed", at)
		}
		return
	}
	if !indexed {
		t.Fatalf("%s: completionMode must be Indexed", at)
	}
	if j.Spec.Completions == nil || int(*j.Spec.Completions) != r.shards {
		t.Errorf("%s: completions %v, want %d", at, deref(j.Spec.Completions), r.shards)
	}
	if j.Spec.Parallelism == nil || *j.Spec.Parallelism < 1 || j.Spec.Completions == nil || *j.Spec.Parallelism > *j.Spec.Completions {
		t.Errorf("%s: parallelism %v must be within 1..completions", at, deref(j.Spec.Parallelism))
	}
	if j.Spec.MaxFailedIndexes == nil || *j.Spec.MaxFailedIndexes != 0 {
		t.Errorf("%s: maxFailedIndexes must be 0: a missing shard must fail the Job", at)
	}
	c := shelfContainer(t, at, &j.Spec.Template.Spec)
	if got := flag(c.Args, "--shards"); got != strconv.Itoa(r.shards) {
		t.Errorf("%s: --shards %q, want %d (= completions)", at, got, r.shards)
	}
	if got := flag(c.Args, "--shard"); got != "$(JOB_COMPLETION_INDEX)" {
		t.Errorf("%s: --shard %q, want $(JOB_COMPLETION_INDEX)", at, got)
	}
	var found bool
	for _, e := range c.Env {
		if e.Name == "JOB_COMPLETION_INDEX" {
			found = e.ValueFrom != nil && e.ValueFrom.FieldRef != nil &&
				e.ValueFrom.FieldRef.FieldPath == "metadata.annotations['batch.kubernetes.io/job-completion-index']"
		}
	}
	if !found {
		t.Errorf("%s: env JOB_COMPLETION_INDEX must come from the job-completion-index annotation", at)
	}
}

var (
	imageRE  = regexp.MustCompile(`^ghcr\.io/shelfml/shelf(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[a-f0-9]{64})$`)
	varRefRE = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)
	dateRE   = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)
	// env names that hold credentials: their value must come from a Secret.
	secretNameRE = regexp.MustCompile(`(?i)(KEY|SECRET|TOKEN|PASSWORD|CREDENTIAL)`)
	// SHELF_* variables that are not settings.
	nonSettingEnv = configs.NonSettingEnv()
)

func checkPod(t *testing.T, r root, at string, p *corev1.PodSpec, config []byte) {
	t.Helper()
	if p.ServiceAccountName != "shelf" {
		t.Errorf("%s: serviceAccountName %q, want shelf", at, p.ServiceAccountName)
	}
	if p.AutomountServiceAccountToken == nil || *p.AutomountServiceAccountToken {
		t.Errorf("%s: automountServiceAccountToken must be false", at)
	}
	if len(p.InitContainers) != 0 || len(p.Containers) != 1 {
		t.Errorf("%s: want exactly one container, have %d (+%d init)", at, len(p.Containers), len(p.InitContainers))
	}
	sc := p.SecurityContext
	if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser != runAsUser ||
		sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s: pod securityContext must set runAsNonRoot, runAsUser %d and seccomp RuntimeDefault", at, runAsUser)
	}
	c := shelfContainer(t, at, p)
	at += "/" + c.Name

	if !imageRE.MatchString(c.Image) || strings.HasSuffix(c.Image, ":latest") {
		t.Errorf("%s: image %q, want ghcr.io/shelfml/shelf with a version tag or digest", at, c.Image)
	}
	if c.ImagePullPolicy != corev1.PullIfNotPresent {
		t.Errorf("%s: imagePullPolicy %q, want IfNotPresent", at, c.ImagePullPolicy)
	}
	if len(c.Command) != 0 {
		t.Errorf("%s: command %v: the image's ENTRYPOINT is /shelf, set args only", at, c.Command)
	}
	cs := c.SecurityContext
	if cs == nil || cs.ReadOnlyRootFilesystem == nil || !*cs.ReadOnlyRootFilesystem ||
		cs.AllowPrivilegeEscalation == nil || *cs.AllowPrivilegeEscalation ||
		cs.RunAsNonRoot == nil || !*cs.RunAsNonRoot || cs.Privileged != nil && *cs.Privileged ||
		cs.Capabilities == nil || !reflect.DeepEqual(cs.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(cs.Capabilities.Add) != 0 {
		t.Errorf("%s: securityContext must be readOnlyRootFilesystem, runAsNonRoot, no privilege escalation, drop ALL", at)
	}

	checkResources(t, r, at, c, p)
	checkVolumes(t, at, c, p)
	env := checkEnv(t, at, c, p)
	checkArgs(t, r, at, c, env)
	checkEffectiveConfig(t, r, at, config, c)
}

func shelfContainer(t *testing.T, at string, p *corev1.PodSpec) *corev1.Container {
	t.Helper()
	for i := range p.Containers {
		if p.Containers[i].Name == containerName {
			return &p.Containers[i]
		}
	}
	t.Fatalf("%s: no container named %q (podFailurePolicy refers to it)", at, containerName)
	return nil
}

func checkResources(t *testing.T, r root, at string, c *corev1.Container, p *corev1.PodSpec) {
	t.Helper()
	req, lim := c.Resources.Requests, c.Resources.Limits
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceEphemeralStorage} {
		rq, okr := req[name]
		l, okl := lim[name]
		if !okr || !okl {
			t.Errorf("%s: %s request and limit must both be set", at, name)
			continue
		}
		if rq.Cmp(l) > 0 {
			t.Errorf("%s: %s request %s > limit %s", at, name, rq.String(), l.String())
		}
	}
	mem := lim[corev1.ResourceMemory]
	if want := resource.MustParse(r.memLimit); mem.Cmp(want) != 0 {
		t.Errorf("%s: memory limit %s, want %s", at, mem.String(), r.memLimit)
	}
	// A batch pod must not be the first one evicted under memory pressure.
	if rq := req[corev1.ResourceMemory]; rq.Cmp(mem) != 0 {
		t.Errorf("%s: memory request %s != limit %s", at, rq.String(), mem.String())
	}
	// The binary sets its heap limit from the memory limit and its workers
	// from the CPU limit: neither is set by hand, and the CPUs a pod is
	// given are the CPUs it may use.
	for _, e := range c.Env {
		if e.Name == "GOMEMLIMIT" {
			t.Errorf("%s: GOMEMLIMIT is derived from the memory limit by the binary; do not set it by hand", at)
		}
	}
	if rq, l := req[corev1.ResourceCPU], lim[corev1.ResourceCPU]; rq.Cmp(l) != 0 {
		t.Errorf("%s: cpu request %s != limit %s (workers follow the limit)", at, rq.String(), l.String())
	}
	// The /tmp emptyDir counts against ephemeral-storage: beyond the limit the
	// kubelet evicts the pod before the sizeLimit is reached.
	eph := lim[corev1.ResourceEphemeralStorage]
	for _, v := range p.Volumes {
		if v.EmptyDir != nil && v.EmptyDir.SizeLimit != nil && v.EmptyDir.SizeLimit.Cmp(eph) > 0 {
			t.Errorf("%s: emptyDir %s sizeLimit %s > ephemeral-storage limit %s", at, v.Name, v.EmptyDir.SizeLimit.String(), eph.String())
		}
	}
}

func checkVolumes(t *testing.T, at string, c *corev1.Container, p *corev1.PodSpec) {
	t.Helper()
	vols := map[string]corev1.Volume{}
	for _, v := range p.Volumes {
		vols[v.Name] = v
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		if _, ok := vols[m.Name]; !ok {
			t.Errorf("%s: mount %s: no volume %q", at, m.MountPath, m.Name)
		}
		mounts[m.MountPath] = m
	}
	if m, ok := mounts["/tmp"]; !ok || vols[m.Name].EmptyDir == nil || vols[m.Name].EmptyDir.SizeLimit == nil {
		t.Errorf("%s: /tmp must be an emptyDir with a sizeLimit (the root filesystem is read-only)", at)
	}
	m, ok := mounts[filepath.Dir(configPath)]
	if !ok || !m.ReadOnly || vols[m.Name].ConfigMap == nil || vols[m.Name].ConfigMap.Name != configMapName {
		t.Errorf("%s: %s must be the ConfigMap %s, read-only", at, filepath.Dir(configPath), configMapName)
	}
}

// checkEnv checks that credentials come only from Secret references and that
// every SHELF_* variable is a setting the binary knows (it refuses unknown
// ones). It returns the literal values.
func checkEnv(t *testing.T, at string, c *corev1.Container, p *corev1.PodSpec) map[string]string {
	t.Helper()
	known := map[string]bool{}
	for _, n := range append(configs.EnvNames(), nonSettingEnv...) {
		known[n] = true
	}
	env := map[string]string{}
	seen := map[string]bool{}
	for _, e := range c.Env {
		if seen[e.Name] {
			t.Errorf("%s: env %s set twice", at, e.Name)
		}
		seen[e.Name] = true
		if strings.HasPrefix(e.Name, "SHELF_") && !known[e.Name] {
			t.Errorf("%s: env %s: not a Shelf setting (the binary exits 2 on unknown SHELF_* names)", at, e.Name)
		}
		if e.Name == "GOOGLE_APPLICATION_CREDENTIALS" {
			// A path, not a secret: the key file must come from a Secret volume.
			if !fromSecretVolume(c, p, e.Value) {
				t.Errorf("%s: %s=%q is not a file of a Secret volume mounted read-only", at, e.Name, e.Value)
			}
			continue
		}
		if secretNameRE.MatchString(e.Name) {
			if e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
				t.Errorf("%s: env %s must come from a secretKeyRef, not a value", at, e.Name)
			}
			continue
		}
		if e.ValueFrom == nil {
			env[e.Name] = e.Value
		}
	}
	for _, f := range c.EnvFrom {
		if f.SecretRef == nil && f.ConfigMapRef == nil {
			t.Errorf("%s: envFrom entry without a secretRef or configMapRef", at)
		}
		if f.Prefix != "" {
			t.Errorf("%s: envFrom prefix %q: the SDKs read the plain names", at, f.Prefix)
		}
	}
	return env
}

// fromSecretVolume reports whether path lies in a read-only mount of a Secret volume.
func fromSecretVolume(c *corev1.Container, p *corev1.PodSpec, path string) bool {
	for _, m := range c.VolumeMounts {
		if !m.ReadOnly || !strings.HasPrefix(path, strings.TrimSuffix(m.MountPath, "/")+"/") {
			continue
		}
		for _, v := range p.Volumes {
			if v.Name == m.Name && v.Secret != nil {
				return true
			}
		}
	}
	return false
}

// checkArgs checks the sub-command and its date arguments, after the kubelet's
// $(VAR) expansion; an undefined $(VAR) would reach the binary verbatim.
func checkArgs(t *testing.T, r root, at string, c *corev1.Container, env map[string]string) {
	t.Helper()
	defined := map[string]bool{}
	for _, e := range c.Env {
		defined[e.Name] = true
	}
	expand := func(s string) string {
		return varRefRE.ReplaceAllStringFunc(s, func(ref string) string {
			name := varRefRE.FindStringSubmatch(ref)[1]
			if !defined[name] {
				t.Errorf("%s: args use %s, which is not in env", at, ref)
			}
			if v, ok := env[name]; ok {
				return v
			}
			return ref
		})
	}
	if len(c.Args) == 0 || c.Args[0] != r.command {
		t.Fatalf("%s: args %v, want the sub-command %q first", at, c.Args, r.command)
	}
	if r.command == "commit" {
		if got := flag(c.Args, "--shards"); got != strconv.Itoa(r.shards) {
			t.Errorf("%s: --shards %q, want %d (the score Job's)", at, got, r.shards)
		}
	}
	if got := flag(c.Args, "--config"); got != configPath {
		t.Errorf("%s: --config %q, want %s", at, got, configPath)
	}
	dateFlags := []string{"--date"}
	if r.command == "backfill" {
		dateFlags = []string{"--from", "--to"}
	}
	for _, f := range dateFlags {
		raw := flag(c.Args, f)
		v := expand(raw)
		switch {
		case r.command == "run" && raw != "yesterday":
			t.Errorf("%s: %s %q, want yesterday (the last complete UTC day)", at, f, raw)
		case v == "today" || v == "yesterday" || dateRE.MatchString(v):
		case r.command == "backfill" && v == "set-me" && varRefRE.MatchString(raw):
			// A template placeholder, set with `kubectl set env` at creation.
		default:
			t.Errorf("%s: %s %q (= %q): want a date, today or yesterday", at, f, raw, v)
		}
	}
	for _, a := range c.Args {
		expand(a)
	}
}

// checkEffectiveConfig loads the mounted config.yaml, applies the pod's
// literal SHELF_* env as the binary does and validates the result.
func checkEffectiveConfig(t *testing.T, r root, at string, file []byte, c *corev1.Container) {
	t.Helper()
	cfg := configs.Default()
	if err := configs.Decode(file, &cfg); err != nil {
		t.Fatalf("%s: config.yaml: %v", at, err)
	}
	var environ []string
	for _, e := range c.Env {
		if strings.HasPrefix(e.Name, "SHELF_") && e.ValueFrom == nil {
			environ = append(environ, e.Name+"="+e.Value)
		}
	}
	if err := cfg.ApplyEnv(environ); err != nil {
		t.Errorf("%s: env: %v", at, err)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("%s: effective config: %v", at, err)
	}
	for name, raw := range map[string]string{"events.url": cfg.Events.URL, "output.url": cfg.Output.URL} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Errorf("%s: %s %q: %v", at, name, raw, err)
			continue
		}
		if u.Scheme != r.scheme {
			t.Errorf("%s: %s %q: scheme %q, want %q", at, name, raw, u.Scheme, r.scheme)
		}
		if u.User != nil {
			t.Errorf("%s: %s carries credentials", at, name)
		}
		// fileblob renames from os.TempDir (the /tmp emptyDir): across mounts that fails.
		if name == "output.url" && u.Scheme == "file" && u.Query().Get("no_tmp_dir") == "" {
			t.Errorf("%s: %s %q: file:// output needs no_tmp_dir", at, name, raw)
		}
	}
}

// noInlineSecrets looks for credentials anywhere in a rendered object.
func noInlineSecrets(b []byte) error {
	for _, re := range []*regexp.Regexp{
		regexp.MustCompile(`AKIA[0-9A-Z]{16}`),                                     // AWS access key id
		regexp.MustCompile(`(?i)(aws_secret_access_key|azure_storage_key)\s*[:=]`), // key: value in config text
		regexp.MustCompile(`://[^/\s:@]+:[^/\s@]+@`),                               // user:password in a URL
		regexp.MustCompile(`(?i)-----BEGIN [A-Z ]*PRIVATE KEY-----`),
	} {
		if loc := re.FindIndex(b); loc != nil {
			return fmt.Errorf("looks like an inline credential: %q", b[loc[0]:loc[1]])
		}
	}
	return nil
}

func TestNoInlineSecrets(t *testing.T) {
	tests := []struct {
		name, text string
		bad        bool
	}{
		{"secret ref", "valueFrom: {secretKeyRef: {name: shelf-storage, key: aws-secret-access-key}}", false},
		{"access key id", "value: AKIAIOSFODNN7EXAMPLE", true},
		{"config key", "  AWS_SECRET_ACCESS_KEY: wJalrXUtnFEMI", true},
		{"url password", "url: s3://user:pw@bucket", true},
		{"url with port", "url: s3://b?endpoint=http://127.0.0.1:9000", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := noInlineSecrets([]byte(tt.text)); (err != nil) != tt.bad {
				t.Fatalf("noInlineSecrets(%q) = %v, want error %v", tt.text, err, tt.bad)
			}
		})
	}
}

// TestKubectlKustomize renders every root with the kubectl on PATH too (its
// embedded kustomize may be older) and expects the same objects.
func TestKubectlKustomize(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("kubectl not on PATH: required when CI=true (deploy/check.sh says which version)")
		}
		t.Skip("kubectl not on PATH")
	}
	for _, r := range roots {
		t.Run(r.dir, func(t *testing.T) {
			objs, err := render(r.dir)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]any{}
			for _, o := range objs {
				want[o.kind+"/"+o.name] = toJSONValue(t, o.yaml)
			}
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, kubectl, "kustomize", filepath.Join(kustomizeDir, r.dir))
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("kubectl kustomize %s: %v: %s", r.dir, err, stderr.String())
			}
			got := map[string]any{}
			for _, doc := range strings.Split(string(out), "\n---\n") {
				if strings.TrimSpace(doc) == "" {
					continue
				}
				v := toJSONValue(t, []byte(doc))
				m, _ := v.(map[string]any)
				meta, _ := m["metadata"].(map[string]any)
				got[fmt.Sprint(m["kind"], "/", meta["name"])] = v
			}
			if len(got) != len(want) {
				t.Fatalf("kubectl kustomize: objects %v, krusty: %v", keys(got), keys(want))
			}
			for k, w := range want {
				if !reflect.DeepEqual(got[k], w) {
					g, _ := json.MarshalIndent(got[k], "", " ")
					wb, _ := json.MarshalIndent(w, "", " ")
					t.Errorf("%s differs:\nkubectl: %s\nkrusty:  %s", k, g, wb)
				}
			}
		})
	}
}

func toJSONValue(t *testing.T, y []byte) any {
	t.Helper()
	j, err := sigyaml.YAMLToJSON(y)
	if err != nil {
		t.Fatalf("yaml to json: %v", err)
	}
	var v any
	if err := json.Unmarshal(j, &v); err != nil {
		t.Fatalf("decode json: %v", err)
	}
	return v
}

func labelsOf(obj any) map[string]string {
	v := reflect.ValueOf(obj).Elem().FieldByName("ObjectMeta")
	if !v.IsValid() {
		return nil
	}
	l, _ := v.FieldByName("Labels").Interface().(map[string]string)
	return l
}

// flag returns the value of --name in args ("--name v" or "--name=v").
func flag(args []string, name string) string {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	return ""
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

// TestDockerfile checks what the image promises the manifests: a static binary
// built with -trimpath, a final stage without a shell running as 65532, and
// /shelf as the exec-form ENTRYPOINT (the manifests set args only).
func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "Dockerfile"))
	if err != nil {
		t.Fatalf("read Dockerfile: %v", err)
	}
	// Join continuation lines, drop comments.
	text := strings.ReplaceAll(string(b), "\\\n", " ")
	var stages [][]string
	args := map[string]string{} // global ARG defaults, before the first FROM
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if rest, ok := strings.CutPrefix(line, "ARG "); ok && len(stages) == 0 {
			k, v, _ := strings.Cut(rest, "=")
			args[k] = v
		}
		if strings.HasPrefix(strings.ToUpper(line), "FROM ") {
			stages = append(stages, nil)
			// every base image fully qualified (podman/buildah resolve no short names)
			f := strings.Fields(line)
			ref := f[1]
			if strings.HasPrefix(ref, "--platform=") {
				if ref != "--platform=$BUILDPLATFORM" {
					t.Errorf("%s: the build stage should run on $BUILDPLATFORM and cross-compile", line)
				}
				ref = f[2]
			}
			img := os.Expand(ref, func(k string) string { return args[k] })
			if host, _, _ := strings.Cut(img, "/"); img != "scratch" && !strings.Contains(host, ".") {
				t.Errorf("FROM %s (%s): not a fully qualified image reference", ref, img)
			}
			line = "FROM " + img
		}
		if len(stages) > 0 {
			stages[len(stages)-1] = append(stages[len(stages)-1], line)
		}
	}
	if len(stages) < 2 {
		t.Fatalf("want a multi-stage build, have %d stage(s)", len(stages))
	}
	all := strings.Join(slices.Concat(stages...), "\n")
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-ldflags", "-s -w", "-X main.version=", "./jobs/shelf", "GOARCH=${TARGETARCH}"} {
		if !strings.Contains(all, want) {
			t.Errorf("build: %q missing", want)
		}
	}
	final := stages[len(stages)-1]
	from := strings.Fields(final[0])[1]
	if from != "scratch" && !strings.HasPrefix(from, "gcr.io/distroless/static") {
		t.Errorf("final stage FROM %s: want distroless static or scratch (no shell)", from)
	}
	if strings.Contains(from, ":latest") {
		t.Errorf("final stage FROM %s: pin a tag", from)
	}
	var user, entrypoint string
	for _, l := range final {
		kw, rest, _ := strings.Cut(l, " ")
		switch strings.ToUpper(kw) {
		case "USER":
			user = strings.TrimSpace(rest)
		case "ENTRYPOINT":
			entrypoint = strings.TrimSpace(rest)
		case "RUN", "CMD", "SHELL":
			t.Errorf("final stage: %s needs a shell the image does not have", kw)
		case "COPY", "ADD":
			if !strings.Contains(rest, "--from=") {
				t.Errorf("final stage: %q copies from the build context; copy only the binary", l)
			}
		}
	}
	if uid, _, _ := strings.Cut(user, ":"); uid != strconv.Itoa(runAsUser) {
		t.Errorf("final stage USER %q, want %d (numeric, so runAsNonRoot can verify it)", user, runAsUser)
	}
	var ep []string
	if err := json.Unmarshal([]byte(entrypoint), &ep); err != nil || !reflect.DeepEqual(ep, []string{"/shelf"}) {
		t.Errorf("ENTRYPOINT %s: want exec form [\"/shelf\"]", entrypoint)
	}
}

// placeholderRE matches the values in the manifests that stand for a real
// shop's: bucket names, the AWS account, the GCP project.
var placeholderRE = regexp.MustCompile(`acme-[a-z0-9-]*[a-z0-9]|example-[a-z0-9-]*[a-z0-9]|123456789012|PROJECT_ID`)

// TestPlaceholdersAreListed: every placeholder a root would deploy as is
// appears in deploy/README.md's "Before you apply" checklist, so that an
// operator finds each one to replace.
func TestPlaceholdersAreListed(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(readme)
	i := strings.Index(s, "## Before you apply")
	if i < 0 {
		t.Fatal(`deploy/README.md has no "## Before you apply" section`)
	}
	checklist := s[i:]
	if j := strings.Index(checklist[3:], "\n## "); j >= 0 {
		checklist = checklist[:j+3]
	}
	found := map[string][]string{}
	for _, r := range roots {
		objs, err := render(r.dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			for _, m := range placeholderRE.FindAllString(string(o.yaml), -1) {
				found[m] = append(found[m], r.dir)
			}
		}
	}
	if len(found) < 3 {
		t.Fatalf("found only %v: the placeholder pattern is stale", found)
	}
	for p, where := range found {
		if !strings.Contains(checklist, "`"+p) {
			t.Errorf("placeholder %q (in %s) is not in the \"Before you apply\" checklist", p, strings.Join(slices.Compact(where), ", "))
		}
	}
}
