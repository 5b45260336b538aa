package jobs

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shelfml/shelf/io/events"
	"github.com/shelfml/shelf/io/tables"
	"github.com/shelfml/shelf/model"
	"github.com/shelfml/shelf/model/nn"
)

// PurchaseReport is the purchase model's evaluation on the held-out week.
type PurchaseReport struct {
	HeldOutCutoff string                        `json:"held_out_cutoff"`
	Epochs        int                           `json:"epochs"`
	TrainRows     int                           `json:"train_rows"`
	Features      []string                      `json:"features"`
	Metrics       map[string]model.ClassMetrics `json:"metrics"` // model, logistic_rfm, bought_last_7d
	// Items is the published item lists (ItemVariants["blend"]) on the held-out week.
	Items        model.NextItemsMetrics            `json:"items"`
	ItemVariants map[string]model.NextItemsMetrics `json:"item_variants"` // next_items, ranking, blend
	ItemBlend    ItemBlendReport                   `json:"item_blend"`
	GatePassed   bool                              `json:"gate_passed"`
	GateReason   string                            `json:"gate_reason"`
}

// ItemBlendReport is how the ranking recommender's weight in the predicted
// items was chosen: by HR@5 on the week before the held-out one.
type ItemBlendReport struct {
	Weight     float64            `json:"weight"`
	Cutoff     string             `json:"cutoff"`
	Validation map[string]float64 `json:"validation_hr@5"` // per weight tried
	Note       string             `json:"note,omitempty"`  // why the ranking was left out
}

// minBuyers is the fewest positive training rows the purchase model learns from.
const minBuyers = 20

func countPositive(y []float32) int {
	n := 0
	for _, v := range y {
		if v > 0.5 {
			n++
		}
	}
	return n
}

// stepAside is the purchase stage declining data it cannot learn from: the
// run goes on without purchase predictions and says why.
type stepAside struct{ reason string }

func (s stepAside) Error() string { return "purchase predictions skipped: " + s.reason }

// purchaseModel is what publishing and scoring need.
type purchaseModel struct {
	layers []model.Dense
	scale  model.Standardizer
	spec   purchaseSpec
	report PurchaseReport
}

// purchaseSpec is the saved description of a purchase model's inputs
// (purchase/features.json): scoring a version computes the same columns
// in the same order and blends its item lists with the same weight.
type purchaseSpec struct {
	Features     []string `json:"features"`
	WindowsDays  []int    `json:"windows_days"`
	Spend        bool     `json:"spend"`
	CatalogPrice bool     `json:"catalog_price"`
	Categories   bool     `json:"catalog_categories"`
	ItemWeight   float64  `json:"item_ranking_weight"`
	ItemDepth    int      `json:"item_ranking_depth"`
}

// depth is how many of the ranker's items join the predicted items.
func (p purchaseSpec) depth() int { return cmp.Or(p.ItemDepth, itemRankDepth) }

// itemRankDepth is how many of the ranking recommender's items join a
// user's candidate next purchases.
const itemRankDepth = 50

// newPurchaseSpec derives the features from the config: the count windows,
// spend when a price column is mapped (events or catalog), the distinct
// category columns when the catalog maps a category.
func (e *env) newPurchaseSpec(types []model.EventType) purchaseSpec {
	c := e.cfg
	p := purchaseSpec{WindowsDays: c.Purchase.WindowsDays, ItemDepth: itemRankDepth}
	if c.Catalog.Enabled() {
		p.CatalogPrice, p.Categories = c.Catalog.Columns.Price != "", c.Catalog.Columns.Category != ""
	}
	p.Spend = c.Events.Columns.Price != "" || p.CatalogPrice
	p.Features = p.buyerSpec(nil).Names(types)
	return p
}

