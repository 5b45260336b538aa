package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/shelfml/shelf/io/tables"
	"github.com/shelfml/shelf/model"
	"github.com/shelfml/shelf/model/nn"
)

// PurchaseReport is the purchase model's evaluation on the held-out week.
type PurchaseReport struct {
	HeldOutCutoff string                        `json:"held_out_cutoff"`
	Epochs        int                           `json:"epochs"`
	TrainRows     int                           `json:"train_rows"`
	Metrics       map[string]model.ClassMetrics `json:"metrics"` // model, logistic_rfm, bought_last_7d
	Items         model.NextItemsMetrics        `json:"items"`
	GatePassed    bool                          `json:"gate_passed"`
	GateReason    string                        `json:"gate_reason"`
}

// purchaseModel is what publishing and scoring need.
type purchaseModel struct {
	layers []model.Dense
	scale  model.Standardizer
	report PurchaseReport
}

// rfmColumns are the logistic baseline's recency / frequency / monetary features.
var rfmColumns = []string{"days_since_last_event", "days_since_last_purchase", "log_purchase_days", "log_purchases", "log_spend_90d"}

// stackRows builds training rows from rolling cut-offs (features ≤ t, labels in (t, t+h]).
func stackRows(in *model.Interactions, cutoffs []int64, h int64) (x, y []float32, f int) {
	for _, t := range cutoffs {
		users, xt, ft := model.BuyerFeatures(in, t)
		x = append(x, xt...)
		y = append(y, model.BuyerLabels(in, users, t, h)...)
		f = ft
	}
	return x, y, f
}

func (e *env) purchaseOptions(epochs int) nn.MLPOptions {
	p := e.cfg.Purchase
	return nn.MLPOptions{Hidden: p.Hidden, Epochs: epochs, BatchSize: p.BatchSize, LearningRate: p.LearningRate,
		L2: p.L2, Seed: e.cfg.Seed, Patience: p.Patience}
}

