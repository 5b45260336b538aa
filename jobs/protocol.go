package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"time"

	"github.com/shelfml/shelf/configs"
	"github.com/shelfml/shelf/model"
)

// Protocols are the offline evaluation protocols of shelf eval --protocol.
var Protocols = []string{"temporal", "leave-one-out", "sampled"}

// SampledNegatives is the number of negatives of the sampled protocol (the
// NCF / SASRec papers' 100).
const SampledNegatives = 100

// ProtocolResult is one protocol run on a dump: Shelf's published hybrid
// ranker and every baseline, fit and measured the same way.
type ProtocolResult struct {
	Protocol   string                        `json:"protocol"`
	Date       string                        `json:"date"` // the data's end (the as-of date)
	Split      string                        `json:"split"`
	TestUsers  int                           `json:"test_users"`
	ValUsers   int                           `json:"validation_users"`
	Dropped    int                           `json:"test_targets_dropped"` // targets whose item training never saw
	Metrics    map[string]map[string]float64 `json:"metrics"`
	Names      []string                      `json:"recommenders"` // row order
	Selection  map[string]any                `json:"selection"`
	Seconds    float64                       `json:"seconds"`
	Negatives  int                           `json:"negatives,omitempty"`
	Validation string                        `json:"validation_split"`
}

// EvalProtocol fits Shelf (the same selection, models and hybrid as a run)
// and its baselines on the configured dump through the as-of date and
// measures them with a standard offline protocol, publishing nothing:
//
//   - temporal: the run's own split (the last test days are the test
//     window, the validation window before them chooses epochs and blend);
//   - leave-one-out: per user, the target is the last item the user
//     touched for the first time (an event of an eval.targets type);
//     training is what the user did before it; the one before that, the
//     same way, is the validation target; full ranking over every training
//     item, the user's training items excluded (score.exclude);
//   - sampled: leave-one-out ranked against SampledNegatives items drawn
//     uniformly from those the user never touched (seeded), as in the papers
//     that report sampled HR@10 / NDCG@10; not comparable with full ranking.
func (r *Runner) EvalProtocol(ctx context.Context, protocol string) (*ProtocolResult, error) {
	if !slices.Contains(Protocols, protocol) {
		return nil, Permanent(fmt.Errorf("eval: protocol %q: want one of %v", protocol, Protocols))
	}
	t0 := time.Now()
	e, err := r.open(ctx)
	if err != nil {
		return nil, err
	}
	defer e.close()
	e.noCkpt = true
	in, _, _, err := e.ingest(ctx, false)
	if err != nil {
		return nil, err
	}
	if len(in.Events) == 0 {
		return nil, Permanent(fmt.Errorf("eval: no events in the window"))
	}
	e.items = in.Items.Len()
	cfg := e.cfg
	_, gateK, _ := configs.ParseMetric(cfg.Gate.Metric)
	ks := withK(cfg.Eval.Ks, gateK)
	gateKey := canonicalMetric(cfg.Gate.Metric)
	res := &ProtocolResult{Protocol: protocol, Date: cfg.Date, Metrics: map[string]map[string]float64{}}
	var sSel, sEval *slice
	var hVal, hTest holdout
	switch protocol {
	case "temporal":
		win, err := e.chooseWindows(in)
		if err != nil {
			return nil, err
		}
		e.win = &win
		testStart, valStart := win.starts(e.end)
		sSel = e.newSlice(in, valStart)
		hVal = e.newHoldout(in, sSel, valStart, testStart, ks)
		sEval = e.newSlice(in, testStart)
		hTest = e.newHoldout(in, sEval, testStart, e.end.Unix(), ks)
		res.Split = fmt.Sprintf("test [%s, %s), %d days", time.Unix(testStart, 0).UTC().Format(time.DateOnly), e.end.UTC().Format(time.DateOnly), win.TestDays)
		res.Validation = fmt.Sprintf("the %d days before the test window", win.ValidationDays)
	default:
		targets := cfg.TargetTypes()
		test := looTargets(in, targets, nil)
		val := looTargets(in, targets, test)
		end := e.end.Unix()
		evEval, evSel := beforeTargets(in.Events, test), beforeTargets(in.Events, val)
		sEval = e.newSliceOf(in, evEval, end)
		hTest = targetHoldout(sEval, test, ks)
		sSel = e.newSliceOf(in, evSel, end)
		hVal = targetHoldout(sSel, val, ks)
		res.Split = "per user: the last first-time item is the test target, training is everything before it"
		res.Validation = "per user: the first-time item before the test target"
	}
	res.TestUsers, res.ValUsers, res.Dropped = len(hTest.in.Users), len(hVal.in.Users), hTest.dropped
	if sSel.nPositives() == 0 || res.TestUsers == 0 {
		return nil, Permanent(fmt.Errorf("eval %s: %d training interactions and %d test users: too little data for this protocol",
			protocol, sSel.nPositives(), res.TestUsers))
	}
	e.log.Info("protocol split", "protocol", protocol, "test_users", res.TestUsers, "validation_users", res.ValUsers,
		"train_positives", sEval.nPositives(), "test_targets_dropped", hTest.dropped)
	var measure func(model.Recommender) (model.Metrics, error)
	if protocol == "sampled" {
		res.Negatives = SampledNegatives
		measure = func(rec model.Recommender) (model.Metrics, error) {
			return model.EvaluateSampled(ctx, rec, hTest.in, SampledNegatives, uint64(cfg.Seed), 2)
		}
	}
	if r.EvalSequence {
		e.cfg.Sequence.Enabled = true
	}
	fe, err := e.fitAndEvaluate(ctx, sSel, hVal, sEval, hTest, gateKey, measure)
	if err != nil {
		return nil, err
	}
	fe.doneEvaluate()
	res.Metrics = fe.metrics
	for _, name := range []string{"model", "neural", "blend_without_neural", "blend_without_sequence", "itemknn_recency", "sequence", "itemknn", "popularity"} {
		if _, ok := res.Metrics[name]; ok {
			res.Names = append(res.Names, name)
		}
	}
	sel := fe.sel
	res.Selection = map[string]any{"epochs": sel.Epochs, "blend_knn": sel.KNN, "blend_popularity": sel.Popularity,
		"item_component": itemSimilarity{orCosine(sel.KNNSimilarity), sel.KNNSimilarityParam}.String(),
		"knn_neighbors":  sel.KNNNeighbors, "knn_history_half_life_days": sel.KNNHistoryHalfLife,
		"knn_history_half_life_events": sel.KNNHistoryHalfLifeEvents}
	if sel.Evidence != "" {
		res.Selection["evidence"] = sel.Evidence
	}
	if fe.seqSel != nil {
		q := e.cfg.Sequence
		res.Selection["blend_sequence"], res.Selection["sequence_epochs"] = sel.Sequence, sel.SequenceEpochs
		res.Selection["sequence_settings"] = fmt.Sprintf("dim %d, %d positions, %d blocks, %d heads, dropout %g, lr %g", q.Dim, q.MaxLen, q.Blocks, q.Heads, q.Dropout, q.LearningRate)
	}
	res.Seconds = time.Since(t0).Seconds()
	e.log.Info("protocol done", slog.String("protocol", protocol), slog.Float64("seconds", round3(res.Seconds)))
	return res, nil
}