// buyerSpec binds the spec to the catalog read by ingest (nil: none).
func (p purchaseSpec) buyerSpec(cat *events.Catalog) model.BuyerSpec {
	s := model.BuyerSpec{Windows: p.WindowsDays, Spend: p.Spend}
	if p.Categories {
		s.ItemCategory = []int32{} // the column names need only non-nil
	}
	if cat != nil {
		if p.Categories {
			s.ItemCategory = cat.Category
		}
		if p.CatalogPrice {
			s.ItemPrice = cat.Price
		}
	}
	return s
}

// buyerFeatures computes the spec's rows at cut-off t, checking that they are
// the columns the spec names.
func (e *env) buyerFeatures(g *model.ByUser, p purchaseSpec, t int64) ([]int32, []float32, int, error) {
	if (p.Categories || p.CatalogPrice) && e.catalog == nil {
		return nil, nil, 0, Permanent(errors.New("purchase: the model uses catalog features and no catalog is configured"))
	}
	bs := p.buyerSpec(e.catalog)
	if names := bs.Names(g.In.Types); !slices.Equal(names, p.Features) {
		return nil, nil, 0, Permanent(fmt.Errorf("purchase: the model's features %v differ from the data's %v (event types changed?)", p.Features, names))
	}
	users, x, f := model.BuyerFeatures(g, t, bs)
	return users, x, f, nil
}

// rfmColumns are the logistic baseline's recency / frequency / monetary
// features (the monetary one only with spend features).
var rfmColumns = []string{"days_since_last_event", "days_since_last_purchase", "log_purchase_days", "log_purchases", "log_spend_90d"}

// stackRows builds training rows from rolling cut-offs (features ≤ t, labels in (t, t+h]).
func (e *env) stackRows(g *model.ByUser, p purchaseSpec, cutoffs []int64, h int64) (x, y []float32, f int, err error) {
	for _, t := range cutoffs {
		users, xt, ft, err := e.buyerFeatures(g, p, t)
		if err != nil {
			return nil, nil, 0, err
		}
		x = append(x, xt...)
		y = append(y, model.BuyerLabels(g.In, users, t, h)...)
		f = ft
	}
	return x, y, f, nil
}

func (e *env) purchaseOptions(epochs int) nn.MLPOptions {
	p := e.cfg.Purchase
	return nn.MLPOptions{Hidden: p.Hidden, Epochs: epochs, BatchSize: p.BatchSize, LearningRate: p.LearningRate,
		L2: p.L2, Seed: e.cfg.Seed, Patience: p.Patience}
}

// rankingFit is a ranking model with the slice it was fit on, for the
// predicted items at cut-offs after that slice's.
type rankingFit struct {
	s   *slice
	m   *model.RankingModel
	seq *seqFit // nil: none
	// recs, when set, are the recommenders already built on s with m and
	// seq (the evaluation's): the published one is taken from them.
	recs []namedRecommender
}

