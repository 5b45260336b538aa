package model

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"
)

func TestEvaluateClassifierHandComputed(t *testing.T) {
	// Scores 0.9(1) 0.8(0) 0.7(1) 0.1(0): 3 of 4 pos/neg pairs ordered → AUC 0.75;
	// AP = (1/1 + 2/3)/2.
	m := EvaluateClassifier([]float32{0.9, 0.8, 0.7, 0.1}, []float32{1, 0, 1, 0})
	if math.Abs(m.AUC-0.75) > 1e-12 || math.Abs(m.PRAUC-(1+2.0/3)/2) > 1e-12 || m.Positives != 2 {
		t.Fatalf("%+v", m)
	}
	ll := -(math.Log(0.9) + math.Log(0.2) + math.Log(0.7) + math.Log(0.9)) / 4
	if math.Abs(m.LogLoss-ll) > 1e-6 {
		t.Fatalf("log-loss %v want %v", m.LogLoss, ll)
	}
	// Ties count half: all equal scores → AUC 0.5.
	if m := EvaluateClassifier([]float32{0.5, 0.5, 0.5, 0.5}, []float32{1, 0, 1, 0}); m.AUC != 0.5 {
		t.Fatalf("tied AUC %v", m.AUC)
	}
	// Perfectly calibrated bins → ECE 0; always 0.5 on a 25 % base rate → ECE 0.25.
	if m := EvaluateClassifier([]float32{0.25, 0.25, 0.25, 0.25}, []float32{1, 0, 0, 0}); m.ECE > 1e-9 {
		t.Fatalf("ECE %v", m.ECE)
	}
	if m := EvaluateClassifier([]float32{0.5, 0.5, 0.5, 0.5}, []float32{1, 0, 0, 0}); math.Abs(m.ECE-0.25) > 1e-9 {
		t.Fatalf("ECE %v", m.ECE)
	}
}

func TestLogisticLearnsSignal(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const n, f = 4000, 3
	x := make([]float32, n*f)
	y := make([]float32, n)
	for i := 0; i < n; i++ {
		for j := 0; j < f; j++ {
			x[i*f+j] = float32(rng.NormFloat64())
		}
		z := 2*float64(x[i*f]) - 1*float64(x[i*f+2]) + 0.5
		if rng.Float64() < 1/(1+math.Exp(-z)) {
			y[i] = 1
		}
	}
	l := FitLogistic(x, y, f, []int{0, 1, 2}, 1e-6)
	if math.Abs(l.W[0]-2) > 0.25 || math.Abs(l.W[1]) > 0.2 || math.Abs(l.W[2]+1) > 0.2 || math.Abs(l.W[3]-0.5) > 0.2 {
		t.Fatalf("weights %v, want ≈ [2 0 -1 0.5]", l.W)
	}
	p := make([]float32, n)
	for i := range p {
		p[i] = l.Predict(x[i*f : (i+1)*f])
	}
	if m := EvaluateClassifier(p, y); m.AUC < 0.8 || m.ECE > 0.05 {
		t.Fatalf("%+v", m)
	}
}

// buyersLog: user 0 buys every 7 days, user 1 only views, user 2 bought once long ago.
func buyersLog() *Interactions {
	in := &Interactions{Users: NewVocab(), Items: NewVocab(),
		Types: []EventType{{Name: "view", Weight: 1}, {Name: "cart", Weight: 3}, {Name: "purchase", Weight: 5, Purchase: true}}}
	for _, u := range []string{"a", "b", "c"} {
		in.Users.Add(u)
	}
	for _, i := range []string{"x", "y"} {
		in.Items.Add(i)
	}
	for d := int64(0); d < 70; d += 7 {
		in.Events = append(in.Events, Event{TS: uint32(d * day), User: 0, Item: 0, Type: 2, Quantity: 2, Price: 3})
	}
	for d := int64(0); d < 70; d += 3 {
		in.Events = append(in.Events, Event{TS: uint32(d*day + 10), User: 1, Item: 1, Type: 0})
	}
	in.Events = append(in.Events, Event{TS: uint32(1 * day), User: 2, Item: 1, Type: 2, Quantity: 1, Price: 1})
	SortEvents(in.Events)
	return in
}

