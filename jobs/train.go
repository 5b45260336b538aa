package jobs

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"gocloud.dev/gcerrors"

	"github.com/shelfml/shelf/configs"
	"github.com/shelfml/shelf/internal/sysres"
	"github.com/shelfml/shelf/io/blobs"
	"github.com/shelfml/shelf/io/events"
	"github.com/shelfml/shelf/io/tables"
	"github.com/shelfml/shelf/model"
	"github.com/shelfml/shelf/model/nn"
)

// maxValidationUsers bounds the per-epoch validation cost.
const maxValidationUsers = 3000

// trainOutcome is what the train stage hands to scoring and publishing.
type trainOutcome struct {
	in        *model.Interactions
	acc       *events.Accounting
	inputs    []tables.InputObject
	final     *slice // the slice the published model was fit on
	model     *model.RankingModel
	rec       model.BlockRecommender // the published ranker over the final slice
	evalModel *model.RankingModel    // the model the holdout metrics were measured on
	evalSlice *slice                 // the slice it was fit on
	seq       *seqFit                // the published hybrid's sequence encoder (nil: not in it)
	evalSeq   *seqFit                // the encoder the holdout metrics were measured with (nil: none)
	purchase  *purchaseModel         // nil when disabled or refused by its gate
	manifest  tables.Manifest
	history   map[string][]nn.EpochStats
	version   string
	tag       string   // a re-score's inputs digest (tables.Identity); "" = the version's own table
	windows   *Windows // the run's holdout and purchase windows
}

func (e *env) rankingOptions() nn.RankingOptions {
	t := e.cfg.Train
	return nn.RankingOptions{Dim: t.Dim, Hidden: t.Hidden, Epochs: t.Epochs, BatchSize: t.BatchSize, Negatives: t.Negatives,
		LearningRate: t.LearningRate, L2: t.L2, Loss: t.Loss, NegSampling: t.NegSampling, NegAlpha: t.NegAlpha,
		Patience: t.Patience, Seed: e.cfg.Seed, Shards: t.BatchShards, Workers: sysres.Workers(t.Workers), Dropout: t.Dropout, EpochPositives: t.EpochPositives}
}

func (e *env) popularity(s *slice) *model.Popularity {
	return model.PopularityOf(s.popScore)
}

// fit trains the ranking model on a slice, resuming from this run's
// checkpoint of the same phase when one exists.
func (e *env) fit(ctx context.Context, phase string, s *slice, epochs int, validate nn.Validate) (*model.RankingModel, []nn.EpochStats, error) {
	o := e.rankingOptions()
	o.Epochs = epochs
	d := nn.RankingData{NUsers: len(s.users), NItems: len(s.items), Positives: s.positives(), Side: e.sideFeatures(s)}
	ckptKey := e.runPrefix() + "checkpoints/" + phase + ".shlfw"
	if e.noCkpt {
		return e.fitQuiet(ctx, phase, d, o, validate)
	}
	if data, err := blobs.ReadFile(ctx, e.out, ckptKey, blobs.DefaultPolicy()); err == nil {
		w, err := model.ReadWeights(bytes.NewReader(data))
		if err != nil {
			e.log.Warn("ignoring unreadable checkpoint", "key", ckptKey, "err", err)
		} else {
			o.Resume = w
			e.log.Info("resuming from checkpoint", "stage", "train", "phase", phase, "key", ckptKey)
		}
	} else if gcerrors.Code(err) != gcerrors.NotFound {
		return nil, nil, fmt.Errorf("read checkpoint %s: %w", ckptKey, err)
	}
	ckpt := newCheckpointer(e, ckptKey)
	defer ckpt.flush() // the last one (on SIGTERM too) is stored before the fit returns
	o.OnCheckpoint = func(w *model.Weights) error {
		var buf bytes.Buffer
		if err := model.WriteWeights(&buf, w); err != nil {
			return err
		}
		ckpt.put(buf.Bytes())
		return nil
	}
	o.CheckpointEvery = time.Duration(e.cfg.Train.CheckpointSec) * time.Second
	meter := e.meter("train", "epochs", int64(epochs), "phase", phase)
	defer meter.Finish()
	var samples int64
	progress := func(st nn.EpochStats) {
		e.log.Info("epoch", "stage", "train", "phase", phase, "epoch", st.Epoch, "loss", st.Loss,
			"validation", st.Validation, "samples", st.Samples, "seconds", round3(st.Seconds))
		samples += int64(st.Samples)
		meter.Set(int64(st.Epoch), slog.Int64("samples", samples), slog.Float64("loss", round3(st.Loss)))
	}
	m, hist, err := nn.TrainRanking(ctx, d, o, validate, progress)
	if err != nil {
		return nil, nil, fmt.Errorf("train %s: %w", phase, err)
	}
	return m, hist, nil
}

// fitQuiet is fit without checkpoints.
func (e *env) fitQuiet(ctx context.Context, phase string, d nn.RankingData, o nn.RankingOptions, validate nn.Validate) (*model.RankingModel, []nn.EpochStats, error) {
	meter := e.meter("train", "epochs", int64(o.Epochs), "phase", phase)
	defer meter.Finish()
	m, hist, err := nn.TrainRanking(ctx, d, o, validate, func(st nn.EpochStats) {
		e.log.Info("epoch", "stage", "train", "phase", phase, "epoch", st.Epoch, "loss", st.Loss,
			"validation", st.Validation, "samples", st.Samples, "seconds", round3(st.Seconds))
		meter.Set(int64(st.Epoch), slog.Float64("loss", round3(st.Loss)))
	})
	if err != nil {
		return nil, nil, fmt.Errorf("train %s: %w", phase, err)
	}
	return m, hist, nil
}

