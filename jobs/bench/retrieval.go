package bench

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"gocloud.dev/blob/fileblob"

	"github.com/shelfml/shelf/io/events"
	"github.com/shelfml/shelf/io/synth"
	"github.com/shelfml/shelf/model"
	"github.com/shelfml/shelf/model/nn"
)

// RetrievalOptions size the retrieval-index benchmark: a synthetic shop of
// that many users and items, a ranking model trained on it (so that the
// item vectors have a learned structure, which random vectors lack), and
// the exact scan against the IVF index on a sample of its users.
type RetrievalOptions struct {
	Events int64
	Users  int
	Items  int
	Days   int
	Epochs int
	// Sample users are timed (half tune the probe count, half measure).
	Sample  int
	Depth   int     // candidates per user (score.candidates)
	Target  float64 // recall the probe count is tuned to
	NList   int     // clusters; 0: model.DefaultNList
	Threads int
	// Data is a directory holding `shelf gen` output to reuse (else it is
	// generated under Dir).
	Data string
	Dir  string
}

// Retrieval is the retrieval-index benchmark's result. Per-user times are
// one core's; the projections multiply them by the shop's users over
// Threads cores.
type Retrieval struct {
	Options      RetrievalOptions  `json:"options"`
	Positives    int               `json:"positives"`
	TrainSeconds float64           `json:"train_seconds"`
	Index        model.IndexReport `json:"index"`
	// Users per second on one core, retrieval only and with the re-rank of
	// Depth candidates by the full model (what a table's row costs).
	ExactUsersPerSec     float64 `json:"exact_users_per_second"`
	IndexUsersPerSec     float64 `json:"index_users_per_second"`
	ExactScoredPerSec    float64 `json:"exact_scored_users_per_second"`
	IndexScoredPerSec    float64 `json:"index_scored_users_per_second"`
	ProjectedExactSecs   float64 `json:"projected_exact_seconds"`
	ProjectedIndexSecs   float64 `json:"projected_index_seconds"`
	RetrievalSpeedup     float64 `json:"retrieval_speedup"`
	ScoringSpeedup       float64 `json:"scoring_speedup"`
	ProjectedScoredUsers int     `json:"projected_users"`
}

