package jobs

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
	"gocloud.dev/blob/memblob"

	"github.com/shelfml/shelf/configs"
	"github.com/shelfml/shelf/io/blobs"
	"github.com/shelfml/shelf/io/synth"
	"github.com/shelfml/shelf/io/tables"
	"github.com/shelfml/shelf/model"
)

const sample = "../testdata/online-retail/online_retail_sample.parquet"

// testConfig is the bundled Online Retail config on a short window with a
// small model, so a whole run takes seconds.
func testConfig(t *testing.T) configs.Config {
	t.Helper()
	cfg, err := configs.Load("../configs/online-retail.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Date = "2011-03-31"
	cfg.Events.URL, cfg.Output.URL = "test://events", "test://out"
	cfg.Events.LookbackDays = 75
	cfg.Split.TestDays, cfg.Split.ValidationDays = 14, 14
	cfg.Train.Dim, cfg.Train.Hidden, cfg.Train.Epochs = 16, []int{32, 32}, 4
	cfg.Train.BatchSize = 1024
	cfg.Score.K, cfg.Score.Candidates, cfg.Score.Shards = 10, 100, 2
	// A small sequence encoder: on, so every run test goes through it.
	cfg.Sequence.Dim, cfg.Sequence.MaxLen, cfg.Sequence.Blocks, cfg.Sequence.Epochs, cfg.Sequence.BatchSize = 8, 12, 1, 3, 256
	return cfg
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// buckets gives the runner the same two buckets for every open.
type buckets struct{ events, out *blob.Bucket }

func (b buckets) open(_ context.Context, url string) (*blob.Bucket, error) {
	switch url {
	case "test://events":
		return b.events, nil
	case "test://out":
		return b.out, nil
	}
	return nil, errors.New("unexpected url " + url)
}

func memBuckets(t *testing.T) buckets {
	t.Helper()
	data, err := os.ReadFile(sample)
	if err != nil {
		t.Fatal(err)
	}
	ev := memblob.OpenBucket(nil)
	if err := ev.WriteAll(context.Background(), "online_retail_sample.parquet", data, nil); err != nil {
		t.Fatal(err)
	}
	return buckets{events: ev, out: memblob.OpenBucket(nil)}
}

func fileBuckets(t *testing.T) buckets {
	t.Helper()
	abs, err := filepath.Abs(filepath.Dir(sample))
	if err != nil {
		t.Fatal(err)
	}
	ev, err := fileblob.OpenBucket(abs, nil)
	if err != nil {
		t.Fatal(err)
	}
	out, err := fileblob.OpenBucket(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return buckets{events: ev, out: out}
}

// synthShop writes the synthetic shop so (nothing when so.Events is 0) to a
// mem:// events bucket and returns the buckets with configs/synthetic.yaml
// as of asOf on a small ranking model.
func synthShop(t *testing.T, name string, asOf time.Time, so synth.Options) (buckets, configs.Config) {
	t.Helper()
	b := buckets{events: memblob.OpenBucket(nil), out: memblob.OpenBucket(nil)}
	if so.Events > 0 {
		if _, err := synth.Generate(context.Background(), b.events, so); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := configs.Load("../configs/synthetic.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Name, cfg.Date = name, asOf.Format(time.DateOnly)
	cfg.Events.URL, cfg.Output.URL = "test://events", "test://out"
	cfg.Train.Dim, cfg.Train.Hidden, cfg.Train.Epochs = 8, []int{16}, 2
	cfg.Score.K, cfg.Score.Candidates = 5, 20
	return b, cfg
}

func newRunner(cfg configs.Config, b buckets, force bool) *Runner {
	return &Runner{Cfg: cfg, Log: quietLog(), CodeVersion: "test", Force: force, Now: time.Now, Open: b.open}
}

func readParts(t *testing.T, b *blob.Bucket, date string, n int) [][]byte {
	t.Helper()
	return readTableParts(t, b, tables.Recommendations, date, n)
}

func readTableParts(t *testing.T, b *blob.Bucket, table, date string, n int) [][]byte {
	t.Helper()
	var parts [][]byte
	for _, key := range committedParts(t, b, table, date, n) {
		// With retries, as every reader: through the fault proxy the
		// test's own reads get truncated bodies too.
		data, err := blobs.ReadFile(context.Background(), b, key, blobs.DefaultPolicy())
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, data)
	}
	return parts
}

// committedParts are the keys of the n parts the partition's _SUCCESS lists.
func committedParts(t *testing.T, b *blob.Bucket, table, date string, n int) []string {
	t.Helper()
	s, err := tables.ReadSuccess(context.Background(), b, table, date)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Parts) != n {
		t.Fatalf("%s: _SUCCESS lists %d parts, want %d", table, len(s.Parts), n)
	}
	var keys []string
	for _, p := range s.Parts {
		keys = append(keys, tables.PartitionPrefix(table, date)+p.Path)
	}
	return keys
}

func TestRunEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("trains three models")
	}
	for _, tc := range []struct {
		name string
		mk   func(*testing.T) buckets
	}{{"mem", memBuckets}, {"file", fileBuckets}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			cfg := testConfig(t)
			b := tc.mk(t)
			res, err := newRunner(cfg, b, false).Run(ctx)
			if err != nil {
				t.Fatalf("run: %v", err)
			}
			if !res.Published || !res.Gate.Passed {
				t.Fatalf("not published: %+v", res.Gate)
			}
			acc := res.Accounting
			if !acc.Balanced() || acc.Used == 0 || acc.OutsideWindow == 0 || acc.Rejected["filtered_guest_checkout"] == 0 {
				t.Errorf("accounting: %+v", acc)
			}
			for _, name := range []string{"model", "popularity", "itemknn"} {
				if res.Metrics[name]["users"] == 0 || res.Metrics[name]["ndcg@10"] <= 0 {
					t.Errorf("metrics of %s: %v", name, res.Metrics[name])
				}
			}
			latest, err := tables.Latest(ctx, b.out, cfg.Name)
			if err != nil || latest != res.Version {
				t.Fatalf("LATEST = %q, %v; want %s", latest, err, res.Version)
			}
			m, err := tables.OpenVersion(ctx, b.out, cfg.Name, res.Version)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range m.Files {
				if _, err := tables.ReadVersionFile(ctx, b.out, m, f.Path); err != nil {
					t.Error(err)
				}
			}
			if _, err := tables.ReadSuccess(ctx, b.out, tables.Recommendations, cfg.Date); err != nil {
				t.Fatal(err)
			}
			checkRecommendations(t, b.out, cfg, res.Version)
			checkPurchases(t, b.out, cfg, m)
			ev, err := newRunner(cfg, b, false).Eval(ctx, "")
			if err != nil || !ev.Reproduced || ev.Version != res.Version {
				t.Fatalf("eval did not reproduce the published metrics: %v %+v", err, ev)
			}
			first := readParts(t, b.out, cfg.Date, cfg.Score.Shards)

			// Same date, inputs and config: skipped without --force, and
			// with --force the same version and byte-identical tables.
			again, err := newRunner(cfg, b, false).Run(ctx)
			if err != nil || !again.Skipped || again.Version != res.Version {
				t.Fatalf("second run: skipped=%v version=%s err=%v", again != nil && again.Skipped, again.Version, err)
			}
			forced, err := newRunner(cfg, b, true).Run(ctx)
			if err != nil || forced.Version != res.Version {
				t.Fatalf("forced run: %v (version %s vs %s)", err, forced.Version, res.Version)
			}
			for i, p := range readParts(t, b.out, cfg.Date, cfg.Score.Shards) {
				if !bytes.Equal(p, first[i]) {
					t.Errorf("part %d differs after a forced re-run", i)
				}
			}
		})
	}
}

