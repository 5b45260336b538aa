package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"gocloud.dev/blob"
	_ "gocloud.dev/blob/fileblob"
	_ "gocloud.dev/blob/s3blob"
	batchv1 "k8s.io/api/batch/v1"

	"github.com/shelfml/shelf/io/blobs/blobstest"
)

// step is one pod of a scheduled sequence: the shelf arguments and the
// literal environment its manifest gives it.
type step struct {
	name string
	args []string
	env  map[string]string
	want int // exit code
}

const seqDate = "2011-03-31"

// shelfBinary builds the command the pods run.
func shelfBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "shelf")
	out, err := exec.Command("go", "build", "-o", bin, "../jobs/shelf").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// kubernetesSteps are the dev overlay's train Job, every index of its
// Indexed score Job (index 0 once before train too: it must exit 1 and be
// retried), and its commit Job, with their rendered args and literal env.
func kubernetesSteps(t *testing.T) []step {
	t.Helper()
	var train, commit step
	var scores []step
	for _, dir := range []string{"overlays/dev/train", "overlays/dev/score", "overlays/dev/commit"} {
		objs, err := render(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			j, ok := o.typed.(*batchv1.Job)
			if !ok {
				continue
			}
			c := shelfContainer(t, dir, &j.Spec.Template.Spec)
			env := map[string]string{}
			for _, e := range c.Env {
				if e.ValueFrom == nil {
					env[e.Name] = e.Value
				}
			}
			env["RUN_DATE"] = seqDate
			expand := func(index int) []string {
				var args []string
				for _, a := range c.Args {
					a = strings.ReplaceAll(a, "$(RUN_DATE)", seqDate)
					a = strings.ReplaceAll(a, "$(JOB_COMPLETION_INDEX)", strconv.Itoa(index))
					args = append(args, a)
				}
				return args
			}
			switch c.Args[0] {
			case "train":
				train = step{name: "train Job", args: expand(0), env: env}
			case "commit":
				commit = step{name: "commit Job", args: expand(0), env: env}
			case "score":
				n := int(*j.Spec.Completions)
				for i := n - 1; i >= 0; i-- { // the indexes start in any order
					scores = append(scores, step{name: fmt.Sprintf("score Job index %d", i), args: expand(i), env: env})
				}
			}
		}
	}
	if train.args == nil || commit.args == nil || len(scores) < 2 {
		t.Fatalf("rendered sequence incomplete: train %v, %d scores, commit %v", train.args, len(scores), commit.args)
	}
	early := scores[len(scores)-1]
	early.name, early.want = "score Job index 0, started before train", 1
	return append(append([]step{early, train}, scores...), commit)
}