func TestBuyerFeaturesAndLabels(t *testing.T) {
	in := buyersLog()
	spec := BuyerSpec{Windows: DefaultBuyerWindows, Spend: true}
	names := spec.Names(in.Types)
	col := func(name string) int { return slices.Index(names, name) }
	tcut := int64(50 * day)
	users, x, f := BuyerFeatures(GroupByUser(in), tcut, spec)
	if f != len(names) || len(users) != 3 || len(x) != 3*f {
		t.Fatalf("shape: %d users, %d values, f=%d (%d names)", len(users), len(x), f, len(names))
	}
	row := func(u int) []float32 { return x[u*f : (u+1)*f] }
	if got := row(0)[col("interarrival_mean_days")]; got != 7 {
		t.Errorf("user a inter-arrival %v, want 7", got)
	}
	if got := row(0)[col("days_since_last_purchase")]; got != 1 { // bought on day 49
		t.Errorf("user a days since purchase %v, want 1", got)
	}
	if got := row(1)[col("ever_purchased")]; got != 0 {
		t.Errorf("user b ever purchased %v", got)
	}
	if got := row(2)[col("tenure_days")]; got != 49 {
		t.Errorf("user c tenure %v, want 49", got)
	}
	// No leakage: adding events after t changes nothing.
	in2 := buyersLog()
	in2.Events = append(in2.Events, Event{TS: uint32(tcut + 1), User: 1, Item: 0, Type: 2, Quantity: 100, Price: 100})
	SortEvents(in2.Events)
	_, x2, _ := BuyerFeatures(GroupByUser(in2), tcut, spec)
	if !slices.Equal(x, x2) {
		t.Fatal("features at t changed when events after t were added")
	}
	// Labels: purchases in (t, t+7d]; the window is open at t and closed at t+7d.
	y := BuyerLabels(in, users, tcut, 7*day)
	if !slices.Equal(y, []float32{1, 0, 0}) {
		t.Fatalf("labels %v", y)
	}
	if y := BuyerLabels(in, users, 49*day, 7*day); y[0] != 1 { // bought at 56d = t+7d exactly
		t.Fatalf("closed end: %v", y)
	}
	if y := BuyerLabels(in, users, 56*day, 6*day); y[0] != 0 { // the purchase at t itself is excluded
		t.Fatalf("open start: %v", y)
	}
	s := FitStandardizer(x, f)
	z := slices.Clone(x)
	s.Apply(z)
	for j := 0; j < f; j++ {
		var m float64
		for i := 0; i < 3; i++ {
			m += float64(z[i*f+j])
		}
		if math.Abs(m) > 1e-4 {
			t.Fatalf("column %s mean %v after scaling", names[j], m/3)
		}
	}
}

// TestBuyerSpecColumns: the config's windows, the spend columns and the
// catalog's category and price columns appear, named, as configured.
func TestBuyerSpecColumns(t *testing.T) {
	in := buyersLog()
	// User b views x (category 0) and y (category 1) and buys y without an
	// event price (priced by the catalog at 4, quantity 1).
	in.Events = append(in.Events, Event{TS: uint32(48 * day), User: 1, Item: 0, Type: 0}, Event{TS: uint32(49 * day), User: 1, Item: 1, Type: 2})
	SortEvents(in.Events)
	tcut := int64(50 * day)
	for _, tc := range []struct {
		name string
		spec BuyerSpec
		want map[string]float32 // user b's value of named columns
		not  []string           // columns that must be absent
	}{
		{"windows", BuyerSpec{Windows: []int{3, 14}}, map[string]float32{"log_count_view_3d": log1p(2), "log_count_purchase_14d": log1p(1)},
			[]string{"log_count_view_7d", "log_spend_30d", "log_distinct_categories"}},
		{"catalog", BuyerSpec{Windows: []int{7}, Spend: true, ItemPrice: []float32{float32(math.NaN()), 4}, ItemCategory: []int32{0, 1}},
			map[string]float32{"log_spend_30d": log1p(4), "log_distinct_categories": log1p(2), "log_distinct_categories_bought": log1p(1)}, nil},
		{"no_catalog_price", BuyerSpec{Windows: []int{7}, Spend: true}, map[string]float32{"log_spend_30d": 0}, []string{"log_distinct_categories_bought"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			names := tc.spec.Names(in.Types)
			users, x, f := BuyerFeatures(GroupByUser(in), tcut, tc.spec)
			if f != len(names) || len(x) != len(users)*f {
				t.Fatalf("f=%d for %d names", f, len(names))
			}
			for name, want := range tc.want {
				j := slices.Index(names, name)
				if j < 0 {
					t.Fatalf("no column %s in %v", name, names)
				}
				if got := x[1*f+j]; math.Abs(float64(got-want)) > 1e-6 {
					t.Errorf("user b %s = %v, want %v", name, got, want)
				}
			}
			for _, name := range tc.not {
				if slices.Contains(names, name) {
					t.Errorf("column %s present", name)
				}
			}
		})
	}
}

