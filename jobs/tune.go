package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"time"

	"gocloud.dev/gcerrors"

	"github.com/shelfml/shelf/configs"
	"github.com/shelfml/shelf/internal/sysres"
	"github.com/shelfml/shelf/io/blobs"
	"github.com/shelfml/shelf/io/tables"
	"github.com/shelfml/shelf/model"
	"github.com/shelfml/shelf/model/nn"
)

// Trial is one setting tried by Tune.
type Trial struct {
	N          int                `json:"trial"`
	Params     map[string]float64 `json:"params"`     // the searched values (loss: 0 = bce, 1 = bpr)
	Loss       string             `json:"loss"`       // bce | bpr
	Epochs     int                `json:"epochs"`     // best epoch by early stopping
	Neural     float64            `json:"neural"`     // validation metric of the neural model alone
	Validation float64            `json:"validation"` // of the published hybrid with its blend chosen
	Seconds    float64            `json:"seconds"`    // wall time of the trial
	Blend      tables.Selection   `json:"selection"`  // what the hybrid chose
	Error      string             `json:"error,omitempty"`
}

// TuneResult is the outcome of a search.
type TuneResult struct {
	Metric string  `json:"metric"`
	Trials []Trial `json:"trials"`
	Best   int     `json:"best"`   // index into Trials
	Config []byte  `json:"-"`      // the best trial's full config (YAML), without date and URLs
	Key    string  `json:"config"` // where Config was written in the output bucket
}

// tuneSpace draws trial n's hyper-parameters (trial 0 = the config as
// given): the few that matter for the ranking model, from a PCG seeded by
// the config's seed and n, so a search is reproducible and extendable.
func tuneSpace(base configs.TrainConfig, seed int64, n int) (configs.TrainConfig, map[string]float64) {
	t := base
	t.Hidden = append([]int(nil), base.Hidden...)
	if n > 0 {
		rng := rand.New(rand.NewPCG(uint64(seed), uint64(n)))
		pick := func(xs ...float64) float64 { return xs[rng.IntN(len(xs))] }
		t.Dim = int(pick(16, 32, 64))
		t.LearningRate = math.Exp(math.Log(0.001) + rng.Float64()*math.Log(10)) // log-uniform [0.001, 0.01)
		t.Negatives = int(pick(2, 4, 8))
		t.L2 = pick(0, 1e-6, 1e-5, 1e-4)
		t.Dropout = pick(0, 0.1, 0.3)
		t.Loss = []string{"bce", "bpr"}[rng.IntN(2)]
		t.NegAlpha = pick(0, 0.5, 0.75, 1)
		t.HalfLifeDays = pick(0, 30, 90)
	}
	loss := 0.0
	if t.Loss == "bpr" {
		loss = 1
	}
	return t, map[string]float64{"dim": float64(t.Dim), "learning_rate": t.LearningRate, "negatives": float64(t.Negatives),
		"l2": t.L2, "dropout": t.Dropout, "loss": loss, "neg_alpha": t.NegAlpha, "half_life_days": t.HalfLifeDays}
}