// train runs split → train → evaluate → gate and publishes the model version
// (files, then manifest). It does not score or move LATEST.
func (e *env) train(ctx context.Context) (*trainOutcome, error) {
	in, acc, inputs, err := e.ingest(ctx, true)
	if err != nil {
		return nil, err
	}
	if err := e.checkModelFits(in); err != nil {
		return nil, err
	}
	e.items = in.Items.Len()
	if err := e.markVersions(ctx, e.forget); err != nil {
		return nil, err
	}
	cfg := e.cfg
	win, err := e.chooseWindows(in)
	if err != nil {
		return nil, err
	}
	e.win = &win
	e.log.Info("windows", "test_days", win.TestDays, "validation_days", win.ValidationDays, "purchase_horizon_days", win.HorizonDays,
		"purchase_cutoffs", win.Cutoffs, "data_span_days", win.SpanDays, "source", win.Source, "reason", win.Reason)
	endTS := e.end.Unix()
	testStart, valStart := win.starts(e.end)
	_, gateK, _ := configs.ParseMetric(cfg.Gate.Metric)
	ks := withK(cfg.Eval.Ks, gateK)
	gateKey := canonicalMetric(cfg.Gate.Metric)

	done := e.stages.begin("split")
	sSel := e.newSlice(in, valStart)
	hVal := e.newHoldout(in, sSel, valStart, testStart, ks)
	sEval := e.newSlice(in, testStart)
	hTest := e.newHoldout(in, sEval, testStart, endTS, ks)
	done(slog.Int("select_positives", sSel.nPositives()), slog.Int("validation_users", len(hVal.in.Users)),
		slog.Int("train_positives", sEval.nPositives()), slog.Int("test_users", len(hTest.in.Users)),
		slog.Int("test_targets_dropped_unseen_item", hTest.dropped))
	if sSel.nPositives() == 0 {
		return nil, Permanent(fmt.Errorf("split: no training events before the validation window (%s; the data spans %.1f days from %s): shorten split.test_days and split.validation_days, or leave them unset",
			time.Unix(valStart, 0).UTC().Format(time.DateOnly), win.SpanDays, win.FirstEvent[:10]))
	}

	out := &trainOutcome{in: in, acc: acc, inputs: inputs, history: map[string][]nn.EpochStats{}, windows: &win}
	fe, err := e.fitAndEvaluate(ctx, sSel, hVal, sEval, hTest, gateKey, nil)
	if err != nil {
		return nil, err
	}
	out.history = fe.history
	sel, mSel, mEval, metrics, epochs, done := fe.sel, fe.mSel, fe.mEval, fe.metrics, fe.sel.Epochs, fe.doneEvaluate
	out.version = versionID(cfg.Date, e.run, inputs)
	latest, err := e.evaluateLatest(ctx, in, sEval, testStart, hTest, out.version)
	if err != nil {
		return nil, err
	}
	if latest != nil {
		metrics["latest"] = latest.metrics
	}
	gate := decideGate(cfg.Gate, gateKey, metrics, len(hTest.in.Users), cfg.Eval.MinUsers)
	if latest != nil {
		gate = gateAgainstLatest(gate, cfg.Gate, gateKey, latest)
		if !gate.Passed && latest.date == cfg.Date && gate.Model < latest.metrics[gateKey] && e.committedBy(ctx, latest.id) {
			// A rerun of a date whose table came from a better version on
			// this same window: that table stays.
			gate.Kept = latest.id
			gate.Reason += fmt.Sprintf("; the date's table, from %s, stays", latest.id)
		}
	}
	sel.Publish = gate.Publish
	done(slog.Any("model", metrics["model"]), slog.Any("neural", metrics["neural"]), slog.Any("popularity", metrics["popularity"]),
		slog.Any("itemknn", metrics["itemknn"]), slog.Any("itemknn_recency", metrics["itemknn_recency"]), slog.Bool("gate_passed", gate.Passed), slog.String("gate", gate.Reason))

	out.final, out.model, out.evalModel, out.evalSlice = sEval, mEval, mEval, sEval
	out.evalSeq = fe.seqEval
	if sel.Sequence > 0 {
		out.seq = fe.seqEval
	}
	// The purchase stage before the refit: its item lists at the evaluation
	// slice's cut-off reuse the recommenders the evaluation built there,
	// which are let go before the refit builds the final ones.
	var purchase *purchaseModel
	var purchaseSkip string
	if cfg.Purchase.Enabled {
		if purchaseSkip = win.PurchaseSkip; purchaseSkip == "" {
			purchase, err = e.trainPurchase(ctx, in, []rankingFit{{s: sSel, m: mSel, seq: blended(fe.seqSel, sel)}, {s: sEval, m: mEval, seq: blended(fe.seqEval, sel), recs: fe.evalRecs}}, sel)
			var sa stepAside
			if errors.As(err, &sa) {
				purchaseSkip, err = sa.reason, nil
			}
			if err != nil {
				return nil, err
			}
		}
		if purchaseSkip != "" {
			// A stage that cannot run on this data steps aside; the
			// recommendations go on without it.
			e.log.Warn("purchase predictions skipped", "reason", purchaseSkip)
		}
		out.purchase = purchase
	}
	fe.evalRecs = nil
	if cfg.Train.Refit {
		done = e.stages.begin("refit")
		sFin := e.newSlice(in, endTS)
		mFin, hist, err := e.fit(ctx, "final", sFin, epochs, nil)
		if err != nil {
			return nil, err
		}
		out.history["final"] = hist
		out.final, out.model = sFin, mFin
		if out.seq != nil {
			if out.seq, err = e.fitSequence(ctx, "final", sFin, sel.SequenceEpochs, nil, gateKey); err != nil {
				return nil, err
			}
		}
		done(slog.Int("positives", sFin.nPositives()))
	}
	// The published ranker (ItemKNN neighbours of the final slice, packed
	// embeddings): minutes at 100M events, so a stage of its own.
	done = e.stages.begin("recommender")
	if out.rec, err = e.recommender(ctx, out.final, out.model, out.seq, sel); err != nil {
		return nil, err
	}
	done()
	out.manifest = tables.Manifest{
		Name: cfg.Name, Version: out.version, Date: cfg.Date, CodeVersion: e.r.CodeVersion, ConfigSHA256: e.cfgHash, Seed: cfg.Seed,
		Window: tables.Window{Start: e.start.UTC().Format(time.RFC3339), End: e.end.UTC().Format(time.RFC3339),
			TestStart: time.Unix(testStart, 0).UTC().Format(time.RFC3339), ValidationStart: time.Unix(valStart, 0).UTC().Format(time.RFC3339),
			Source: win.Source, Reason: win.Reason},
		Inputs: inputs, Metrics: metrics, Gate: gate, Selection: sel, Users: int64(len(out.final.users)),
	}
	if f := e.forget; !f.empty() {
		out.manifest.Privacy = &tables.Privacy{ForgetList: f.sha256, ForgottenUsers: acc.ForgottenUsers, CheckedList: f.sha256, CheckedOn: cfg.Date}
	}
	if purchase != nil {
		out.manifest.Purchase = purchase.summary()
	} else if purchaseSkip != "" {
		out.manifest.Purchase = &tables.PurchaseSummary{Skipped: purchaseSkip, GateReason: "skipped: " + purchaseSkip}
	}
	if err := e.publishVersion(ctx, out); err != nil {
		return nil, err
	}
	e.clearCheckpoints(ctx)
	out.release()
	return out, nil
}