// TestBlendNextItems: w = 0 keeps the NextItems order and fills with the
// ranking's other items, w = 1 is the ranking alone, and a history item the
// ranking also ranks (a re-purchase) stays possible.
func TestBlendNextItems(t *testing.T) {
	next := []Scored{{Item: 7, Score: 3, Reason: 7}, {Item: 2, Score: 0.5, Reason: 2}}
	rank := []Scored{{Item: 5}, {Item: 2}, {Item: 9}, {Item: 1}}
	items := func(l []Scored) []int32 {
		var out []int32
		for _, s := range l {
			out = append(out, s.Item)
		}
		return out
	}
	for _, tc := range []struct {
		w    float32
		k    int
		want []int32
	}{
		{0, 10, []int32{7, 2, 5, 9, 1}},
		{1, 3, []int32{5, 2, 9}},
		{0.5, 3, []int32{2, 5, 7}}, // 2: .5/21 + .5/21; 5 and 7: .5/20, 5 ranked
	} {
		got := items(BlendNextItems(next, rank, tc.w, tc.k, nil))
		if !slices.Equal(got, tc.want) {
			t.Errorf("w=%v k=%d: %v, want %v", tc.w, tc.k, got, tc.want)
		}
	}
	if got := items(BlendNextItems(next, nil, 0.7, 5, nil)); !slices.Equal(got, []int32{7, 2}) {
		t.Errorf("no ranking list: %v", got)
	}
}

func TestNextItemsPrefersDueCycle(t *testing.T) {
	in := buyersLog()
	// User c views item x twice right before the cut-off: intent without a cycle.
	in.Events = append(in.Events, Event{TS: uint32(49 * day), User: 2, Item: 0, Type: 1}, Event{TS: uint32(49*day + 5), User: 2, Item: 0, Type: 0})
	SortEvents(in.Events)
	n := NewNextItems(GroupByUser(in), 55*day) // user a: last bought day 49, cycle 7 → due at 56
	top := n.Top(0, 2, nil)
	if len(top) != 1 || top[0].Item != 0 || top[0].Score < 0.8 {
		t.Fatalf("user a: %+v", top)
	}
	top = n.Top(2, 2, nil)
	if len(top) != 2 || top[0].Item != 0 {
		t.Fatalf("user c should be most likely to buy the carted item: %+v", top)
	}
	m := EvaluateNextItems(in, n, 55*day, 7*day)
	if m.Users != 1 || m.HR5 != 1 || m.Recall10 != 1 {
		t.Fatalf("%+v", m)
	}
}

// TestEvaluateNextItemsDeterministic: the metrics do not depend on map
// iteration order (they are written into the version's purchase/metrics.json).
func TestEvaluateNextItemsDeterministic(t *testing.T) {
	in := &Interactions{Users: NewVocab(), Items: NewVocab(), Types: []EventType{{Name: "purchase", Weight: 1, Purchase: true}}}
	for i := 0; i < 40; i++ {
		in.Items.Add(strconv.Itoa(i))
	}
	for u := int32(0); u < 300; u++ {
		in.Users.Add(strconv.Itoa(int(u)))
		for k := int32(0); k < 1+u%9; k++ { // history: a cycle on a few items
			in.Events = append(in.Events, Event{TS: uint32(int64(k) * day), User: u, Item: (u + k) % 40, Type: 0})
		}
		for k := int32(0); k < 1+u%7; k++ { // next week: some of them, some new
			in.Events = append(in.Events, Event{TS: uint32(20*day + int64(k)), User: u, Item: (u + 3*k) % 40, Type: 0})
		}
	}
	SortEvents(in.Events)
	n := NewNextItems(GroupByUser(in), 19*day)
	first := EvaluateNextItems(in, n, 19*day, 7*day)
	for i := 0; i < 20; i++ {
		if m := EvaluateNextItems(in, n, 19*day, 7*day); m != first {
			t.Fatalf("run %d: %+v, first %+v", i, m, first)
		}
	}
}

// TestEvaluateClassifierNaNSafe: NaN or out-of-range predictions (a model
// broken by its input) end in finite metrics and a count, in bounded time;
// they once spun the tie loop forever.
func TestEvaluateClassifierNaNSafe(t *testing.T) {
	nan := float32(math.NaN())
	p := []float32{nan, 0.2, nan, float32(math.Inf(1)), 0.9, -3, nan}
	y := []float32{1, 0, 0, 1, 1, 0, 0}
	done := make(chan ClassMetrics, 1)
	go func() { done <- EvaluateClassifier(p, y) }()
	select {
	case m := <-done:
		if m.Invalid != 5 {
			t.Errorf("invalid = %d, want 5", m.Invalid)
		}
		for name, v := range map[string]float64{"auc": m.AUC, "pr_auc": m.PRAUC, "log_loss": m.LogLoss, "brier": m.Brier, "ece": m.ECE} {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				t.Errorf("%s = %v", name, v)
			}
		}
		if _, err := json.Marshal(m); err != nil {
			t.Errorf("metrics do not encode: %v", err)
		}
		if !math.IsNaN(float64(p[0])) {
			t.Error("the caller's predictions were changed")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("EvaluateClassifier did not return on NaN predictions")
	}
}
