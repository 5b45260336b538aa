package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gocloud.dev/blob"

	"github.com/shelfml/shelf/configs"
	"github.com/shelfml/shelf/io/blobs"
	"github.com/shelfml/shelf/io/blobs/blobstest"
	"github.com/shelfml/shelf/io/synth"
)

// TestIngestShardsPublishTheSameTables: the date run from the dumps, and
// the same date run as the sharded pipeline (3 ingest shards, started out
// of order and one retried, then train, 2 score shards and commit, all
// reading the merged shards), publish the same version and byte-identical
// tables, on file:// (pseudonymised user ids) and on a real S3 server.
func TestIngestShardsPublishTheSameTables(t *testing.T) {
	if testing.Short() {
		t.Skip("trains two models per store")
	}
	asOf := time.Date(2024, 4, 1, 0, 0, 0, 0, time.UTC)
	so := synth.Options{Events: 20000, Users: 800, Items: 600, Days: 40, End: asOf, Seed: 5}
	for _, store := range []string{"file", "s3"} {
		t.Run(store, func(t *testing.T) {
			var eventsURL, direct, sharded string
			var key []byte
			if store == "file" {
				dir := t.TempDir()
				for _, d := range []string{"events", "direct", "sharded"} {
					if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
						t.Fatal(err)
					}
				}
				eventsURL, direct, sharded = "file://"+dir+"/events", "file://"+dir+"/direct", "file://"+dir+"/sharded"
				key = []byte("shard-test-key")
			} else {
				u := blobstest.MinIOURL(t)
				eventsURL, direct, sharded = u+"&prefix=events/", u+"&prefix=direct/", u+"&prefix=sharded/"
			}
			ctx := context.Background()
			evb := openURL(t, eventsURL)
			if _, err := synth.Generate(ctx, evb, so); err != nil {
				t.Fatal(err)
			}
			cfg, err := configs.Load("../configs/synthetic.yaml")
			if err != nil {
				t.Fatal(err)
			}
			cfg.Name, cfg.Date = "sharded", asOf.Format(time.DateOnly)
			cfg.Train.Dim, cfg.Train.Hidden, cfg.Train.Epochs = 8, []int{16}, 2
			cfg.Score.K, cfg.Score.Candidates, cfg.Score.Shards = 5, 20, 2
			cfg.Events.URL = eventsURL
			runner := func(out string, shards int) *Runner {
				c := cfg
				c.Output.URL, c.Events.IngestShards = out, shards
				return &Runner{Cfg: c, Log: quietLog(), CodeVersion: "test", Now: time.Now, PseudonymKey: key}
			}

			want, err := runner(direct, 0).Run(ctx)
			if err != nil {
				t.Fatal(err)
			}

			const n = 3
			r := runner(sharded, n)
			if _, err := r.Train(ctx); err == nil || ExitCode(err) != ExitRetryable || !strings.Contains(err.Error(), "shelf ingest") {
				t.Fatalf("train before the ingest shards: %v, want a retryable error naming shelf ingest", err)
			}
			for _, i := range []int{2, 0, 1, 1} { // out of order, shard 1 retried
				res, err := r.Ingest(ctx, i, n)
				if err != nil {
					t.Fatalf("ingest shard %d: %v", i, err)
				}
				if res.Files == 0 || res.Events == 0 {
					t.Fatalf("ingest shard %d read nothing: %+v", i, res)
				}
			}
			trained, err := r.Train(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for i := range cfg.Score.Shards {
				if _, err := r.Score(ctx, i, cfg.Score.Shards); err != nil {
					t.Fatal(err)
				}
			}
			got, err := r.Commit(ctx, cfg.Score.Shards)
			if err != nil {
				t.Fatal(err)
			}
			if got.Version != want.Version || !got.Published {
				t.Errorf("sharded version %s (published %v), from the dumps %s", got.Version, got.Published, want.Version)
			}
			outA, outB := openURL(t, direct), openURL(t, sharded)
			// As the run report and the result file write it.
			if a, b := jsonOf(t, trained.Accounting), jsonOf(t, want.Accounting); a != b {
				t.Errorf("sharded accounting %s\nfrom the dumps %s", a, b)
			}
			a, b := objects(t, outA, "tables/"), objects(t, outB, "tables/")
			if len(a) == 0 || len(a) != len(b) {
				t.Fatalf("%d table objects from the dumps, %d sharded", len(a), len(b))
			}
			for k, v := range a {
				if !bytes.Equal(v, b[k]) {
					t.Errorf("%s differs", k)
				}
			}
			if key != nil {
				// The shards hold no user id as the dumps spell it.
				for k, v := range objects(t, outB, "runs/") {
					if strings.HasSuffix(k, "users.parquet") && bytes.Contains(v, []byte("u00001")) {
						t.Errorf("%s holds a raw user id", k)
					}
				}
			}
		})
	}
}

func openURL(t *testing.T, u string) *blob.Bucket {
	t.Helper()
	b, err := blobs.Open(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// objects reads every object under prefix.
func objects(t *testing.T, b *blob.Bucket, prefix string) map[string][]byte {
	t.Helper()
	ctx := context.Background()
	list, err := blobs.List(ctx, b, prefix)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, o := range list {
		data, err := blobs.ReadFile(ctx, b, o.Key, blobs.DefaultPolicy())
		if err != nil {
			t.Fatal(err)
		}
		out[o.Key] = data
	}
	return out
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