// release lets go of what only the evaluation and the published version's
// files needed, once they are written: scoring holds the final slice, its
// model and recommenders, not the evaluation slice (when the refit made
// another), its model or the encoder's recommenders cached on other slices.
func (o *trainOutcome) release() {
	for _, f := range []*seqFit{o.seq, o.evalSeq} {
		if f == nil {
			continue
		}
		for s := range f.comps {
			if s != o.final {
				delete(f.comps, s)
			}
		}
	}
	if o.evalSlice != o.final {
		o.evalSlice = nil
	}
	o.evalModel, o.evalSeq = nil, nil
}

// fitted is what fitAndEvaluate returns: the selection, both models, their
// training histories and the test metrics of every recommender.
type fitted struct {
	sel     tables.Selection
	mSel    *model.RankingModel
	mEval   *model.RankingModel
	seqSel  *seqFit // the sequence encoders fitted on the two slices (nil: off, or no validation evidence)
	seqEval *seqFit
	history map[string][]nn.EpochStats
	metrics map[string]map[string]float64
	// evalRecs are the recommenders measured on sEval, kept for the
	// purchase stage's item lists at that slice's cut-off (nil once used).
	evalRecs []namedRecommender
	// doneEvaluate ends the evaluate stage (left open for the gate).
	doneEvaluate func(...slog.Attr)
}

// fitAndEvaluate is the model-building core shared by runs and the offline
// protocols: fit on sSel with early stopping on hVal and choose the blend
// there (or keep the prior without enough validation users), refit on
// sEval with the chosen epochs, and measure every recommender on hTest
// (with measure; nil = full ranking, model.Evaluate).
func (e *env) fitAndEvaluate(ctx context.Context, sSel *slice, hVal holdout, sEval *slice, hTest holdout, gateKey string,
	measure func(model.Recommender) (model.Metrics, error)) (*fitted, error) {
	cfg := e.cfg
	out := &fitted{history: map[string][]nn.EpochStats{}, metrics: map[string]map[string]float64{}}
	done := e.stages.begin("train")
	epochs := cfg.Train.Epochs
	var validate nn.Validate
	popSel := e.popularity(sSel)
	valIn := hVal.subsample(maxValidationUsers)
	if len(hVal.in.Users) >= cfg.Eval.MinUsers {
		validate = func(m *model.RankingModel) (float64, error) {
			rec := model.NewModelRecommender(m, sSel.ui, cfg.Score.Candidates, popSel)
			met, err := model.Evaluate(ctx, rec, valIn, sysres.Workers(cfg.Train.Workers))
			return met[gateKey], err
		}
	} else {
		e.log.Warn("too little validation evidence: training a fixed number of epochs and keeping the prior blend",
			"validation_users", len(hVal.in.Users), "min_users", cfg.Eval.MinUsers, "epochs", epochs)
	}
	mSel, hist, err := e.fit(ctx, "select", sSel, epochs, validate)
	if err != nil {
		return nil, err
	}
	out.history["select"] = hist
	sel := tables.Selection{Epochs: epochs, Validation: map[string]float64{}}
	if validate != nil {
		sel.Epochs = bestEpoch(hist)
		comp, best, err := e.selectBlend(ctx, sSel, mSel, popSel, valIn, gateKey, &sel)
		if err != nil {
			return nil, err
		}
		if cfg.Sequence.Enabled {
			if out.seqSel, err = e.fitSequence(ctx, "select", sSel, 0, &valIn, gateKey); err != nil {
				return nil, err
			}
			if err := e.selectSequence(ctx, sSel, mSel, comp, popSel, out.seqSel, valIn, gateKey, best, &sel); err != nil {
				return nil, err
			}
		}
	} else {
		e.priorSelection(&sel, len(hVal.in.Users))
	}
	epochs = sel.Epochs
	mEval, hist, err := e.fit(ctx, "evaluate", sEval, epochs, nil)
	if err != nil {
		return nil, err
	}
	out.history["evaluate"] = hist
	if out.seqSel != nil {
		if out.seqEval, err = e.fitSequence(ctx, "evaluate", sEval, sel.SequenceEpochs, nil, gateKey); err != nil {
			return nil, err
		}
	}
	done(slog.Int("epochs", epochs), slog.Float64("blend_sequence", sel.Sequence), slog.Int("sequence_epochs", sel.SequenceEpochs), slog.Float64("blend_knn", sel.KNN), slog.Float64("blend_popularity", sel.Popularity),
		slog.Int("knn_neighbors", sel.KNNNeighbors), slog.Float64("knn_history_half_life_days", sel.KNNHistoryHalfLife),
		slog.Float64("knn_history_half_life_events", sel.KNNHistoryHalfLifeEvents),
		slog.String("knn_similarity", itemSimilarity{cmp.Or(sel.KNNSimilarity, "cosine"), sel.KNNSimilarityParam}.String()),
		slog.Int("itemknn_neighbors", sel.BaselineNeighbors), slog.Int("validation_candidates", len(sel.Validation)),
		slog.String("validation_best", bestCandidate(sel.Validation))) // every candidate's score: the manifest's selection and report.json

	done = e.stages.begin("evaluate")
	recs, err := e.recommenders(ctx, sEval, mEval, out.seqEval, sel)
	if err != nil {
		return nil, err
	}
	if measure == nil {
		measure = func(r model.Recommender) (model.Metrics, error) { return model.Evaluate(ctx, r, hTest.in, 2) }
	}
	meter := e.meter("evaluate", "recommenders", int64(len(recs)))
	for _, rec := range recs {
		met, err := measure(rec.rec)
		if err != nil {
			return nil, fmt.Errorf("evaluate %s: %w", rec.name, err)
		}
		meter.Add(1, slog.String("recommender", rec.name))
		met["test_targets_dropped"] = float64(hTest.dropped)
		out.metrics[rec.name] = met
	}
	meter.Finish()
	out.sel, out.mSel, out.mEval, out.doneEvaluate, out.evalRecs = sel, mSel, mEval, done, recs
	return out, nil
}