// trainPurchase evaluates the purchase model against its baselines on the
// held-out week (cut-off D+1−horizon), then refits it on the cut-offs
// through that week for the published predictions. fits are the ranking
// models the predicted items may use (each only at cut-offs after its data).
func (e *env) trainPurchase(ctx context.Context, in *model.Interactions, fits []rankingFit, sel tables.Selection) (*purchaseModel, error) {
	done := e.stages.begin("purchase")
	meter := e.meter("purchase", "phases", 5)
	defer meter.Finish()
	p := e.cfg.Purchase
	p.HorizonDays, p.Cutoffs = e.win.HorizonDays, e.win.Cutoffs // set, or chosen from the data
	h := int64(p.HorizonDays) * 86400
	t0 := e.end.Unix() - h
	spec := e.newPurchaseSpec(in.Types)
	if !slices.ContainsFunc(in.Types, func(t model.EventType) bool { return t.Purchase }) {
		return nil, stepAside{"no event type is marked purchase: true (events.event_types)"}
	}
	g := model.GroupByUser(in) // every cut-off's features read users' events through it
	var fit []int64            // t0−2h, t0−3h, …
	for j := 2; j <= p.Cutoffs; j++ {
		fit = append(fit, t0-int64(j)*h)
	}
	xTr, yTr, f, err := e.stackRows(g, spec, fit, h)
	if err != nil {
		return nil, err
	}
	xVa, yVa, _, err := e.stackRows(g, spec, []int64{t0 - h}, h)
	if err != nil {
		return nil, err
	}
	if len(yTr) == 0 || len(yVa) == 0 {
		return nil, stepAside{"no users before the training cut-offs (shorten purchase.cutoffs or widen events.lookback_days)"}
	}
	if buyers := countPositive(yTr); buyers < minBuyers {
		return nil, stepAside{fmt.Sprintf("%d buyers in %d training rows: too few to learn who buys (at least %d)", buyers, len(yTr), minBuyers)}
	}
	meter.Add(1, slog.String("phase", "features"), slog.Int("rows", len(yTr)))
	recent := model.FitRecentBuyer(xTr, yTr, f, slices.Index(spec.Features, "days_since_last_purchase")) // on unscaled rows
	scale := model.FitStandardizer(xTr, f)
	scale.Apply(xTr)
	scale.Apply(xVa)
	layers, hist, err := nn.TrainClassifier(ctx, xTr, yTr, f, e.purchaseOptions(p.Epochs), xVa, yVa)
	if err != nil {
		return nil, fmt.Errorf("purchase model: %w", err)
	}
	epochs := bestEpochLowest(hist)
	meter.Add(1, slog.String("phase", "fit"), slog.Int("epochs", epochs))

	var cols []int
	for _, c := range rfmColumns {
		if j := slices.Index(spec.Features, c); j >= 0 {
			cols = append(cols, j)
		}
	}
	lr := model.FitLogistic(xTr, yTr, f, cols, 1e-4)

	users, xTe, _, err := e.buyerFeatures(g, spec, t0)
	if err != nil {
		return nil, err
	}
	yTe := model.BuyerLabels(in, users, t0, h)
	preds := map[string][]float32{"model": nil, "logistic_rfm": nil, "bought_last_7d": nil}
	for i := range users {
		preds["bought_last_7d"] = append(preds["bought_last_7d"], recent.Predict(xTe[i*f:(i+1)*f])) // unscaled
	}
	scale.Apply(xTe)
	for i := range users {
		row := xTe[i*f : (i+1)*f]
		preds["model"] = append(preds["model"], nn.PredictMLP(layers, row))
		preds["logistic_rfm"] = append(preds["logistic_rfm"], lr.Predict(row))
	}
	rep := PurchaseReport{HeldOutCutoff: time.Unix(t0, 0).UTC().Format(time.RFC3339), Epochs: epochs, TrainRows: len(yTr),
		Features: spec.Features, Metrics: map[string]model.ClassMetrics{}}
	for name, pr := range preds {
		rep.Metrics[name] = model.EvaluateClassifier(pr, yTe)
	}
	meter.Add(1, slog.String("phase", "baselines"))
	if err := e.evaluateItems(ctx, g, fits, sel, t0, h, &rep); err != nil {
		return nil, err
	}
	meter.Add(1, slog.String("phase", "predicted items"))
	spec.ItemWeight = rep.ItemBlend.Weight
	best := "logistic_rfm"
	if rep.Metrics["bought_last_7d"].LogLoss < rep.Metrics[best].LogLoss {
		best = "bought_last_7d"
	}
	bar := rep.Metrics[best].LogLoss * (1 + p.Tolerance)
	rep.GatePassed = rep.Metrics["model"].LogLoss <= bar
	op := ">"
	if rep.GatePassed {
		op = "<="
	}
	rep.GateReason = fmt.Sprintf("model log-loss %.4f %s %.4f (best baseline %s %.4f)", rep.Metrics["model"].LogLoss, op, bar, best, rep.Metrics[best].LogLoss)
	if bad := rep.Metrics["model"].Invalid; bad > 0 {
		rep.GatePassed = false
		rep.GateReason = fmt.Sprintf("the model gave %d predictions that are not probabilities (NaN or out of range)", bad)
	}

	// Refit through the held-out week for the published predictions.
	all := append([]int64{t0}, append([]int64{t0 - h}, fit...)[:p.Cutoffs-1]...)
	xAll, yAll, _, err := e.stackRows(g, spec, all, h)
	if err != nil {
		return nil, err
	}
	scaleAll := model.FitStandardizer(xAll, f)
	scaleAll.Apply(xAll)
	final, _, err := nn.TrainClassifier(ctx, xAll, yAll, f, e.purchaseOptions(epochs), nil, nil)
	if err != nil {
		return nil, fmt.Errorf("purchase model refit: %w", err)
	}
	meter.Add(1, slog.String("phase", "refit"))
	m := rep.Metrics["model"]
	done(slog.Int("train_rows", len(yTr)), slog.Int("test_users", len(users)), slog.Float64("auc", m.AUC), slog.Float64("log_loss", m.LogLoss),
		slog.Float64("ece", m.ECE), slog.Float64("baseline_log_loss", rep.Metrics[best].LogLoss), slog.Float64("items_hr@5", rep.Items.HR5),
		slog.Float64("item_ranking_weight", spec.ItemWeight), slog.Bool("gate_passed", rep.GatePassed))
	return &purchaseModel{layers: final, scale: scaleAll, spec: spec, report: rep}, nil
}