// trainPurchase evaluates the purchase model against its baselines on the
// held-out week (cut-off D+1−horizon), then refits it on the cut-offs
// through that week for the published predictions.
func (e *env) trainPurchase(ctx context.Context, in *model.Interactions) (*purchaseModel, error) {
	done := e.stages.begin("purchase")
	p := e.cfg.Purchase
	h := int64(p.HorizonDays) * 86400
	t0 := e.end.Unix() - h
	var fit []int64 // t0−2h, t0−3h, …
	for j := 2; j <= p.Cutoffs; j++ {
		fit = append(fit, t0-int64(j)*h)
	}
	xTr, yTr, f := stackRows(in, fit, h)
	xVa, yVa, _ := stackRows(in, []int64{t0 - h}, h)
	if len(yTr) == 0 || len(yVa) == 0 {
		return nil, Permanent(fmt.Errorf("purchase: no users before the training cut-offs; shorten purchase.cutoffs or widen events.lookback_days"))
	}
	rawTr := slices.Clone(xTr)
	scale := model.FitStandardizer(xTr, f)
	scale.Apply(xTr)
	scale.Apply(xVa)
	layers, hist, err := nn.TrainClassifier(ctx, xTr, yTr, f, e.purchaseOptions(p.Epochs), xVa, yVa)
	if err != nil {
		return nil, fmt.Errorf("purchase model: %w", err)
	}
	epochs := bestEpochLowest(hist)

	names := model.BuyerFeatureNames(in.Types)
	var cols []int
	for _, c := range rfmColumns {
		cols = append(cols, slices.Index(names, c))
	}
	lr := model.FitLogistic(xTr, yTr, f, cols, 1e-4)
	recentCol := -1
	for _, t := range in.Types {
		if t.Purchase {
			recentCol = slices.Index(names, "log_count_"+t.Name+"_7d")
			break
		}
	}
	if recentCol < 0 {
		return nil, Permanent(fmt.Errorf("purchase: no event type is marked purchase: true"))
	}
	recent := model.FitRecentBuyer(rawTr, yTr, f, recentCol)

	users, xTe, _ := model.BuyerFeatures(in, t0)
	yTe := model.BuyerLabels(in, users, t0, h)
	rawTe := slices.Clone(xTe)
	scale.Apply(xTe)
	preds := map[string][]float32{"model": nil, "logistic_rfm": nil, "bought_last_7d": nil}
	for i := range users {
		row, raw := xTe[i*f:(i+1)*f], rawTe[i*f:(i+1)*f]
		preds["model"] = append(preds["model"], nn.PredictMLP(layers, row))
		preds["logistic_rfm"] = append(preds["logistic_rfm"], lr.Predict(row))
		preds["bought_last_7d"] = append(preds["bought_last_7d"], recent.Predict(raw))
	}
	rep := PurchaseReport{HeldOutCutoff: time.Unix(t0, 0).UTC().Format(time.RFC3339), Epochs: epochs, TrainRows: len(yTr),
		Metrics: map[string]model.ClassMetrics{}}
	for name, pr := range preds {
		rep.Metrics[name] = model.EvaluateClassifier(pr, yTe)
	}
	rep.Items = model.EvaluateNextItems(in, model.NewNextItems(in, t0), t0, h)
	best := "logistic_rfm"
	if rep.Metrics["bought_last_7d"].LogLoss < rep.Metrics[best].LogLoss {
		best = "bought_last_7d"
	}
	bar := rep.Metrics[best].LogLoss * (1 + p.Tolerance)
	rep.GatePassed = rep.Metrics["model"].LogLoss <= bar
	cmp := ">"
	if rep.GatePassed {
		cmp = "<="
	}
	rep.GateReason = fmt.Sprintf("model log-loss %.4f %s %.4f (best baseline %s %.4f)", rep.Metrics["model"].LogLoss, cmp, bar, best, rep.Metrics[best].LogLoss)

	// Refit through the held-out week for the published predictions.
	all := append([]int64{t0}, append([]int64{t0 - h}, fit...)[:p.Cutoffs-1]...)
	xAll, yAll, _ := stackRows(in, all, h)
	scaleAll := model.FitStandardizer(xAll, f)
	scaleAll.Apply(xAll)
	final, _, err := nn.TrainClassifier(ctx, xAll, yAll, f, e.purchaseOptions(epochs), nil, nil)
	if err != nil {
		return nil, fmt.Errorf("purchase model refit: %w", err)
	}
	m := rep.Metrics["model"]
	done(slog.Int("train_rows", len(yTr)), slog.Int("test_users", len(users)), slog.Float64("auc", m.AUC), slog.Float64("log_loss", m.LogLoss),
		slog.Float64("ece", m.ECE), slog.Float64("baseline_log_loss", rep.Metrics[best].LogLoss), slog.Float64("items_hr@5", rep.Items.HR5),
		slog.Bool("gate_passed", rep.GatePassed))
	return &purchaseModel{layers: final, scale: scaleAll, report: rep}, nil
}

// bestEpochLowest is the 1-based epoch with the lowest validation loss.
func bestEpochLowest(hist []nn.EpochStats) int {
	best, bestV := 1, 0.0
	for i, h := range hist {
		if i == 0 || h.Validation < bestV {
			best, bestV = h.Epoch, h.Validation
		}
	}
	return best
}

// weights exports the classifier and its scaling as named tensors.
func (p *purchaseModel) weights() *model.Weights {
	w := &model.Weights{}
	f := len(p.scale.Mean)
	w.Put(model.Tensor{Name: "scale.mean", Shape: []int{f}, Data: p.scale.Mean})
	w.Put(model.Tensor{Name: "scale.std", Shape: []int{f}, Data: p.scale.Std})
	for i, l := range p.layers {
		k := "mlp." + strconv.Itoa(i)
		w.Put(model.Tensor{Name: k + ".w", Shape: []int{l.In, l.Out}, Data: l.W})
		w.Put(model.Tensor{Name: k + ".b", Shape: []int{l.Out}, Data: l.B})
	}
	return w
}