// priorSelection is what selection falls back on without enough validation
// evidence: the configured epochs, the first neighbour count and history
// half-life, and a blend that leans on ItemKNN and popularity (the
// strongest priors) more than on an unvalidated neural model.
func (e *env) priorSelection(sel *tables.Selection, users int) {
	cfg := e.cfg
	sel.BaselineNeighbors = cfg.Baselines.ItemKNNNeighbors[0]
	sel.KNNNeighbors, sel.KNNHistoryHalfLife = sel.BaselineNeighbors, cfg.Train.KNNHistoryHalfLifeDays[0]
	sel.KNN, sel.Popularity = closest(cfg.Train.BlendKNN, 0.5), closest(cfg.Train.BlendPopularity, 0.3)
	if sel.KNN+sel.Popularity >= 1 {
		sel.KNN, sel.Popularity = cfg.Train.BlendKNN[0], cfg.Train.BlendPopularity[0]
	}
	sel.Evidence = fmt.Sprintf("%d validation users with targets (eval.min_users %d): prior blend knn %g, popularity %g, %d epochs",
		users, cfg.Eval.MinUsers, sel.KNN, sel.Popularity, sel.Epochs)
}

// closest is the grid value nearest to x.
func closest(grid []float64, x float64) float64 {
	best := grid[0]
	for _, v := range grid {
		if math.Abs(v-x) < math.Abs(best-x) {
			best = v
		}
	}
	return best
}

// checkModelFits refuses, before any training, a model whose tables cannot
// fit in the memory this process may use: two ranking models are alive at a
// time (the evaluation model and the one being fit), each with its Adam
// moments, on top of the events themselves.
func (e *env) checkModelFits(in *model.Interactions) error {
	d := int64(e.cfg.Train.Dim)
	rows := int64(in.Users.Len() + in.Items.Len())
	need := 2 * 3 * 4 * d * rows       // weights, Adam m and v, float32, two models
	need += int64(len(in.Events)) * 64 // the events and the slices built on them
	budget := sysres.MemoryBudget(8 << 30)
	if need <= budget*8/10 {
		return nil
	}
	fit := d
	for fit > 1 && 2*3*4*fit*rows+int64(len(in.Events))*64 > budget*8/10 {
		fit /= 2
	}
	return Permanent(fmt.Errorf("train.dim %d with %d users and %d items needs about %.1f GiB, and this process may use %.1f GiB "+
		"(its memory limit): lower train.dim (e.g. to %d) or events.lookback_days, or give it more memory",
		d, in.Users.Len(), in.Items.Len(), float64(need)/(1<<30), float64(budget)/(1<<30), fit))
}

// selectBlend chooses on the validation window, by the gate metric: the
// ItemKNN baseline's neighbour count; the hybrid's ItemKNN component
// (neighbours × history half-life); then the blend weights of that
// component and popularity with the model m.
func (e *env) selectBlend(ctx context.Context, s *slice, m *model.RankingModel, pop *model.Popularity, val model.EvalInput,
	key string, sel *tables.Selection) (*model.ItemKNN, float64, error) {
	cfg := e.cfg
	sims := e.similarities(s)
	n := len(sims)*len(cfg.Baselines.ItemKNNNeighbors)*len(cfg.Train.KNNHistoryHalfLifeDays) + len(cfg.Train.KNNHistoryHalfLifeEvents)
	if slices.Contains(cfg.Train.KNNHistoryHalfLifeEvents, 0) {
		n-- // 0 is the sweep above
	}
	for _, beta := range cfg.Train.BlendKNN {
		for _, gamma := range cfg.Train.BlendPopularity {
			if beta+gamma < 1 {
				n++
			}
		}
	}
	meter := e.meter("train", "evaluations", int64(n), "phase", "blend")
	defer meter.Finish()
	comp, err := e.selectKNN(ctx, s, sims, pop, val, key, sel, meter)
	if err != nil {
		return nil, 0, err
	}
	best, err := e.selectWeights(ctx, s, m, comp, pop, val, key, sel, meter)
	return comp, best, err
}

