package model

import (
	"context"
	"errors"
	"maps"
	"math"
	"slices"
	"testing"
)

// fixedRecommender returns a stored list per user, honouring exclusions:
// a real in-memory Recommender for hand-computed cases.
type fixedRecommender map[int32][]int32

func (f fixedRecommender) Name() string { return "fixed" }

func (f fixedRecommender) Recommend(u int32, k int, exclude []int32, dst []Scored) []Scored {
	for q, it := range f[u] {
		if len(dst) == k {
			break
		}
		if !excluded(exclude, it) {
			dst = append(dst, Scored{Item: it, Score: float32(-q), Reason: -1})
		}
	}
	return dst
}

var (
	inv2 = 1 / math.Log2(3) // discount at rank 2
	inv3 = 1 / math.Log2(4) // discount at rank 3 (= 0.5)
)

func TestUserMetrics(t *testing.T) {
	tests := []struct {
		name                   string
		list, targets          []int32
		k                      int
		hr, recall, ndcg, mapK float64
	}{
		{"miss", []int32{1, 2, 3}, []int32{7}, 3, 0, 0, 0, 0},
		{"hit at 2", []int32{1, 2, 3}, []int32{2}, 3, 1, 1, inv2, 0.5},
		{"hit at 1 of 3 targets, k 2", []int32{1, 2, 3, 4}, []int32{1, 3, 9}, 2,
			1, 1.0 / 3, 1 / (1 + inv2), 0.5},
		{"hits at 1 and 3, k 4", []int32{1, 2, 3, 4}, []int32{1, 3, 9}, 4,
			1, 2.0 / 3, (1 + inv3) / (1 + inv2 + inv3), (1 + 2.0/3) / 3},
		{"recall divides by |T| not min(|T|,k)", []int32{5}, []int32{1, 2, 3, 4, 5}, 1,
			1, 0.2, 1, 1},
		{"perfect", []int32{4, 6}, []int32{4, 6}, 2, 1, 1, 1, 1},
		{"short list", []int32{9}, []int32{8, 9}, 10, 1, 0.5, 1 / (1 + inv2), 0.5},
		{"empty list", nil, []int32{1}, 10, 0, 0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var list []Scored
			for _, it := range tt.list {
				list = append(list, Scored{Item: it})
			}
			hr, rc, nd, ap := userMetrics(list, tt.targets, tt.k)
			for _, c := range []struct {
				name      string
				got, want float64
			}{{"hr", hr, tt.hr}, {"recall", rc, tt.recall}, {"ndcg", nd, tt.ndcg}, {"map", ap, tt.mapK}} {
				if math.Abs(c.got-c.want) > 1e-12 {
					t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
				}
			}
		})
	}
}

func TestEvaluateHandComputed(t *testing.T) {
	rec := fixedRecommender{
		0: {1, 2, 3},
		1: {5, 2, 1},
		2: {7, 8, 9},
	}
	in := EvalInput{
		Users:   []int32{0, 1, 2},
		Targets: [][]int32{{2, 2}, {1, 9}, nil}, // user 2 has no target: not evaluated
		Exclude: [][]int32{nil, {2}},            // user 1 gets 5, 1
		Ks:      []int{1, 2},
		NItems:  10,
	}
	got, err := Evaluate(context.Background(), rec, in, 3)
	if err != nil {
		t.Fatal(err)
	}
	// user 0: list 1,2,3, T={2}. @1: miss. @2: hit at 2.
	// user 1: list 5,1,  T={1,9}. @1: miss. @2: hit at 2, recall 1/2,
	//         ndcg inv2/(1+inv2), map (1/2)(1/2).
	want := Metrics{
		"users": 2,
		"hr@1":  0, "recall@1": 0, "ndcg@1": 0, "map@1": 0, "coverage@1": 2.0 / 10, // items 1, 5
		"hr@2":       1,
		"recall@2":   (1 + 0.5) / 2,
		"ndcg@2":     (inv2 + inv2/(1+inv2)) / 2,
		"map@2":      (0.5 + 0.25) / 2,
		"coverage@2": 3.0 / 10, // items 1, 2, 5
	}
	if !slices.Equal(slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want))) {
		t.Fatalf("keys %v, want %v", slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
	}
	for k, w := range want {
		if math.Abs(got[k]-w) > 1e-12 {
			t.Errorf("%s = %v, want %v", k, got[k], w)
		}
	}
}

func TestEvaluateErrors(t *testing.T) {
	ok := EvalInput{Users: []int32{0}, Targets: [][]int32{{1}}, Ks: []int{10}, NItems: 5}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		rec  Recommender
		in   func(EvalInput) EvalInput
		is   error
	}{
		{"targets length", context.Background(), fixedRecommender{}, func(in EvalInput) EvalInput { in.Targets = nil; return in }, nil},
		{"no ks", context.Background(), fixedRecommender{}, func(in EvalInput) EvalInput { in.Ks = nil; return in }, nil},
		{"bad k", context.Background(), fixedRecommender{}, func(in EvalInput) EvalInput { in.Ks = []int{0}; return in }, nil},
		{"no items", context.Background(), fixedRecommender{}, func(in EvalInput) EvalInput { in.NItems = 0; return in }, nil},
		{"item out of range", context.Background(), fixedRecommender{0: {7}}, func(in EvalInput) EvalInput { return in }, nil},
		{"cancelled", cancelled, fixedRecommender{}, func(in EvalInput) EvalInput { return in }, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Evaluate(tt.ctx, tt.rec, tt.in(ok), 2)
			if err == nil {
				t.Fatal("no error")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Fatalf("err %v, want %v", err, tt.is)
			}
		})
	}
}