// airflowSteps are the DAG's pods as the cncf.kubernetes provider renders
// them (testdata/rendered_pods.json, which test_dag.py keeps equal to the
// DAG), in the DAG's order, with the logical date and the Airflow Variables
// filled in as the scheduler does.
func airflowSteps(t *testing.T, eventsURL, outURL string) []step {
	t.Helper()
	data, err := os.ReadFile("airflow/testdata/rendered_pods.json")
	if err != nil {
		t.Fatal(err)
	}
	var pods map[string]struct {
		Spec struct {
			Containers []struct {
				Name string   `json:"name"`
				Args []string `json:"args"`
				Env  []struct {
					Name      string          `json:"name"`
					Value     *string         `json:"value"`
					ValueFrom json.RawMessage `json:"valueFrom"`
				} `json:"env"`
			} `json:"containers"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(data, &pods); err != nil {
		t.Fatal(err)
	}
	fill := func(s string) string {
		return strings.NewReplacer("{{ ds }}", seqDate, "{{ var.value.shelf_events_url }}", eventsURL,
			"{{ var.value.shelf_output_url }}", outURL).Replace(s)
	}
	var names []string
	for n := range pods {
		names = append(names, n)
	}
	sort.Slice(names, func(a, b int) bool { // train, score_*, commit
		rank := func(n string) int {
			switch {
			case n == "train":
				return 0
			case n == "commit":
				return 2
			}
			return 1
		}
		if ra, rb := rank(names[a]), rank(names[b]); ra != rb {
			return ra < rb
		}
		return names[a] < names[b]
	})
	var steps []step
	for _, n := range names {
		for _, c := range pods[n].Spec.Containers {
			if c.Name != containerName {
				continue
			}
			s := step{name: "DAG task " + n, env: map[string]string{}}
			for _, a := range c.Args {
				s.args = append(s.args, fill(a))
			}
			for _, e := range c.Env {
				if e.Value != nil && e.ValueFrom == nil {
					s.env[e.Name] = fill(*e.Value)
				}
			}
			steps = append(steps, s)
		}
	}
	if len(steps) < 3 {
		t.Fatalf("%d DAG steps", len(steps))
	}
	return steps
}

// runSteps runs a sequence with the real binary against the given buckets
// (the config the pods mount is the bundled sample's here) and checks the
// outcome: every step's exit code, one version across train, the scorers
// and commit, the committed table holding every shard, and LATEST on it.
func runSteps(t *testing.T, bin string, steps []step, eventsURL, outURL string) {
	t.Helper()
	sample, err := filepath.Abs("../configs/online-retail.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	version := ""
	shards := 0
	for _, s := range steps {
		args := append([]string(nil), s.args...)
		for i, a := range args {
			if a == configPath {
				args[i] = sample
			}
			if a == "--shards" && i+1 < len(args) {
				shards, _ = strconv.Atoi(args[i+1])
			}
		}
		cmd := exec.Command(bin, args...)
		env := []string{"TMPDIR=" + tmp}
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "SHELF_") {
				env = append(env, kv)
			}
		}
		for k, v := range s.env {
			env = append(env, k+"="+v)
		}
		// where the data is, and a small model: the sequence is the subject
		env = append(env, "SHELF_EVENTS_URL="+eventsURL, "SHELF_OUTPUT_URL="+outURL, "SHELF_TRAIN_DIM=8", "SHELF_TRAIN_HIDDEN=16",
			"SHELF_TRAIN_EPOCHS=2", "SHELF_PURCHASE_EPOCHS=3", "SHELF_EVENTS_LOOKBACK_DAYS=75")
		cmd.Env = env
		out, err := cmd.Output()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		t.Logf("%-40s shelf %s → exit %d", s.name, strings.Join(s.args, " "), code)
		if code != s.want {
			var stderr []byte
			if ee != nil {
				stderr = ee.Stderr
			}
			t.Fatalf("%s: exit %d, want %d\n%s", s.name, code, s.want, tail(stderr))
		}
		if code != 0 {
			continue
		}
		var res struct {
			Version   string `json:"version"`
			Published bool   `json:"published"`
		}
		if err := json.Unmarshal(out, &res); err != nil {
			t.Fatalf("%s: result %q: %v", s.name, tail(out), err)
		}
		if version == "" {
			version = res.Version
		}
		if res.Version != version {
			t.Fatalf("%s worked on version %s, train published %s", s.name, res.Version, version)
		}
	}
	ctx := context.Background()
	b, err := blob.OpenBucket(ctx, outURL)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	succ, err := b.ReadAll(ctx, "tables/recommendations/dt="+seqDate+"/_SUCCESS")
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Version string            `json:"model_version"`
		Parts   []json.RawMessage `json:"parts"`
	}
	if err := json.Unmarshal(succ, &s); err != nil {
		t.Fatal(err)
	}
	latest, err := b.ReadAll(ctx, "models/online-retail/LATEST")
	if err != nil {
		t.Fatal(err)
	}
	if s.Version != version || len(s.Parts) != shards || strings.TrimSpace(string(latest)) != version {
		t.Fatalf("_SUCCESS names %s with %d parts (want %s, %d), LATEST %q", s.Version, len(s.Parts), version, shards, latest)
	}
	t.Logf("published %s: %d parts committed, LATEST on it", version, len(s.Parts))
}

func tail(b []byte) string {
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

// TestScheduledSequencesAsShipped runs both scheduled paths with the real
// binary, as shipped: the Kubernetes train → Indexed score → commit Jobs
// and the Airflow DAG's tasks, each on file:// and on a real S3 server
// (MinIO, skipped with a loud message when it is not running outside CI).
func TestScheduledSequencesAsShipped(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the pipeline eight times")
	}
	bin := shelfBinary(t)
	data, err := filepath.Abs("../testdata/online-retail")
	if err != nil {
		t.Fatal(err)
	}
	fileEvents := "file://" + data
	for _, store := range []string{"file", "minio"} {
		t.Run(store, func(t *testing.T) {
			events := fileEvents
			outURL := func() string { return "file://" + filepath.Join(t.TempDir(), "out") }
			if store == "minio" {
				events = blobstest.MinIOURL(t)
				ctx := context.Background()
				b, err := blob.OpenBucket(ctx, events)
				if err != nil {
					t.Fatal(err)
				}
				raw, err := os.ReadFile(filepath.Join(data, "online_retail_sample.parquet"))
				if err != nil {
					t.Fatal(err)
				}
				if err := b.WriteAll(ctx, "dumps/online_retail_sample.parquet", raw, nil); err != nil {
					t.Fatal(err)
				}
				b.Close()
				outURL = func() string { return blobstest.MinIOURL(t) }
			}
			t.Run("kubernetes", func(t *testing.T) {
				runSteps(t, bin, kubernetesSteps(t), events, outURL())
			})
			t.Run("airflow", func(t *testing.T) {
				out := outURL()
				runSteps(t, bin, airflowSteps(t, events, out), events, out)
			})
		})
	}
}