// selectSequence tries the sequence encoder f in the hybrid chosen so far
// (best: its validation score) with each weight of sequence.blend, the
// other weights scaled by 1 − w, and keeps the best: 0 (left out) only when
// the grid holds 0.
func (e *env) selectSequence(ctx context.Context, s *slice, m *model.RankingModel, comp *model.ItemKNN, pop *model.Popularity, f *seqFit,
	val model.EvalInput, key string, best float64, sel *tables.Selection) error {
	cfg := e.cfg
	seq, err := e.componentFor(f, s, val.Users) // validation asks for its users only
	if err != nil {
		return err
	}
	sel.Validation["sequence"] = f.validation
	sel.SequenceEpochs = f.epochs
	mr := model.NewModelRecommender(m, s.ui, cfg.Score.Candidates, pop)
	meter := e.meter("train", "evaluations", int64(len(cfg.Sequence.Blend)), "phase", "blend_sequence")
	defer meter.Finish()
	chosen := 0.0
	if !slices.Contains(cfg.Sequence.Blend, 0) {
		best = math.Inf(-1) // the grid leaves no choice of leaving it out
	}
	for _, w := range cfg.Sequence.Blend {
		meter.Add(1)
		if w <= 0 {
			continue
		}
		beta, gamma := sel.KNN*(1-w), sel.Popularity*(1-w)
		h := model.NewHybrid(mr, comp, pop, float32(beta), float32(gamma), cfg.Score.Candidates).WithSequence(seq, float32(w))
		got, err := validationScore(ctx, h, val, key, fmt.Sprintf("knn=%g,popularity=%g,sequence=%g", beta, gamma, w), sel)
		if err != nil {
			return err
		}
		if got > best {
			best, chosen = got, w
		}
	}
	if chosen > 0 {
		sel.KNN, sel.Popularity, sel.Sequence = sel.KNN*(1-chosen), sel.Popularity*(1-chosen), chosen
	}
	return nil
}

// validationScore evaluates r on val, records the gate metric in sel under
// name and returns it.
func validationScore(ctx context.Context, r model.Recommender, val model.EvalInput, key, name string, sel *tables.Selection) (float64, error) {
	met, err := model.Evaluate(ctx, r, val, 2)
	if err != nil {
		return 0, err
	}
	sel.Validation[name] = met[key]
	return met[key], nil
}

// selectKNN chooses the ItemKNN baseline's neighbours and the hybrid's
// item component (item-item model × neighbours × history half-life) on the
// validation window and returns the component.
func (e *env) selectKNN(ctx context.Context, s *slice, sims []itemSimilarity, pop *model.Popularity, val model.EvalInput, key string, sel *tables.Selection, meter *Meter) (*model.ItemKNN, error) {
	base, err := e.itemKNN(ctx, s, pop)
	if err != nil {
		return nil, err
	}
	var comp *model.ItemKNN
	bestB, bestC := -1.0, -1.0
	var rp3 []*model.ItemKNN // every rp3beta variant, from one pass over the data
	for q, sim := range sims {
		b := base
		switch {
		case sim.kind == "rp3beta":
			if rp3 == nil {
				var betas []float64
				for _, o := range sims[q:] {
					if o.kind == "rp3beta" {
						betas = append(betas, o.param)
					}
				}
				if rp3, err = model.NewRP3betaGrid(ctx, e.itemMatrix(s), e.cfg.Baselines.ItemKNNNeighbors.Max(), betas, pop); err != nil {
					return nil, fmt.Errorf("rp3beta: %w", err)
				}
			}
			b, rp3 = rp3[0], rp3[1:]
		case sim.kind != "cosine":
			if b, err = e.itemModel(ctx, s, pop, sim, e.cfg.Baselines.ItemKNNNeighbors.Max()); err != nil {
				return nil, err
			}
		}
		for _, nb := range e.cfg.Baselines.ItemKNNNeighbors {
			for _, hl := range e.cfg.Train.KNNHistoryHalfLifeDays {
				v, err := e.knnVariant(b, s, nb, hl)
				if err != nil {
					return nil, err
				}
				got, err := validationScore(ctx, v, val, key, fmt.Sprintf("%s:neighbors=%d,history_half_life=%g", sim, nb, hl), sel)
				if err != nil {
					return nil, err
				}
				meter.Add(1)
				if sim.kind == "cosine" && hl == 0 && got > bestB {
					bestB, sel.BaselineNeighbors = got, nb
				}
				if got > bestC {
					bestC, comp, sel.KNNNeighbors, sel.KNNHistoryHalfLife = got, v, nb, hl
					sel.KNNSimilarity, sel.KNNSimilarityParam = sim.kind, sim.param
				}
			}
		}
	}
	if sel.BaselineNeighbors == 0 { // no value 0 in the half-life grid, or no cosine
		sel.BaselineNeighbors = sel.KNNNeighbors
	}
	// Then the recency-rank half-life, for the best item model, neighbours
	// and age half-life (a coordinate step: the grids above times this one
	// would multiply the sweeps).
	if len(e.cfg.Train.KNNHistoryHalfLifeEvents) > 1 || e.cfg.Train.KNNHistoryHalfLifeEvents[0] > 0 {
		b := comp // already pruned to sel.KNNNeighbors: a variant only swaps the history
		for _, hp := range e.cfg.Train.KNNHistoryHalfLifeEvents {
			if hp == 0 {
				continue
			}
			v, err := e.knnVariant(b, s, sel.KNNNeighbors, sel.KNNHistoryHalfLife, hp)
			if err != nil {
				return nil, err
			}
			sim := itemSimilarity{orCosine(sel.KNNSimilarity), sel.KNNSimilarityParam}
			got, err := validationScore(ctx, v, val, key, fmt.Sprintf("%s:neighbors=%d,history_half_life=%g,history_half_life_events=%g", sim, sel.KNNNeighbors, sel.KNNHistoryHalfLife, hp), sel)
			if err != nil {
				return nil, err
			}
			meter.Add(1)
			if got > bestC {
				bestC, comp, sel.KNNHistoryHalfLifeEvents = got, v, hp
			}
		}
	}
	return comp, nil
}