// evaluateItems chooses the ranking recommender's weight in the predicted
// items on the week before the held-out one (cut-off t0−h, ranking models
// fit before it) and measures, on the held-out week, the user's own history
// alone (NextItems), the ranking recommender alone (re-purchases allowed)
// and their blend.
func (e *env) evaluateItems(ctx context.Context, g *model.ByUser, fits []rankingFit, sel tables.Selection, t0, h int64, rep *PurchaseReport) error {
	tv := t0 - h
	b := &rep.ItemBlend
	b.Cutoff, b.Validation = time.Unix(tv, 0).UTC().Format(time.RFC3339), map[string]float64{}
	in := g.In
	rv, err := e.itemListsAt(ctx, g, fits, sel, tv, h)
	if err != nil {
		return err
	}
	rt, err := e.itemListsAt(ctx, g, fits, sel, t0, h)
	if err != nil {
		return err
	}
	if rv.rank == nil || rt.rank == nil {
		b.Note = "no ranking model was fit before the validation cut-off (split.test_days + validation_days < 2 × purchase.horizon_days): next items from the history alone"
	} else {
		bestHR, bestR := -1.0, -1.0
		for _, w := range e.cfg.Purchase.ItemBlend {
			m := model.EvaluateNextItems(in, rv.blend(float32(w)), tv, h)
			b.Validation[strconv.FormatFloat(w, 'g', -1, 64)] = m.HR5
			if m.HR5 > bestHR || m.HR5 == bestHR && m.Recall10 > bestR {
				bestHR, bestR, b.Weight = m.HR5, m.Recall10, w
			}
		}
	}
	rep.ItemVariants = map[string]model.NextItemsMetrics{
		"next_items": model.EvaluateNextItems(in, rt.next, t0, h),
		"blend":      model.EvaluateNextItems(in, rt.blend(float32(b.Weight)), t0, h),
	}
	if rt.rank != nil {
		rep.ItemVariants["ranking"] = model.EvaluateNextItems(in, rt.ranking(), t0, h)
	}
	rep.Items = rep.ItemVariants["blend"]
	return ctx.Err()
}

// itemLists are, at one cut-off, users' NextItems lists and ranking lists
// (global item indices), computed once for every blend weight tried.
type itemLists struct {
	next *model.NextItems
	rank map[int32][]model.Scored // nil: no ranking model fit before the cut-off
}

