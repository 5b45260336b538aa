package jobs

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gocloud.dev/blob/fileblob"

	"github.com/shelfml/shelf/io/tables"
)

// duckdbScript counts a partition directory's rows and users with DuckDB
// (npm @duckdb/node-api), reading it the way a data engineer would: every
// file of the directory as one table.
const duckdbScript = `
const { DuckDBInstance } = require('@duckdb/node-api');
(async () => {
  const db = await DuckDBInstance.create(':memory:');
  const c = await db.connect();
  const r = await c.runAndReadAll(
    "SELECT count(*)::BIGINT AS n, count(DISTINCT user_id)::BIGINT AS users, min(rank)::BIGINT AS r0, " +
    "count(DISTINCT model_version)::BIGINT AS versions, any_value(source) AS source FROM read_parquet('" + process.argv[2] + "')");
  const row = r.getRowObjectsJson()[0];
  console.log(JSON.stringify(row));
})().catch(e => { console.error(e); process.exit(1); });
`

// A committed recommendations partition is a directory DuckDB reads as a
// table (read_parquet('dt=D/*.parquet')): no sidecar or temporary files
// beside the parts (the _SUCCESS marker, which Spark and Hive skip by its
// leading underscore, is the only other object), and DuckDB finds the rows,
// users and version _SUCCESS names.
func TestPartitionReadsAsATableInDuckDB(t *testing.T) {
	node, err := exec.LookPath("node")
	mods, _ := filepath.Abs("../.ci/node/node_modules")
	if _, serr := os.Stat(filepath.Join(mods, "@duckdb", "node-api")); err != nil || serr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("node or @duckdb/node-api missing (.ci/setup installs them); CI must run this test")
		}
		t.Skip("!!! node or .ci/node/node_modules/@duckdb/node-api missing: DuckDB reading NOT checked (run .ci/setup)")
	}
	// the production openers, file:// URLs as an operator writes them
	dir := filepath.Join(t.TempDir(), "out") // not there yet: file:// outputs create it
	data, err := filepath.Abs(filepath.Dir(sample))
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t)
	cfg.Events.URL, cfg.Output.URL = "file://"+data, "file://"+dir
	res, err := (&Runner{Cfg: cfg, Log: quietLog(), CodeVersion: "test", Now: time.Now}).Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out, err := fileblob.OpenBucket(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	part := filepath.Join(dir, filepath.FromSlash(tables.PartitionPrefix(tables.Recommendations, cfg.Date)))
	entries, err := os.ReadDir(part)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if n := e.Name(); n != "_SUCCESS" && !strings.HasSuffix(n, ".parquet") {
			t.Errorf("%s in the partition directory: a directory reader would trip on it", n)
		}
	}
	succ, err := tables.ReadSuccess(context.Background(), out, tables.Recommendations, cfg.Date)
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(t.TempDir(), "count.js")
	if err := os.WriteFile(script, []byte(duckdbScript), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, script, part+"/*.parquet")
	cmd.Env = append(os.Environ(), "NODE_PATH="+mods)
	got, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("duckdb: %v\n%s", err, stderr)
	}
	var row struct {
		N, Users, R0, Versions json.Number
		Source                 string
	}
	if err := json.Unmarshal(got, &row); err != nil {
		t.Fatalf("%s: %v", got, err)
	}
	n, _ := row.N.Int64()
	users, _ := row.Users.Int64()
	if n != succ.Rows || users == 0 || users*int64(cfg.Score.K) < n || row.Versions.String() != "1" || row.R0.String() != "1" || row.Source == "" {
		t.Fatalf("DuckDB read %s; _SUCCESS says %d rows of version %s (result %s)", got, succ.Rows, succ.ModelVersion, res.Version)
	}
}