// itemSimilarity is one item-item model the hybrid's component may use.
type itemSimilarity struct {
	kind  string  // cosine | rp3beta | ease
	param float64 // rp3beta: beta; ease: lambda / mean item degree
}

func (s itemSimilarity) String() string {
	switch s.kind {
	case "cosine":
		return "itemknn"
	case "rp3beta":
		return fmt.Sprintf("rp3beta(beta=%g)", s.param)
	}
	return fmt.Sprintf("ease(lambda=%g)", s.param)
}

// similarities are the item-item models to try on slice s, from
// train.item_similarity and its grids; ease is left out (and the reason
// logged) for a catalogue over train.ease_max_items or a dense inverse that
// would not fit in memory.
func (e *env) similarities(s *slice) []itemSimilarity {
	t := e.cfg.Train
	var out []itemSimilarity
	for _, kind := range t.ItemSimilarity {
		switch kind {
		case "cosine":
			out = append(out, itemSimilarity{kind: kind})
		case "rp3beta":
			for _, b := range t.RP3Beta {
				out = append(out, itemSimilarity{kind, b})
			}
		case "ease":
			if reason := e.easeSkip(max(len(s.items), e.items)); reason != "" {
				e.log.Info("ease not tried", "reason", reason)
				continue
			}
			for _, l := range t.EASELambda {
				out = append(out, itemSimilarity{kind, l})
			}
		}
	}
	if len(out) == 0 { // ease alone, and not possible here
		out = append(out, itemSimilarity{kind: "cosine"})
	}
	return out
}

// easeSkip says why ease cannot run on a catalogue of n items ("" = it can).
func (e *env) easeSkip(n int) string {
	if n > e.cfg.Train.EASEMaxItems {
		return fmt.Sprintf("%d items > train.ease_max_items %d", n, e.cfg.Train.EASEMaxItems)
	}
	if need, budget := model.EASEBytes(n), sysres.MemoryBudget(8<<30); need > budget/3 {
		return fmt.Sprintf("%d items need %.1f GiB for the dense inverse, over a third of the %.1f GiB this process may use",
			n, float64(need)/(1<<30), float64(budget)/(1<<30))
	}
	return ""
}

// itemMatrix is the users × items matrix the item-item models are built
// on: binary or the slice's weights (baselines.itemknn_weighting).
func (e *env) itemMatrix(s *slice) *model.CSR {
	if e.cfg.Baselines.ItemKNNWeighting == "binary" {
		return s.history(true, 0)
	}
	return s.ui
}

// itemModel builds the item-item model sim on slice s with the ItemKNN
// baseline's interaction weighting, keeping neighbors per item.
func (e *env) itemModel(ctx context.Context, s *slice, pop model.Recommender, sim itemSimilarity, neighbors int) (*model.ItemKNN, error) {
	ui := e.itemMatrix(s)
	var k *model.ItemKNN
	var err error
	switch sim.kind {
	case "rp3beta":
		k, err = model.NewRP3beta(ctx, ui, neighbors, sim.param, pop)
	case "ease":
		var deg float64
		for _, v := range ui.Val {
			deg += float64(v) * float64(v)
		}
		lambda := sim.param * max(deg/float64(max(ui.Cols, 1)), 1e-3)
		k, err = model.NewEASE(ctx, ui, neighbors, lambda, pop)
	default:
		k, err = model.NewItemKNN(ctx, ui, neighbors, pop)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", sim, err)
	}
	return k, nil
}

// selectWeights chooses the blend weights of the ItemKNN component and
// popularity with the model m and returns the best validation score.
func (e *env) selectWeights(ctx context.Context, s *slice, m *model.RankingModel, comp *model.ItemKNN, pop *model.Popularity,
	val model.EvalInput, key string, sel *tables.Selection, meter *Meter) (float64, error) {
	cfg := e.cfg
	mr := model.NewModelRecommender(m, s.ui, cfg.Score.Candidates, pop)
	best := -1.0
	for _, beta := range cfg.Train.BlendKNN {
		for _, gamma := range cfg.Train.BlendPopularity {
			if beta+gamma >= 1 {
				continue
			}
			h := model.NewHybrid(mr, comp, pop, float32(beta), float32(gamma), cfg.Score.Candidates)
			got, err := validationScore(ctx, h, val, key, fmt.Sprintf("knn=%g,popularity=%g", beta, gamma), sel)
			if err != nil {
				return 0, err
			}
			meter.Add(1)
			if got > best {
				best, sel.KNN, sel.Popularity = got, beta, gamma
			}
		}
	}
	return best, nil
}