// Tune searches the ranking model's hyper-parameters on the validation
// window of the configured date — the days before the test window, which it
// never reads — with early stopping on that window, scoring each trial by
// the published hybrid's validation metric (blend chosen as a run would).
// It writes the best trial's config (reusable with --config) and every
// trial's scores under tuning/<name>/<date>/ in the output bucket.
func (r *Runner) Tune(ctx context.Context, trials int) (*TuneResult, error) {
	if trials < 1 {
		return nil, Permanent(fmt.Errorf("tune: need at least 1 trial, got %d", trials))
	}
	e, err := r.open(ctx)
	if err != nil {
		return nil, err
	}
	defer e.close()
	in, _, _, err := e.ingest(ctx, false)
	if err != nil {
		return nil, err
	}
	cfg := e.cfg
	win, err := e.chooseWindows(in)
	if err != nil {
		return nil, err
	}
	e.win = &win
	testStart, valStart := win.starts(e.end)
	_, gateK, _ := configs.ParseMetric(cfg.Gate.Metric)
	key := canonicalMetric(cfg.Gate.Metric)
	s0 := e.newSlice(in, valStart)
	hVal := e.newHoldout(in, s0, valStart, testStart, withK(cfg.Eval.Ks, gateK))
	if len(hVal.in.Users) == 0 {
		return nil, Permanent(fmt.Errorf("tune: no validation users in the %d days before the test window; widen split.validation_days", win.ValidationDays))
	}
	val := hVal.subsample(maxValidationUsers)
	pop := e.popularity(s0)
	knnSel := tables.Selection{Validation: map[string]float64{}}
	comp, err := e.selectKNN(ctx, s0, e.similarities(s0), pop, val, key, &knnSel, nil)
	if err != nil {
		return nil, err
	}
	res := &TuneResult{Metric: key, Best: -1}
	for n := range trials {
		tc, params := tuneSpace(cfg.Train, cfg.Seed, n)
		trial := Trial{N: n, Params: params, Loss: tc.Loss}
		start := time.Now()
		te := *e
		te.cfg.Train = tc
		s := s0
		if tc.HalfLifeDays != cfg.Train.HalfLifeDays {
			s = newSliceExcluding(in, valStart, tc.HalfLifeDays, cfg.Baselines.PopularityHalfLifeDays, cfg.ExcludedTypes())
		}
		var hist []nn.EpochStats
		validate := func(m *model.RankingModel) (float64, error) {
			met, err := model.Evaluate(ctx, model.NewModelRecommender(m, s.ui, cfg.Score.Candidates, pop), val, sysres.Workers(tc.Workers))
			return met[key], err
		}
		m, hist, err := te.fit(ctx, fmt.Sprintf("tune-%d", n), s, tc.Epochs, validate)
		if err == nil {
			trial.Epochs = bestEpoch(hist)
			for _, h := range hist {
				trial.Neural = max(trial.Neural, h.Validation)
			}
			sel := knnSel
			sel.Validation = map[string]float64{}
			trial.Validation, err = te.selectWeights(ctx, s, m, comp, pop, val, key, &sel, nil)
			sel.Epochs, sel.Validation = trial.Epochs, nil
			trial.Blend = sel
		}
		te.deleteCheckpoint(ctx, fmt.Sprintf("tune-%d", n))
		if err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			trial.Error = err.Error()
		}
		trial.Seconds = round3(time.Since(start).Seconds())
		e.log.Info("tune trial", "stage", "tune", "trial", n, "of", trials, "params", params, "loss", tc.Loss,
			"neural", trial.Neural, "validation", trial.Validation, "epochs", trial.Epochs, "seconds", trial.Seconds, "err", trial.Error)
		res.Trials = append(res.Trials, trial)
		if trial.Error == "" && (res.Best < 0 || trial.Validation > res.Trials[res.Best].Validation) {
			res.Best = n
		}
	}
	if res.Best < 0 {
		return nil, errors.New("tune: every trial failed")
	}
	best := cfg
	best.Train, _ = tuneSpace(cfg.Train, cfg.Seed, res.Best)
	if ep := res.Trials[res.Best].Epochs; ep > 0 {
		best.Train.Epochs = max(best.Train.Epochs, ep) // early stopping still decides; never fewer than the best epoch
	}
	best.Date, best.Events.URL, best.Output.URL = "", "", ""
	if res.Config, err = best.Marshal(); err != nil {
		return nil, err
	}
	header := fmt.Sprintf("# shelf tune: best of %d trials on the validation window before %s (%s %.4f, trial %d).\n"+
		"# Select data and destination with --events-url / --output-url and --date, as with any config.\n",
		trials, time.Unix(testStart, 0).UTC().Format("2006-01-02"), key, res.Trials[res.Best].Validation, res.Best)
	res.Config = append([]byte(header), res.Config...)
	prefix := "tuning/" + cfg.Name + "/" + cfg.Date + "/"
	res.Key = prefix + "best.yaml"
	if err := blobs.WriteFile(ctx, e.out, res.Key, res.Config, blobs.DefaultPolicy()); err != nil {
		return nil, fmt.Errorf("tune: write %s: %w", res.Key, err)
	}
	js, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := blobs.WriteFile(ctx, e.out, prefix+"trials.json", js, blobs.DefaultPolicy()); err != nil {
		return nil, fmt.Errorf("tune: write trials: %w", err)
	}
	e.log.Info("tune done", "stage", "tune", "best", res.Best, slog.Float64("validation", res.Trials[res.Best].Validation), "config", res.Key)
	return res, nil
}

// deleteCheckpoint removes a phase's checkpoint of this run, if any.
func (e *env) deleteCheckpoint(ctx context.Context, phase string) {
	key := e.runPrefix() + "checkpoints/" + phase + ".shlfw"
	if err := e.out.Delete(ctx, key); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
		e.log.Warn("could not remove checkpoint", "key", key, "err", err)
	}
}
