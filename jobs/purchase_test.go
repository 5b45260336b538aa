package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/shelfml/shelf/configs"
	"github.com/shelfml/shelf/io/synth"
	"github.com/shelfml/shelf/io/tables"
)

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