func orCosine(s string) string {
	if s == "" {
		return "cosine"
	}
	return s
}

// looTarget is one user's leave-one-out target: the event index and its item.
type looTarget struct {
	item int32
	ts   int64
}

// looTargets picks, per user (global index), the item of the user's last
// event of a target type whose item the user had no earlier event with and
// that has at least one of the user's events strictly before it; with
// before set, only events strictly before that user's target count (and
// users without one there have none here). Users without such an event
// have no target (ts 0).
func looTargets(in *model.Interactions, targets configs.TypeMask, before []looTarget) []looTarget {
	byUser := make([][]int32, in.Users.Len()) // event indices per user, in time order
	for k, ev := range in.Events {
		byUser[ev.User] = append(byUser[ev.User], int32(k))
	}
	out := make([]looTarget, in.Users.Len())
	seen := map[int32]bool{}
	for u, evs := range byUser {
		limit := int64(1<<63 - 1)
		if before != nil {
			if before[u].ts == 0 {
				continue
			}
			limit = before[u].ts
		}
		clear(seen)
		first := int64(-1)
		for _, k := range evs {
			ev := in.Events[k]
			if ev.Time() >= limit {
				break
			}
			if first < 0 {
				first = ev.Time()
			}
			if !seen[ev.Item] {
				seen[ev.Item] = true
				if ev.Time() > first && targets.Has(ev.Type) {
					out[u] = looTarget{item: ev.Item, ts: ev.Time()}
				}
			}
		}
	}
	return out
}

// beforeTargets is the events each user did before their target (all of a
// user's events when they have none), in time order.
func beforeTargets(events []model.Event, t []looTarget) []model.Event {
	out := make([]model.Event, 0, len(events))
	for _, ev := range events {
		if lt := t[ev.User]; lt.ts == 0 || ev.Time() < lt.ts {
			out = append(out, ev)
		}
	}
	return out
}

// targetHoldout is the holdout of one target per user on slice s; targets
// whose item s never saw are dropped and counted.
func targetHoldout(s *slice, t []looTarget, ks []int) holdout {
	h := holdout{}
	for g, lt := range t {
		if lt.ts == 0 {
			continue
		}
		u := s.userLocal[g]
		if u < 0 {
			continue
		}
		it := s.itemLocal[lt.item]
		if it < 0 {
			h.dropped++
			continue
		}
		if s.isExcluded(u, it) {
			continue
		}
		h.in.Users = append(h.in.Users, u)
		h.in.Targets = append(h.in.Targets, []int32{it})
		h.in.Exclude = append(h.in.Exclude, s.exclude(u))
	}
	sort.Sort(byUserHoldout{&h.in})
	h.in.Ks = ks
	h.in.NItems = len(s.items)
	return h
}

type byUserHoldout struct{ in *model.EvalInput }

func (b byUserHoldout) Len() int           { return len(b.in.Users) }
func (b byUserHoldout) Less(i, j int) bool { return b.in.Users[i] < b.in.Users[j] }
func (b byUserHoldout) Swap(i, j int) {
	b.in.Users[i], b.in.Users[j] = b.in.Users[j], b.in.Users[i]
	b.in.Targets[i], b.in.Targets[j] = b.in.Targets[j], b.in.Targets[i]
	b.in.Exclude[i], b.in.Exclude[j] = b.in.Exclude[j], b.in.Exclude[i]
}