// purchaseFromWeights reverses weights().
func purchaseFromWeights(w *model.Weights) (*purchaseModel, error) {
	mean, ok1 := w.Get("scale.mean")
	std, ok2 := w.Get("scale.std")
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("purchase weights: missing scale tensors")
	}
	p := &purchaseModel{scale: model.Standardizer{Mean: mean.Data, Std: std.Data}}
	for i := 0; ; i++ {
		k := "mlp." + strconv.Itoa(i)
		lw, ok := w.Get(k + ".w")
		if !ok {
			break
		}
		lb, ok := w.Get(k + ".b")
		if !ok || len(lw.Shape) != 2 {
			return nil, fmt.Errorf("purchase weights: layer %d malformed", i)
		}
		p.layers = append(p.layers, model.Dense{In: lw.Shape[0], Out: lw.Shape[1], W: lw.Data, B: lb.Data})
	}
	if len(p.layers) == 0 {
		return nil, fmt.Errorf("purchase weights: no layers")
	}
	return p, nil
}

func (p *purchaseModel) files() ([]versionFile, error) {
	var buf bytes.Buffer
	if err := model.WriteWeights(&buf, p.weights()); err != nil {
		return nil, err
	}
	rep, err := json.MarshalIndent(p.report, "", "  ")
	if err != nil {
		return nil, err
	}
	return []versionFile{{"purchase/weights.shlfw", buf.Bytes()}, {"purchase/metrics.json", append(rep, '\n')}}, nil
}

// scorePurchaseShard writes part shard of the purchase_predictions table:
// P(purchase within the horizon) at D+1 and the most likely items.
func (e *env) scorePurchaseShard(ctx context.Context, in *model.Interactions, p *purchaseModel, version string, shard, shards int) error {
	t := e.end.Unix()
	users, x, f := model.BuyerFeatures(in, t)
	if len(p.scale.Mean) != f {
		return Permanent(fmt.Errorf("purchase model expects %d features, the data gives %d", len(p.scale.Mean), f))
	}
	p.scale.Apply(x)
	next := model.NewNextItems(in, t)
	w, err := tables.NewWriter[tables.PurchasePredictionRow](ctx, e.out, tables.PartKey(tables.PurchasePredictions, e.cfg.Date, shard, shards))
	if err != nil {
		return err
	}
	defer w.Abort()
	var rows []tables.PurchasePredictionRow
	var top []model.Scored
	for i, u := range users {
		if int(u)%shards != shard {
			continue
		}
		row := tables.PurchasePredictionRow{UserID: in.Users.ID(u), PPurchase7d: nn.PredictMLP(p.layers, x[i*f:(i+1)*f]), ModelVersion: version}
		top = next.Top(u, e.cfg.Purchase.TopItems, top[:0])
		for _, s := range top {
			row.PredictedItems = append(row.PredictedItems, tables.PredictedItem{ItemID: in.Items.ID(s.Item), Score: s.Score})
		}
		rows = append(rows, row)
		if len(rows) == 4096 {
			if err := w.Write(rows); err != nil {
				return err
			}
			rows = rows[:0]
		}
	}
	if err := w.Write(rows); err != nil {
		return err
	}
	return w.Close()
}

func (p *purchaseModel) summary() *tables.PurchaseSummary {
	m := p.report.Metrics["model"]
	return &tables.PurchaseSummary{GatePassed: p.report.GatePassed, GateReason: p.report.GateReason, AUC: m.AUC, LogLoss: m.LogLoss, ECE: m.ECE}
}

// loadPurchase reads a version's purchase model when it passed its gate (nil otherwise).
func loadPurchase(ctx context.Context, e *env, m *tables.Manifest) (*purchaseModel, error) {
	if m.Purchase == nil || !m.Purchase.GatePassed {
		return nil, nil
	}
	data, err := tables.ReadVersionFile(ctx, e.out, m, "purchase/weights.shlfw")
	if err != nil {
		return nil, err
	}
	w, err := model.ReadWeights(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("version %s purchase weights: %w", m.Version, err)
	}
	return purchaseFromWeights(w)
}