// recommender builds the published hybrid ranker on a slice.
// It is the model's hybrid, or the baseline the gate chose to publish
// instead (sel.Publish).
func (e *env) recommender(ctx context.Context, s *slice, m *model.RankingModel, seq *seqFit, sel tables.Selection) (model.BlockRecommender, error) {
	recs, err := e.recommenders(ctx, s, m, seq, sel)
	if err != nil {
		return nil, err
	}
	return published(recs, sel)
}

// published is the recommender of recs that sel publishes.
func published(recs []namedRecommender, sel tables.Selection) (model.BlockRecommender, error) {
	name := sel.Publish
	if name == "" {
		name = "model"
	}
	for _, r := range recs {
		if r.name == name {
			return model.Blocked(r.rec), nil
		}
	}
	return nil, fmt.Errorf("recommender %q to publish is not among %v", name, recs)
}

// committedBy reports whether the date's recommendations are committed by version.
func (e *env) committedBy(ctx context.Context, version string) bool {
	s, err := tables.ReadSuccess(ctx, e.out, tables.Recommendations, e.cfg.Date)
	return err == nil && s.ModelVersion == version
}

// sliceVocabs encodes a slice's local user and item ids.
func sliceVocabs(in *model.Interactions, s *slice) (users, items []byte, err error) {
	uv, iv := model.NewVocab(), model.NewVocab()
	for _, g := range s.users {
		uv.Add(in.Users.ID(g))
	}
	for _, g := range s.items {
		iv.Add(in.Items.ID(g))
	}
	if users, err = tables.EncodeVocab(uv); err != nil {
		return nil, nil, err
	}
	items, err = tables.EncodeVocab(iv)
	return users, items, err
}

// versionFile is one file of a model version.
type versionFile struct {
	name string
	data []byte
}

// blended is f when the selection blends the sequence encoder in, else nil
// (rankers that only serve lists need not compute its states).
func blended(f *seqFit, sel tables.Selection) *seqFit {
	if sel.Sequence > 0 {
		return f
	}
	return nil
}

// bestEpoch is the 1-based epoch with the highest validation score.
func bestEpoch(hist []nn.EpochStats) int {
	best, bestV := 1, -1.0
	for _, h := range hist {
		if h.Validation > bestV {
			best, bestV = h.Epoch, h.Validation
		}
	}
	return best
}

func withK(ks []int, k int) []int {
	for _, x := range ks {
		if x == k {
			return ks
		}
	}
	return append(append([]int(nil), ks...), k)
}

func canonicalMetric(s string) string {
	name, k, _ := configs.ParseMetric(s)
	return fmt.Sprintf("%s@%d", name, k)
}

// gateBaselines are the recommenders the model must reach, and the ones the
// table falls back on when it does not.
var gateBaselines = []string{"popularity", "itemknn"}

// decideGate compares the model with the best baseline on the gate metric
// over testUsers holdout users. The model passes when it reaches the best
// baseline (within the tolerance) on enough evidence (minUsers users);
// otherwise the table is published from the best baseline and the reason
// says why.
func decideGate(g configs.GateConfig, key string, metrics map[string]map[string]float64, testUsers, minUsers int) tables.GateResult {
	r := tables.GateResult{Metric: key, Model: metrics["model"][key], Tolerance: g.Tolerance, TestUsers: testUsers}
	for _, name := range gateBaselines {
		if v := metrics[name][key]; r.BestBaseline == "" || v > r.Baseline {
			r.BestBaseline, r.Baseline = name, v
		}
	}
	bar := r.Baseline * (1 - g.Tolerance)
	r.Passed = r.Model >= bar && testUsers >= minUsers
	switch {
	case testUsers < minUsers:
		r.Reason = fmt.Sprintf("too little evidence: %d test users with targets, eval.min_users is %d: the table comes from the best baseline, %s (%s %.4f; model %.4f)",
			testUsers, minUsers, r.BestBaseline, key, r.Baseline, r.Model)
	case r.Passed:
		r.Reason = fmt.Sprintf("model %s %.4f >= %.4f (best baseline %s %.4f, tolerance %.0f%%, %d test users)", key, r.Model, bar, r.BestBaseline, r.Baseline, 100*g.Tolerance, testUsers)
	default:
		r.Reason = fmt.Sprintf("model %s %.4f < %.4f (best baseline %s %.4f, tolerance %.0f%%, %d test users): the table comes from %s",
			key, r.Model, bar, r.BestBaseline, r.Baseline, 100*g.Tolerance, testUsers, r.BestBaseline)
	}
	r.Publish = "model"
	if !r.Passed {
		r.Publish = r.BestBaseline
	}
	return r
}

