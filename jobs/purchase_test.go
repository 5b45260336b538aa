package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"github.com/parquet-go/parquet-go"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shelfml/shelf/configs"
	"github.com/shelfml/shelf/io/synth"
	"github.com/shelfml/shelf/io/tables"
)

// refusedRankingConfig is testConfig with a ranking model that cannot beat
// popularity (one epoch at a negligible learning rate, no blend) and a
// purchase gate that passes.
func refusedRankingConfig(t *testing.T) configs.Config {
	cfg := testConfig(t)
	cfg.Train.Epochs, cfg.Train.LearningRate = 1, 1e-9
	cfg.Train.BlendKNN, cfg.Train.BlendPopularity = []float64{0}, []float64{0}
	cfg.Purchase.Tolerance = 0.5
	return cfg
}

// TestPurchasePublishedWhenRankingRefused: the ranking and purchase gates
// decide separately. A run whose ranking model is refused exits 2 and
// leaves LATEST and the recommendations partition where they were, yet
// commits the purchase table of its version when the purchase model passed;
// in stages, train does it (score and commit never run after exit 2) and
// commit says so.
func TestPurchasePublishedWhenRankingRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("trains three models, three times")
	}
	ctx := context.Background()
	b := memBuckets(t)
	good := testConfig(t)
	first, err := newRunner(good, b, false).Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cfg := refusedRankingConfig(t)
	res, err := newRunner(cfg, b, false).Run(ctx)
	if !errors.Is(err, ErrGateRefused) || ExitCode(err) != ExitPermanent {
		t.Fatalf("run: %v (exit %d), want the ranking gate to refuse with exit 2", err, ExitCode(err))
	}
	if !strings.Contains(err.Error(), "purchase predictions published") {
		t.Errorf("the error does not say the purchase table was published: %v", err)
	}
	if res == nil || res.Published || !res.PurchasePublished || res.Version == first.Version {
		t.Fatalf("result %+v", res)
	}
	if latest, _ := tables.Latest(ctx, b.out, cfg.Name); latest != first.Version {
		t.Fatalf("LATEST = %s, want %s (unchanged)", latest, first.Version)
	}
	if s, err := tables.ReadSuccess(ctx, b.out, tables.Recommendations, cfg.Date); err != nil || s.ModelVersion != first.Version {
		t.Fatalf("recommendations: %+v, %v; want those of %s untouched", s, err, first.Version)
	}
	if s, err := tables.ReadSuccess(ctx, b.out, tables.PurchasePredictions, cfg.Date); err != nil || s.ModelVersion != res.Version {
		t.Fatalf("purchase predictions: %+v, %v; want them committed with %s", s, err, res.Version)
	}
	if err := tables.Verify(ctx, b.out, cfg.Name, cfg.Date); err != nil {
		t.Fatal(err)
	}
	m, err := tables.OpenVersion(ctx, b.out, cfg.Name, res.Version)
	if err != nil {
		t.Fatal(err)
	}
	if m.Gate.Passed || m.Purchase == nil || !m.Purchase.GatePassed {
		t.Fatalf("gates: ranking %+v, purchase %+v", m.Gate, m.Purchase)
	}
	checkPurchases(t, b.out, cfg, m)
	want := readTableParts(t, b.out, tables.PurchasePredictions, cfg.Date, cfg.Score.Shards)

	// In stages on a bucket without LATEST, the refused model is no reason
	// to publish nothing: train exits 0 with the best baseline's table to
	// come; score and commit publish it and the purchase table; LATEST
	// stays empty (no model has passed).
	staged := memBuckets(t)
	tr, err := newRunner(cfg, staged, false).Train(ctx)
	if err != nil || tr.Gate.Passed || tr.TableSource == "model" || tr.TableSource == "" || tr.Version != res.Version {
		t.Fatalf("train: %v, gate %+v, table from %q", err, tr.Gate, tr.TableSource)
	}
	for i := 0; i < cfg.Score.Shards; i++ {
		if _, err := newRunner(cfg, staged, false).Score(ctx, i, cfg.Score.Shards); err != nil {
			t.Fatalf("score %d: %v", i, err)
		}
	}
	cr, err := newRunner(cfg, staged, false).Commit(ctx, cfg.Score.Shards)
	if err != nil || !cr.Published || !cr.PurchasePublished || cr.LatestMoved || cr.TableSource != tr.TableSource {
		t.Fatalf("commit of the baseline table: %v, %+v", err, cr)
	}
	for i, p := range readTableParts(t, staged.out, tables.PurchasePredictions, cfg.Date, cfg.Score.Shards) {
		if !bytes.Equal(p, want[i]) {
			t.Errorf("purchase part %d of the staged run differs from the whole run's", i)
		}
	}
	if latest, _ := tables.Latest(ctx, staged.out, cfg.Name); latest != "" {
		t.Fatalf("LATEST moved to %s", latest)
	}
	s, err := tables.ReadSuccess(ctx, staged.out, tables.Recommendations, cfg.Date)
	if err != nil || s.Source != tr.TableSource || s.ModelVersion != tr.Version {
		t.Fatalf("recommendations: %+v, %v; want %s's table from %s", s, err, tr.Version, tr.TableSource)
	}
	for _, key := range committedParts(t, staged.out, tables.Recommendations, cfg.Date, cfg.Score.Shards) {
		rows, err := tables.ReadAll[tables.RecommendationRow](ctx, staged.out, key)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			if r.Source != tr.TableSource && r.Source != "popularity" {
				t.Fatalf("row from %q in a table from %s: %+v", r.Source, tr.TableSource, r)
			}
		}
	}
}