func checkRecommendations(t *testing.T, b *blob.Bucket, cfg configs.Config, version string) {
	t.Helper()
	ctx := context.Background()
	users := map[string]int{}
	for _, key := range committedParts(t, b, tables.Recommendations, cfg.Date, cfg.Score.Shards) {
		rows, err := tables.ReadAll[tables.RecommendationRow](ctx, b, key)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			if r.ModelVersion != version || r.Rank < 1 || int(r.Rank) > cfg.Score.K {
				t.Fatalf("bad row %+v", r)
			}
			if r.Source == "model" && r.ReasonItemID == nil {
				t.Fatalf("model row without a reason: %+v", r)
			}
			users[r.UserID]++
		}
	}
	if len(users) < 500 {
		t.Fatalf("only %d users have recommendations", len(users))
	}
	for u, n := range users {
		if n != cfg.Score.K {
			t.Fatalf("user %s has %d rows, want %d", u, n, cfg.Score.K)
		}
	}
}

// TestStagesMatchRun runs train → score (2 shards, separately) → commit, as
// Airflow and the Indexed Job do, and expects the tables of a single run.
func TestStagesMatchRun(t *testing.T) {
	if testing.Short() {
		t.Skip("trains three models")
	}
	ctx := context.Background()
	cfg := testConfig(t)
	cfg.Sequence.Blend = []float64{0.3} // the encoder in the published hybrid, whatever validation says
	whole := memBuckets(t)
	res, err := newRunner(cfg, whole, false).Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m, err := tables.OpenVersion(ctx, whole.out, cfg.Name, res.Version)
	if err != nil {
		t.Fatal(err)
	}
	if sel := m.Selection; sel.Sequence != 0.3 || sel.SequenceEpochs < 1 {
		t.Fatalf("selection %+v: want the sequence encoder at 0.3", sel)
	}
	for _, f := range []string{"sequence.shlfw", "evaluate/sequence.shlfw"} {
		if !slices.ContainsFunc(m.Files, func(e tables.FileEntry) bool { return e.Path == f }) {
			t.Fatalf("version %s has no %s", res.Version, f)
		}
	}
	for _, row := range []string{"sequence", "blend_without_sequence"} {
		if _, ok := m.Metrics[row]; !ok {
			t.Fatalf("no %s row in the holdout metrics %v", row, m.Metrics)
		}
	}
	// shelf eval reloads the evaluation encoder and reproduces every row.
	ev, err := newRunner(cfg, whole, false).Eval(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if !ev.Reproduced {
		t.Fatalf("eval did not reproduce the published metrics:\n%v\n%v", ev.Metrics, ev.Published)
	}
	staged := memBuckets(t)
	if _, err := newRunner(cfg, staged, false).Commit(ctx, 2); err == nil {
		t.Fatal("commit before train succeeded")
	}
	tr, err := newRunner(cfg, staged, false).Train(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Version != res.Version {
		t.Fatalf("train version %s, run version %s", tr.Version, res.Version)
	}
	if _, err := newRunner(cfg, staged, false).Commit(ctx, 2); err == nil {
		t.Fatal("commit with no parts succeeded")
	}
	for i := 0; i < 2; i++ {
		if _, err := newRunner(cfg, staged, false).Score(ctx, i, 2); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := newRunner(cfg, staged, false).Commit(ctx, 2); err != nil {
		t.Fatal(err)
	}
	want := readParts(t, whole.out, cfg.Date, 2)
	for i, p := range readParts(t, staged.out, cfg.Date, 2) {
		if !bytes.Equal(p, want[i]) {
			t.Errorf("part %d of the staged run differs from the single run", i)
		}
	}
	// The purchase model, its features and item blend reloaded from the version score the same.
	want = readTableParts(t, whole.out, tables.PurchasePredictions, cfg.Date, 2)
	for i, p := range readTableParts(t, staged.out, tables.PurchasePredictions, cfg.Date, 2) {
		if !bytes.Equal(p, want[i]) {
			t.Errorf("purchase part %d of the staged run differs from the single run", i)
		}
	}
}

func TestBadInputsArePermanent(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t)
	cfg.Events.Columns.User = "NoSuchColumn"
	cfg.Events.Filters = cfg.Events.Filters[1:]
	_, err := newRunner(cfg, memBuckets(t), false).Run(ctx)
	if err == nil || ExitCode(err) != ExitPermanent {
		t.Fatalf("missing column: err=%v exit=%d, want exit 2", err, ExitCode(err))
	}
	cfg = testConfig(t)
	cfg.Train.Loss = "hinge"
	if _, err := newRunner(cfg, memBuckets(t), false).Run(ctx); ExitCode(err) != ExitPermanent {
		t.Fatalf("bad config: %v", err)
	}
	cfg = testConfig(t)
	cfg.Date = "2009-01-01" // no data in the window
	if _, err := newRunner(cfg, memBuckets(t), false).Run(ctx); ExitCode(err) != ExitPermanent {
		t.Fatalf("empty window: %v", err)
	}
}

func TestLockRefusesSecondWriter(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t)
	b := memBuckets(t)
	l, err := blobs.AcquireLock(ctx, b.out, "runs/"+cfg.Date+"/lock", "someone-else", blobs.LockOptions{Lease: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	_, err = newRunner(cfg, b, false).Run(ctx)
	if err == nil || !errors.Is(err, blobs.ErrLocked) || ExitCode(err) != ExitRetryable || !strings.Contains(err.Error(), "someone-else") {
		t.Fatalf("second writer: %v (exit %d)", err, ExitCode(err))
	}
	_ = l
}

func TestDecideGate(t *testing.T) {
	m := func(model, pop, knn float64) map[string]map[string]float64 {
		return map[string]map[string]float64{"model": {"ndcg@10": model}, "popularity": {"ndcg@10": pop}, "itemknn": {"ndcg@10": knn}}
	}
	for _, tc := range []struct {
		name      string
		metrics   map[string]map[string]float64
		tolerance float64
		users     int
		pass      bool
		best      string
		publish   string
	}{
		{"beats both", m(0.10, 0.05, 0.08), 0, 300, true, "itemknn", "model"},
		{"loses to popularity", m(0.04, 0.05, 0.03), 0, 300, false, "popularity", "popularity"},
		{"within tolerance", m(0.076, 0.05, 0.08), 0.1, 300, true, "itemknn", "model"},
		{"outside tolerance", m(0.07, 0.05, 0.08), 0.1, 300, false, "itemknn", "itemknn"},
		{"tie passes", m(0.08, 0.05, 0.08), 0, 300, true, "itemknn", "model"},
		{"too little evidence", m(0.10, 0.05, 0.08), 0, 12, false, "itemknn", "itemknn"},
		{"nothing scores: the prior", m(0, 0, 0), 0, 12, false, "popularity", "popularity"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := decideGate(configs.GateConfig{Metric: "ndcg@10", Tolerance: tc.tolerance}, "ndcg@10", tc.metrics, tc.users, 50)
			if g.Passed != tc.pass || g.BestBaseline != tc.best || g.Publish != tc.publish {
				t.Fatalf("%+v", g)
			}
		})
	}
}

// checkPurchases reads the purchase_predictions partition when the purchase
// model passed its gate, and checks that it is absent otherwise.
func checkPurchases(t *testing.T, b *blob.Bucket, cfg configs.Config, m *tables.Manifest) {
	t.Helper()
	ctx := context.Background()
	if m.Purchase == nil {
		t.Fatal("manifest has no purchase summary")
	}
	if !m.Purchase.GatePassed {
		if _, err := tables.ReadSuccess(ctx, b, tables.PurchasePredictions, cfg.Date); err == nil {
			t.Fatal("purchase table committed although its gate refused")
		}
		t.Logf("purchase gate refused: %s", m.Purchase.GateReason)
		return
	}
	if m.Purchase.AUC <= 0.5 {
		t.Errorf("purchase AUC %v", m.Purchase.AUC)
	}
	n, withItems := 0, 0
	for _, key := range committedParts(t, b, tables.PurchasePredictions, cfg.Date, cfg.Score.Shards) {
		rows, err := tables.ReadAll[tables.PurchasePredictionRow](ctx, b, key)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			if r.PPurchase7d < 0 || r.PPurchase7d > 1 || r.ModelVersion != m.Version || len(r.PredictedItems) > cfg.Purchase.TopItems {
				t.Fatalf("bad row %+v", r)
			}
			n++
			if len(r.PredictedItems) > 0 {
				withItems++
			}
		}
	}
	if n < 500 || withItems < n/2 {
		t.Fatalf("%d purchase rows, %d with items", n, withItems)
	}
}

func TestGateAgainstLatest(t *testing.T) {
	base := tables.GateResult{Passed: true, Model: 0.10, Reason: "ok"}
	g := gateAgainstLatest(base, configs.GateConfig{Tolerance: 0.05}, "ndcg@10", &latestEval{id: "v0", metrics: model.Metrics{"ndcg@10": 0.104}})
	if !g.Passed || g.LatestID != "v0" || *g.Latest != 0.104 {
		t.Fatalf("within tolerance of LATEST: %+v", g)
	}
	g = gateAgainstLatest(base, configs.GateConfig{Tolerance: 0.05}, "ndcg@10", &latestEval{id: "v0", metrics: model.Metrics{"ndcg@10": 0.12}})
	if g.Passed || !strings.Contains(g.Reason, "LATEST v0") {
		t.Fatalf("worse than LATEST: %+v", g)
	}
}

func TestRemapKeepsKnownIDs(t *testing.T) {
	in := &model.Interactions{Users: model.NewVocab(), Items: model.NewVocab()}
	for _, u := range []string{"a", "b", "c"} {
		in.Users.Add(u)
	}
	for _, i := range []string{"x", "y"} {
		in.Items.Add(i)
	}
	old := &model.RankingModel{Dim: 1, NUsers: 2, NItems: 1, User: []float32{1, 2}, Item: []float32{5}, ItemBias: []float32{0.5}}
	ou, _ := model.VocabFromIDs([]string{"b", "a"})
	oi, _ := model.VocabFromIDs([]string{"y"})
	s := &slice{users: []int32{0, 1, 2}, items: []int32{0, 1}}
	m := remap(old, ou, oi, in, s)
	if !slices.Equal(m.User, []float32{2, 1, 0}) || !slices.Equal(m.Item, []float32{0, 5}) || !slices.Equal(m.ItemBias, []float32{0.5, 0.5}) {
		t.Fatalf("remapped %+v", m)
	}
}

func TestPseudonymisedOutputs(t *testing.T) {
	if testing.Short() {
		t.Skip("trains three models")
	}
	ctx := context.Background()
	cfg := testConfig(t)
	cfg.Purchase.Enabled = false
	b := memBuckets(t)
	r := newRunner(cfg, b, false)
	r.PseudonymKey = []byte("test-key")
	res, err := r.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	plain := memBuckets(t)
	pres, err := newRunner(cfg, plain, false).Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if pres.Version == res.Version {
		t.Fatal("pseudonymised and plain runs share a version id")
	}
	p := pseudonym{key: []byte("test-key")}
	pkeys := committedParts(t, plain.out, tables.Recommendations, cfg.Date, cfg.Score.Shards)
	for i, key := range committedParts(t, b.out, tables.Recommendations, cfg.Date, cfg.Score.Shards) {
		rows, err := tables.ReadAll[tables.RecommendationRow](ctx, b.out, key)
		if err != nil {
			t.Fatal(err)
		}
		prows, err := tables.ReadAll[tables.RecommendationRow](ctx, plain.out, pkeys[i])
		if err != nil || len(prows) != len(rows) {
			t.Fatalf("plain table: %d rows vs %d, %v", len(prows), len(rows), err)
		}
		for k := range rows {
			if rows[k].UserID != p.id(prows[k].UserID) || rows[k].ItemID != prows[k].ItemID {
				t.Fatalf("row %d: %q is not the pseudonym of %q", k, rows[k].UserID, prows[k].UserID)
			}
		}
	}
	m, err := tables.OpenVersion(ctx, b.out, cfg.Name, res.Version)
	if err != nil {
		t.Fatal(err)
	}
	data, err := tables.ReadVersionFile(ctx, b.out, m, "vocab/users.parquet")
	if err != nil {
		t.Fatal(err)
	}
	v, err := tables.DecodeVocab(data)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range v.IDs() {
		if len(id) != 32 {
			t.Fatalf("vocab holds %q, not a pseudonym", id)
		}
	}
}