// publishVersion writes the version's files and then its manifest.
func (e *env) publishVersion(ctx context.Context, o *trainOutcome) error {
	done := e.stages.begin("publish_model")
	v, err := tables.NewVersion(ctx, e.out, e.cfg.Name, o.version, e.fence)
	if err != nil {
		return err
	}
	var wbuf bytes.Buffer
	if err := model.WriteWeights(&wbuf, o.model.ToWeights()); err != nil {
		return fmt.Errorf("encode weights: %w", err)
	}
	ub, ib, err := sliceVocabs(o.in, o.final)
	if err != nil {
		return err
	}
	eub, eib, err := sliceVocabs(o.in, o.evalSlice)
	if err != nil {
		return err
	}
	mj, err := json.MarshalIndent(o.manifest.Metrics, "", "  ")
	if err != nil {
		return err
	}
	tj, err := json.MarshalIndent(versionHistory(o.history), "", "  ")
	if err != nil {
		return err
	}
	var ebuf bytes.Buffer
	if err := model.WriteWeights(&ebuf, o.evalModel.ToWeights()); err != nil {
		return fmt.Errorf("encode evaluation weights: %w", err)
	}
	var seqFiles []versionFile
	for _, f := range []struct {
		name string
		fit  *seqFit
		s    *slice
	}{{"sequence.shlfw", o.seq, o.final}, {"evaluate/sequence.shlfw", o.evalSeq, o.evalSlice}} {
		if f.fit != nil {
			data, err := f.fit.encode(f.s)
			if err != nil {
				return fmt.Errorf("encode %s: %w", f.name, err)
			}
			seqFiles = append(seqFiles, versionFile{f.name, data})
		}
	}
	files := []versionFile{
		{"weights.shlfw", wbuf.Bytes()},
		{"evaluate/weights.shlfw", ebuf.Bytes()}, // lets `shelf eval` reproduce metrics.json
		{"evaluate/users.parquet", eub},          // and the next run compare with this version
		{"evaluate/items.parquet", eib},
		{"vocab/users.parquet", ub},
		{"vocab/items.parquet", ib},
		{"config.yaml", e.cfgYAML},
		{"metrics.json", append(mj, '\n')},
		{"training.json", append(tj, '\n')},
	}
	html, err := e.renderReport(o)
	if err != nil {
		return err
	}
	files = append(files, versionFile{"report.html", html})
	files = append(files, seqFiles...)
	if o.purchase != nil {
		pf, err := o.purchase.files()
		if err != nil {
			return fmt.Errorf("encode purchase model: %w", err)
		}
		files = append(files, pf...)
	}
	if err := e.checkRerun(ctx, v, o.version, files); err != nil {
		return err
	}
	meter := e.meter("publish_model", "files", int64(len(files)))
	defer meter.Finish()
	var written int64
	for _, f := range files {
		changed, err := v.Put(ctx, f.name, f.data)
		if err != nil {
			return err
		}
		if !changed {
			e.log.Debug("version file unchanged by this rerun", "file", f.name)
		}
		written += int64(len(f.data))
		meter.Add(1, slog.Int64("bytes", written))
	}
	meter.Finish()
	if err := v.Commit(ctx, o.manifest); err != nil {
		return err
	}
	// The run's pointer to its version lets `shelf commit` find it without re-reading the inputs.
	if err := e.fence(ctx); err != nil {
		return err
	}
	if err := blobs.WriteFile(ctx, e.out, e.runPrefix()+"version", []byte(o.version+"\n"), blobs.DefaultPolicy()); err != nil {
		return fmt.Errorf("write run version pointer: %w", err)
	}
	done(slog.String("version", o.version), slog.Bool("gate_passed", o.manifest.Gate.Passed))
	return nil
}

// checkRerun handles a rerun whose files differ from the version published
// under the same id before (same date, inputs, config and code: the float32
// kernels of another CPU family round the last bits otherwise). While
// nothing names that version (no LATEST, no committed table: a run killed
// between publishing and committing), it is withdrawn and republished
// whole; once something does, its readers keep it and the run fails.
func (e *env) checkRerun(ctx context.Context, v *tables.Version, id string, files []versionFile) error {
	var differ []string
	for _, f := range files {
		if !v.Reproduces(f.name, f.data) {
			differ = append(differ, f.name)
		}
	}
	if len(differ) == 0 {
		return nil
	}
	user, err := tables.VersionInUse(ctx, e.out, e.cfg.Name, id)
	if err != nil {
		return err
	}
	if user != "" {
		return Permanent(fmt.Errorf("version %s: %w: %s differ, and %s names the published version (run the rerun on the CPU family that published it)",
			id, tables.ErrNotReproduced, strings.Join(differ, ", "), user))
	}
	e.log.Warn("this rerun's files differ from the version published before under the same id, which no table or LATEST names: withdrawn and published again",
		"version", id, "files", strings.Join(differ, ","))
	return v.Withdraw(ctx)
}

// versionEpoch is one epoch in a version's training.json: what the same
// inputs, config and code reproduce bit for bit. The epoch's wall time is
// not in it (a rerun of the version would rewrite the file with other
// bytes under its readers); it is in the run's report.json.
type versionEpoch struct {
	Epoch      int
	Loss       float64
	Validation float64
	Samples    int
}

func versionHistory(h map[string][]nn.EpochStats) map[string][]versionEpoch {
	out := make(map[string][]versionEpoch, len(h))
	for phase, eps := range h {
		for _, st := range eps {
			out[phase] = append(out[phase], versionEpoch{Epoch: st.Epoch, Loss: st.Loss, Validation: st.Validation, Samples: st.Samples})
		}
	}
	return out
}

// epochSeconds is each phase's epoch wall times, for the run's report.
func epochSeconds(h map[string][]nn.EpochStats) map[string][]float64 {
	if len(h) == 0 {
		return nil
	}
	out := make(map[string][]float64, len(h))
	for phase, eps := range h {
		for _, st := range eps {
			out[phase] = append(out[phase], round3(st.Seconds))
		}
	}
	return out
}

func (e *env) clearCheckpoints(ctx context.Context) {
	for _, p := range []string{"select", "evaluate", "final"} {
		e.deleteCheckpoint(ctx, p)
	}
}

// bestCandidate is "name score" of the best-scoring validation candidate
// (ties: the first name in order).
func bestCandidate(v map[string]float64) string {
	best, score := "", math.Inf(-1)
	for _, k := range slices.Sorted(maps.Keys(v)) {
		if v[k] > score {
			best, score = k, v[k]
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf("%s %.4f", best, score)
}