// TestPurchaseOnSynthetic runs the pipeline on the synthetic shop (views,
// carts, purchases and a catalog): the purchase model beats "bought in the
// last 7 days" on AUC, uses the view/cart and catalog features, and the
// published item lists blend the history with the ranking recommender.
func TestPurchaseOnSynthetic(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the pipeline")
	}
	ctx := context.Background()
	asOf := time.Date(2024, 3, 31, 0, 0, 0, 0, time.UTC)
	b, cfg := synthShop(t, "synthetic", asOf, synth.Options{Events: 120000, Users: 3000, Items: 800, Days: 90, End: asOf, Seed: 7})
	cfg.Purchase.WindowsDays = configs.IntList{3, 14, 60}
	res, err := newRunner(cfg, b, false).Run(ctx)
	if err != nil && !errors.Is(err, ErrGateRefused) {
		t.Fatal(err)
	}
	m, err := tables.OpenVersion(ctx, b.out, cfg.Name, res.Version)
	if err != nil {
		t.Fatal(err)
	}
	data, err := tables.ReadVersionFile(ctx, b.out, m, "purchase/metrics.json")
	if err != nil {
		t.Fatal(err)
	}
	var rep PurchaseReport
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"log_count_view_3d", "log_count_cart_60d", "log_cart_without_purchase_30d", "log_spend_90d",
		"log_distinct_categories", "log_distinct_categories_bought"} {
		if !slices.Contains(rep.Features, f) {
			t.Errorf("feature %s missing from %v", f, rep.Features)
		}
	}
	if slices.Contains(rep.Features, "log_count_view_7d") {
		t.Errorf("purchase.windows_days ignored: %v", rep.Features)
	}
	mod, recent, lr := rep.Metrics["model"], rep.Metrics["bought_last_7d"], rep.Metrics["logistic_rfm"]
	t.Logf("held-out week from %s, %d users, %d buyers", rep.HeldOutCutoff, mod.N, mod.Positives)
	for _, name := range []string{"model", "logistic_rfm", "bought_last_7d"} {
		c := rep.Metrics[name]
		t.Logf("%-15s AUC %.4f  PR AUC %.4f  log-loss %.4f  ECE %.4f", name, c.AUC, c.PRAUC, c.LogLoss, c.ECE)
	}
	for _, name := range []string{"next_items", "ranking", "blend"} {
		v := rep.ItemVariants[name]
		t.Logf("items %-10s HR@5 %.4f  Recall@10 %.4f  (%d users)", name, v.HR5, v.Recall10, v.Users)
	}
	t.Logf("item ranking weight %g chosen on the week from %s: %v", rep.ItemBlend.Weight, rep.ItemBlend.Cutoff, rep.ItemBlend.Validation)
	if mod.AUC <= recent.AUC {
		t.Errorf("model AUC %.4f does not beat bought-in-the-last-7-days %.4f", mod.AUC, recent.AUC)
	}
	if mod.LogLoss > min(recent.LogLoss, lr.LogLoss) || !rep.GatePassed {
		t.Errorf("purchase gate: %s", rep.GateReason)
	}
	if len(rep.ItemBlend.Validation) != len(cfg.Purchase.ItemBlend) || rep.ItemVariants["ranking"].Users == 0 {
		t.Errorf("item blend not selected over the grid: %+v", rep.ItemBlend)
	}
	if rep.ItemVariants["blend"] != rep.Items {
		t.Errorf("published lists %+v, variants %+v", rep.Items, rep.ItemVariants)
	}
	checkPurchases(t, b.out, cfg, m)
}

// TestNonFiniteAmountsDoNotReachTheModels: one +Inf price and one price ×
// quantity beyond float range among a synthetic shop's events once made the
// purchase stage spin forever on NaN predictions. Now those rows are
// rejected with their reason and the run completes.
func TestNonFiniteAmountsDoNotReachTheModels(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the pipeline")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	asOf := time.Date(2024, 3, 31, 0, 0, 0, 0, time.UTC)
	b, cfg := synthShop(t, "synthetic", asOf, synth.Options{Events: 60000, Users: 2000, Items: 500, Days: 90, End: asOf, Seed: 3})
	var buf bytes.Buffer
	w := parquet.NewGenericWriter[synth.Row](&buf)
	w.Write([]synth.Row{
		{UserID: "u1", ItemID: "i1", EventType: "purchase", TS: asOf.Add(-48 * time.Hour), Quantity: 1, Price: math.Inf(1)},
		{UserID: "u2", ItemID: "i2", EventType: "purchase", TS: asOf.Add(-30 * time.Hour), Quantity: 2147483647, Price: 1e300},
	})
	w.Close()
	if err := b.events.WriteAll(ctx, "dt=2024-03-29/part-hostile.parquet", buf.Bytes(), nil); err != nil {
		t.Fatal(err)
	}
	res, err := newRunner(cfg, b, false).Run(ctx)
	if err != nil && !errors.Is(err, ErrGateRefused) {
		t.Fatal(err)
	}
	if res.Accounting.Rejected["bad_price"] != 2 {
		t.Fatalf("rejected %v, want the two hostile rows as bad_price", res.Accounting.Rejected)
	}
}