// evalFixture is a synthetic holdout: targets drawn like the training data.
func evalFixture(nUsers, nItems int) (*CSR, *Popularity, EvalInput) {
	ui, c, v := syntheticInteractions(21, nUsers, nItems, 20)
	test, _, _ := syntheticInteractions(22, nUsers, nItems, 3)
	in := EvalInput{Ks: []int{10, 20}, NItems: nItems}
	for u := range int32(nUsers) {
		in.Users = append(in.Users, u)
		tg, _ := test.Row(u)
		if u%5 == 0 {
			tg = nil
		}
		in.Targets = append(in.Targets, tg)
		ex, _ := ui.Row(u)
		in.Exclude = append(in.Exclude, ex)
	}
	return ui, NewPopularity(nItems, c, v), in
}

func TestEvaluateDeterministic(t *testing.T) {
	ui, pop, in := evalFixture(700, 300)
	knn, err := NewItemKNN(context.Background(), ui, 50, pop)
	if err != nil {
		t.Fatal(err)
	}
	rng := newRand(23)
	mrec := NewModelRecommender(randomModel(rng, 700, 300, 16, 8), ui, 50, pop)
	for _, rec := range []Recommender{pop, knn, mrec} {
		t.Run(rec.Name(), func(t *testing.T) {
			var first Metrics
			for _, w := range []int{1, 2, 7} {
				got, err := Evaluate(context.Background(), rec, in, w)
				if err != nil {
					t.Fatal(err)
				}
				if got["users"] != 560 {
					t.Fatalf("users %v, want 560", got["users"])
				}
				if first == nil {
					first = got
					continue
				}
				if !maps.Equal(first, got) {
					t.Fatalf("workers %d: %v\nworkers 1: %v", w, got, first)
				}
			}
			t.Logf("%s: %v", rec.Name(), first)
		})
	}
}

func BenchmarkEvaluate(b *testing.B) {
	ui, pop, in := evalFixture(5000, 4000)
	knn, err := NewItemKNN(context.Background(), ui, 100, pop)
	if err != nil {
		b.Fatal(err)
	}
	for _, rec := range []Recommender{pop, knn} {
		b.Run(rec.Name(), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if _, err := Evaluate(context.Background(), rec, in, 2); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(in.Users))*float64(b.N)/b.Elapsed().Seconds(), "users/s")
		})
	}
}

func TestEvaluateSampled(t *testing.T) {
	const items = 1000
	all := make([]int32, items) // 0, 1, 2, … : target 500 ranks behind every negative below it
	for i := range all {
		all[i] = int32(i)
	}
	first := make([]int32, 0, items) // the target first, then the rest
	first = append(first, 500)
	for i := range int32(items) {
		if i != 500 {
			first = append(first, i)
		}
	}
	in := EvalInput{Users: []int32{0}, Targets: [][]int32{{500}}, Ks: []int{10}, NItems: items}
	ctx := context.Background()
	tests := []struct {
		name    string
		rec     fixedRecommender
		hr, ndc float64
	}{
		{"target first", fixedRecommender{0: first}, 1, 1},
		{"target behind half the items", fixedRecommender{0: all}, 0, 0},
		{"nothing listed: the middle rank among 100", fixedRecommender{}, 0, 0},
	}
	for _, tt := range tests {
		m, err := EvaluateSampled(ctx, tt.rec, in, 100, 1, 2)
		if err != nil {
			t.Fatal(err)
		}
		if m["hr@10"] != tt.hr || math.Abs(m["ndcg@10"]-tt.ndc) > 1e-12 || m["users"] != 1 {
			t.Errorf("%s: %v", tt.name, m)
		}
	}
	// with 5 negatives, a target behind half the items ranks about 3rd:
	// HR@10 1 and NDCG below 1; the same seed draws the same negatives
	a, _ := EvaluateSampled(ctx, fixedRecommender{0: all}, in, 5, 7, 1)
	b, _ := EvaluateSampled(ctx, fixedRecommender{0: all}, in, 5, 7, 2)
	if a["hr@10"] != 1 || !(a["ndcg@10"] < 1) || a["ndcg@10"] != b["ndcg@10"] {
		t.Errorf("5 negatives: %v, again %v", a, b)
	}
	// excluded items are never negatives: exclude all but the target and
	// two items ranked after it
	ex := make([]int32, 0, items)
	for i := range int32(items) {
		if i != 500 && i != 998 && i != 999 {
			ex = append(ex, i)
		}
	}
	in.Exclude = [][]int32{ex}
	c, _ := EvaluateSampled(ctx, fixedRecommender{0: all}, in, 100, 1, 1)
	if c["hr@10"] != 1 || c["ndcg@10"] != 1 {
		t.Errorf("only later items as negatives: %v", c)
	}
}