// RunRetrieval runs the retrieval-index benchmark.
func RunRetrieval(ctx context.Context, o RetrievalOptions, log *slog.Logger) (*Retrieval, error) {
	o.Threads = max(o.Threads, 1)
	data := o.Data
	end := time.Date(2024, 3, 31, 0, 0, 0, 0, time.UTC)
	if data == "" {
		data = o.Dir
		if err := os.MkdirAll(data, 0o755); err != nil {
			return nil, err
		}
	}
	b, err := fileblob.OpenBucket(data, nil)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	if o.Data == "" {
		log.Info("bench retrieval: generating", "events", o.Events, "users", o.Users, "items", o.Items)
		if _, err := synth.Generate(ctx, b, synth.Options{Events: o.Events, Users: o.Users, Items: o.Items, Days: o.Days, End: end, Seed: 2}); err != nil {
			return nil, err
		}
	}
	in, _, err := events.Read(ctx, b, events.Options{Config: synth.EventsConfig(), Skip: []string{synth.CatalogKey},
		Start: end.AddDate(0, 0, -o.Days), End: end.AddDate(0, 0, 1)})
	if err != nil {
		return nil, err
	}
	seen := map[int64]bool{}
	var pos []nn.Positive
	for _, e := range in.Events {
		k := int64(e.User)<<32 | int64(e.Item)
		if !seen[k] {
			seen[k] = true
			pos = append(pos, nn.Positive{User: e.User, Item: e.Item, Weight: 1})
		}
	}
	seen = nil
	res := &Retrieval{Options: o, Positives: len(pos)}
	log.Info("bench retrieval: training", "positives", len(pos), "epochs", o.Epochs)
	t0 := time.Now()
	m, _, err := nn.TrainRanking(ctx, nn.RankingData{NUsers: in.Users.Len(), NItems: in.Items.Len(), Positives: pos},
		nn.RankingOptions{Dim: 32, Hidden: []int{64, 64}, Epochs: max(o.Epochs, 1), BatchSize: 512, Negatives: 4, LearningRate: 0.003,
			Loss: "bce", NegSampling: "popularity", NegAlpha: 0.5, Seed: 1, Workers: o.Threads}, nil, nil)
	if err != nil {
		return nil, err
	}
	res.TrainSeconds = time.Since(t0).Seconds()
	r, c, v := make([]int32, len(pos)), make([]int32, len(pos)), make([]float32, len(pos))
	for i, p := range pos {
		r[i], c[i], v[i] = p.User, p.Item, 1
	}
	pos = nil
	ui := model.NewCSR(in.Users.Len(), in.Items.Len(), r, c, v)
	exact := model.NewModelRecommender(m, ui, o.Depth, nil)
	var tune, check []int32
	stride := max(1, in.Users.Len()/o.Sample)
	for u := 0; u < in.Users.Len() && len(tune)+len(check) < o.Sample; u += stride {
		if (u/stride)%2 == 0 {
			tune = append(tune, int32(u))
		} else {
			check = append(check, int32(u))
		}
	}
	exclude := func(u int32) []int32 { items, _ := ui.Row(u); return items }
	log.Info("bench retrieval: building the index", "items", m.NItems)
	t0 = time.Now()
	ix, err := model.BuildIVF(ctx, m.Item, m.ItemBias, m.NItems, m.Dim, model.IVFOptions{NList: o.NList, Seed: 1, Workers: o.Threads, Queries: model.QuerySample(m, 20000)})
	if err != nil {
		return nil, err
	}
	build := time.Since(t0).Seconds()
	np, tr := exact.TuneProbe(ix, tune, exclude, o.Depth, model.TuneTarget(o.Target))
	approx := exact.WithIndex(ix, np)
	rec, es, is := model.RetrievalRecall(exact, approx, check, exclude, o.Depth)
	res.Index = model.IndexReport{Items: m.NItems, NList: ix.NList, NProbe: np.N, Spread: np.Spread, Depth: o.Depth, TuneUsers: len(tune), CheckUsers: len(check),
		TuneRecall: tr, Recall: rec, BuildSeconds: build, ExactSeconds: es, IndexSeconds: is}
	res.ExactUsersPerSec, res.IndexUsersPerSec = float64(len(check))/es, float64(len(check))/is
	res.RetrievalSpeedup = es / is
	// The same users scored as a table row is: retrieval, then the full
	// model on the candidates, top 20.
	scored := func(rr *model.ModelRecommender) float64 {
		out := make([][]model.Scored, 256)
		t := time.Now()
		for lo := 0; lo < len(check); lo += 256 {
			blk := check[lo:min(lo+256, len(check))]
			rr.RecommendBlock(blk, 20, exclude, out[:len(blk)])
		}
		return float64(len(check)) / time.Since(t).Seconds()
	}
	res.ExactScoredPerSec, res.IndexScoredPerSec = scored(exact), scored(approx)
	res.ScoringSpeedup = res.IndexScoredPerSec / res.ExactScoredPerSec
	res.ProjectedScoredUsers = in.Users.Len()
	per := float64(in.Users.Len()) / float64(o.Threads)
	res.ProjectedExactSecs, res.ProjectedIndexSecs = per/res.ExactScoredPerSec, per/res.IndexScoredPerSec+build
	return res, nil
}

// Markdown renders the retrieval benchmark.
func (r *Retrieval) Markdown() string {
	var b strings.Builder
	ix := r.Index
	fmt.Fprintf(&b, "## Retrieval index (IVF) against the exact scan\n\n")
	fmt.Fprintf(&b, "Shop: %d events, %d users, %d items (`shelf gen`); model trained %d epoch(s) on %d positives in %.0f s.\n",
		r.Options.Events, r.Options.Users, ix.Items, r.Options.Epochs, r.Positives, r.TrainSeconds)
	fmt.Fprintf(&b, "Index: %d clusters (k-means, built in %.1f s on %d threads), %d probed (spread weight %g): recall of the exact top %d %.4f on %d held-out users (tuned to %.4f on %d others: %.4f).\n\n",
		ix.NList, ix.BuildSeconds, r.Options.Threads, ix.NProbe, ix.Spread, ix.Depth, ix.Recall, ix.CheckUsers, model.TuneTarget(r.Options.Target), ix.TuneUsers, ix.TuneRecall)
	fmt.Fprintf(&b, "| one core | exact | IVF | speed-up |\n|---|---:|---:|---:|\n")
	fmt.Fprintf(&b, "| retrieval (users/s) | %.0f | %.0f | %.1f× |\n", r.ExactUsersPerSec, r.IndexUsersPerSec, r.RetrievalSpeedup)
	fmt.Fprintf(&b, "| retrieval + re-rank of %d (users/s) | %.0f | %.0f | %.1f× |\n", ix.Depth, r.ExactScoredPerSec, r.IndexScoredPerSec, r.ScoringSpeedup)
	fmt.Fprintf(&b, "| all %d users on %d cores (projected s) | %.0f | %.0f (with the build) | %.1f× |\n\n",
		r.ProjectedScoredUsers, r.Options.Threads, r.ProjectedExactSecs, r.ProjectedIndexSecs, r.ProjectedExactSecs/r.ProjectedIndexSecs)
	return b.String()
}