func (l *itemLists) blend(w float32) model.ItemLister {
	return model.ItemListerFunc(func(u int32, k int, dst []model.Scored) []model.Scored {
		return model.BlendNextItems(l.next.Top(u, math.MaxInt, nil), l.rank[u], w, k, dst)
	})
}

func (l *itemLists) ranking() model.ItemLister {
	return model.ItemListerFunc(func(u int32, k int, dst []model.Scored) []model.Scored {
		r := l.rank[u]
		return append(dst, r[:min(k, len(r))]...)
	})
}

// itemListsAt builds the lists at cut-off t for the users who buy in
// (t, t+h]. The ranking recommender is the published hybrid with the
// latest of fits whose data ends by t, carried over to the events ≤ t.
func (e *env) itemListsAt(ctx context.Context, g *model.ByUser, fits []rankingFit, sel tables.Selection, t, h int64) (*itemLists, error) {
	in := g.In
	l := &itemLists{next: model.NewNextItems(g, t)}
	var fit *rankingFit
	for i := range fits {
		if fits[i].s.cutoff <= t+1 && (fit == nil || fits[i].s.cutoff > fit.s.cutoff) {
			fit = &fits[i]
		}
	}
	if fit == nil {
		return l, nil
	}
	// A fit whose slice ends at the cut-off (events < t, or ≤ t) is the
	// slice the lists need: its model and recommenders serve as they are
	// (the events of second t itself are left out when it ends before
	// them). Otherwise the model is carried to a slice of the events ≤ t.
	s, m := fit.s, fit.m
	var rec model.BlockRecommender
	if aligned := fit.s.cutoff == t || fit.s.cutoff == t+1; !aligned {
		s = e.newSlice(in, t+1)
		m = carry(in, fit.m, fit.s, s)
	} else if fit.recs != nil {
		rec, _ = published(fit.recs, sel)
	}
	if rec == nil {
		var err error
		if rec, err = e.recommender(ctx, s, m, fit.seq, sel); err != nil {
			return nil, err
		}
	}
	users := model.Purchasers(in, t, h)
	lists := rankLists(rec, s, users, itemRankDepth, e.scoreWorkers())
	l.rank = make(map[int32][]model.Scored, len(users))
	for i, u := range users {
		l.rank[u] = lists[i]
	}
	return l, nil
}

// carry moves m, fit on slice from, to slice to's indices.
func carry(in *model.Interactions, m *model.RankingModel, from, to *slice) *model.RankingModel {
	users, items := model.NewVocab(), model.NewVocab()
	for _, g := range from.users {
		users.Add(in.Users.ID(g))
	}
	for _, g := range from.items {
		items.Add(in.Items.ID(g))
	}
	return remap(m, users, items, in, to)
}

// rankLists is rec's top depth for each of users (global indices), history
// items included, in global item indices; users outside s get none.
func rankLists(rec model.BlockRecommender, s *slice, users []int32, depth, workers int) [][]model.Scored {
	out := make([][]model.Scored, len(users))
	var local []int32
	var at []int
	for i, u := range users {
		if l := s.userLocal[u]; l >= 0 {
			local, at = append(local, l), append(at, i)
		}
	}
	// Blocks on every worker, like the recommendations: each user's list is
	// independent of the others', so the result does not depend on scheduling.
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([][]model.Scored, scoreBlock)
			for {
				lo := int(next.Add(scoreBlock)) - scoreBlock
				if lo >= len(local) {
					return
				}
				blk := local[lo:min(lo+scoreBlock, len(local))]
				rec.RecommendBlock(blk, depth, nil, buf[:len(blk)])
				for b := range blk {
					out[at[lo+b]] = s.globalList(buf[b])
				}
			}
		}()
	}
	wg.Wait()
	return out
}

