package deploy

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	psapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
	sigyaml "sigs.k8s.io/yaml"
)

// restricted evaluates a pod with Kubernetes' own PodSecurity admission
// checks at the "restricted" level, latest version.
func restricted(t *testing.T, meta *metav1.ObjectMeta, spec *corev1.PodSpec) []string {
	t.Helper()
	e, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var why []string
	for _, r := range e.EvaluatePod(psapi.LevelVersion{Level: psapi.LevelRestricted, Version: psapi.LatestVersion()}, meta, spec) {
		if !r.Allowed {
			why = append(why, r.ForbiddenReason+": "+r.ForbiddenDetail)
		}
	}
	return why
}

// TestPodSecurityRestricted: every pod template of every root, and every pod
// the Airflow DAG builds (testdata/rendered_pods.json, written by
// test_dag.py from the provider's own pod construction, XCom sidecar
// included), passes the "restricted" profile.
func TestPodSecurityRestricted(t *testing.T) {
	for _, r := range roots {
		objs, err := render(r.dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			var tmpl *corev1.PodTemplateSpec
			switch v := o.typed.(type) {
			case *batchv1.CronJob:
				tmpl = &v.Spec.JobTemplate.Spec.Template
			case *batchv1.Job:
				tmpl = &v.Spec.Template
			default:
				continue
			}
			if why := restricted(t, &tmpl.ObjectMeta, &tmpl.Spec); len(why) > 0 {
				t.Errorf("%s %s/%s violates PodSecurity restricted: %s", r.dir, o.kind, o.name, strings.Join(why, "; "))
			}
		}
	}
	data, err := os.ReadFile("airflow/testdata/rendered_pods.json")
	if err != nil {
		t.Fatal(err)
	}
	var pods map[string]json.RawMessage
	if err := json.Unmarshal(data, &pods); err != nil {
		t.Fatal(err)
	}
	if len(pods) < 3 {
		t.Fatalf("rendered_pods.json holds %d pods", len(pods))
	}
	names := make([]string, 0, len(pods))
	for n := range pods {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, task := range names {
		var pod corev1.Pod
		if err := sigyaml.UnmarshalStrict(pods[task], &pod); err != nil {
			t.Fatalf("task %s: not a valid Pod: %v", task, err)
		}
		if why := restricted(t, &pod.ObjectMeta, &pod.Spec); len(why) > 0 {
			t.Errorf("Airflow task %s's pod violates PodSecurity restricted: %s", task, strings.Join(why, "; "))
		}
		if task == "train" || task == "commit" {
			found := false
			for _, c := range pod.Spec.Containers {
				found = found || c.Name == "airflow-xcom-sidecar"
			}
			if !found {
				t.Errorf("task %s pushes XCom, but its pod has no sidecar: %s", task, fmt.Sprint(pod.Spec.Containers))
			}
		}
	}
}