// globalList copies a recommendation list of s's local item indices (items
// and reasons) into global ones.
func (s *slice) globalList(local []model.Scored) []model.Scored {
	l := make([]model.Scored, len(local))
	for j, x := range local {
		l[j] = model.Scored{Item: s.items[x.Item], Score: x.Score, Reason: -1}
		if x.Reason >= 0 {
			l[j].Reason = s.items[x.Reason]
		}
	}
	return l
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
	spec, err := json.MarshalIndent(p.spec, "", "  ")
	if err != nil {
		return nil, err
	}
	return []versionFile{{"purchase/weights.shlfw", buf.Bytes()}, {"purchase/features.json", append(spec, '\n')},
		{"purchase/metrics.json", append(rep, '\n')}}, nil
}

// scorePurchaseShard writes part shard of the purchase_predictions table:
// P(purchase within the horizon) at D+1 and the most likely items, the
// user's history blended with o's published ranker. A user's shard is that
// of their recommendations (local index mod shards; users outside the final
// slice by global index). lists, when given, are the ranker's lists by local
// user index (global items) from the recommendations pass; otherwise they
// are computed here.
func (e *env) scorePurchaseShard(ctx context.Context, o *trainOutcome, shard, shards int, lists [][]model.Scored) error {
	in, p := o.in, o.purchase
	t := e.end.Unix()
	g := model.GroupByUser(in)
	users, x, f, err := e.buyerFeatures(g, p.spec, t)
	if err != nil {
		return err
	}
	if len(p.scale.Mean) != f {
		return Permanent(fmt.Errorf("purchase model expects %d features, the data gives %d", len(p.scale.Mean), f))
	}
	p.scale.Apply(x)
	next := model.NewNextItems(g, t)
	var mine []int32
	var rows []int
	for i, u := range users {
		key := int(u)
		if l := o.final.userLocal[u]; l >= 0 {
			key = int(l)
		}
		if key%shards == shard {
			mine, rows = append(mine, u), append(rows, i)
		}
	}
	var rank [][]model.Scored
	switch {
	case lists != nil:
		rank = make([][]model.Scored, len(mine))
		for j, u := range mine {
			if l := o.final.userLocal[u]; l >= 0 {
				rank[j] = lists[l]
			}
		}
	case o.rec != nil:
		rank = rankLists(o.rec, o.final, mine, p.spec.depth(), e.scoreWorkers())
	}
	w, err := tables.NewWriter[tables.PurchasePredictionRow](ctx, e.out, tables.StagedPartKey(tables.PurchasePredictions, e.cfg.Date, o.version, shard, shards),
		partMeta(o.version, shard, shards, len(mine))...)
	if err != nil {
		return err
	}
	defer w.Abort()
	var out []tables.PurchasePredictionRow
	var hist, top []model.Scored
	for j, u := range mine {
		i := rows[j]
		row := tables.PurchasePredictionRow{UserID: in.Users.ID(u), PPurchase7d: nn.PredictMLP(p.layers, x[i*f:(i+1)*f]), ModelVersion: o.version}
		var rl []model.Scored
		if rank != nil {
			rl = rank[j]
		}
		hist = next.Top(u, math.MaxInt, hist[:0])
		top = model.BlendNextItems(hist, rl, float32(p.spec.ItemWeight), e.cfg.Purchase.TopItems, top[:0])
		for _, s := range top {
			row.PredictedItems = append(row.PredictedItems, tables.PredictedItem{ItemID: in.Items.ID(s.Item), Score: s.Score})
		}
		out = append(out, row)
		if len(out) == 4096 {
			if err := w.Write(out); err != nil {
				return err
			}
			out = out[:0]
		}
	}
	if err := w.Write(out); err != nil {
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
	p, err := purchaseFromWeights(w)
	if err != nil {
		return nil, err
	}
	data, err = tables.ReadVersionFile(ctx, e.out, m, "purchase/features.json")
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(data, &p.spec); err != nil {
		return nil, fmt.Errorf("version %s purchase/features.json: %w", m.Version, err)
	}
	return p, nil
}
