package jobs

import (
	"context"
	"errors"
	"maps"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/shelfml/shelf/configs"
	"github.com/shelfml/shelf/io/synth"
	"github.com/shelfml/shelf/model"
)

// interactions builds a log from (user, item, ts) triples (ts ascending),
// every event a view.
func interactions(rows ...[3]int64) *model.Interactions {
	in := &model.Interactions{Users: model.NewVocab(), Items: model.NewVocab(), Types: []model.EventType{{Name: "view", Weight: 1}}}
	for _, r := range rows {
		u := in.Users.Add(string(rune('a' + r[0])))
		i := in.Items.Add(string(rune('A' + r[1])))
		in.Events = append(in.Events, model.Event{User: u, Item: i, TS: uint32(r[2])})
	}
	return in
}

func TestLeaveOneOutTargets(t *testing.T) {
	// user 0: A@1, B@2, A@3 (a repeat), C@4 → test C@4, validation B@2
	// user 1: D@5 only → no target (nothing before it)
	// user 2: E@6, F@6 (same second), G@7 → test G@7; validation: F@6 has
	//         no event strictly before it → none
	in := interactions(
		[3]int64{0, 0, 1}, [3]int64{0, 1, 2}, [3]int64{0, 0, 3}, [3]int64{0, 2, 4},
		[3]int64{1, 3, 5}, [3]int64{2, 4, 6}, [3]int64{2, 5, 6}, [3]int64{2, 6, 7})
	all := configs.TypeMask(nil)
	test := looTargets(in, all, nil)
	want := []looTarget{{item: 2, ts: 4}, {}, {item: 6, ts: 7}}
	if !reflect.DeepEqual(test, want) {
		t.Fatalf("test targets %+v, want %+v", test, want)
	}
	val := looTargets(in, all, test)
	if want := []looTarget{{item: 1, ts: 2}, {}, {}}; !reflect.DeepEqual(val, want) {
		t.Fatalf("validation targets %+v, want %+v", val, want)
	}
	// training for the test fit: everything before each user's target
	train := beforeTargets(in.Events, test)
	var got [][2]int64
	for _, ev := range train {
		got = append(got, [2]int64{int64(ev.User), ev.Time()})
	}
	if want := [][2]int64{{0, 1}, {0, 2}, {0, 3}, {1, 5}, {2, 6}, {2, 6}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("training events %v, want %v", got, want)
	}
	s := sliceOfEvents(in, train, 8, 0, 0, nil)
	h := targetHoldout(s, test, []int{10})
	// item C (2) and G (6) are never seen in training: both dropped
	if len(h.in.Users) != 0 || h.dropped != 2 {
		t.Fatalf("holdout users %v dropped %d", h.in.Users, h.dropped)
	}
}

// Every protocol runs Shelf and its baselines end to end on a synthetic
// shop and reports every recommender on the same users; sampled numbers
// are higher than full-ranking ones for the same split (100 negatives are
// easier than every item).
func TestEvalProtocols(t *testing.T) {
	if testing.Short() {
		t.Skip("trains three times")
	}
	asOf := time.Date(2024, 3, 31, 0, 0, 0, 0, time.UTC)
	b, cfg := synthShop(t, "protocols", asOf, synth.Options{Events: 20000, Users: 800, Items: 600, Days: 40, End: asOf, Seed: 5})
	res := map[string]*ProtocolResult{}
	for _, p := range Protocols {
		r := newRunner(cfg, b, false)
		got, err := r.EvalProtocol(context.Background(), p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if got.TestUsers < 50 {
			t.Fatalf("%s: %d test users", p, got.TestUsers)
		}
		for _, name := range []string{"model", "neural", "itemknn", "itemknn_recency", "popularity"} {
			m, ok := got.Metrics[name]
			if !ok || int(m["users"]) != got.TestUsers {
				t.Fatalf("%s: %s metrics %v (test users %d)", p, name, m, got.TestUsers)
			}
		}
		res[p] = got
	}
	for _, name := range []string{"model", "popularity"} {
		full, sampled := res["leave-one-out"].Metrics[name]["hr@10"], res["sampled"].Metrics[name]["hr@10"]
		if !(sampled > full) {
			t.Errorf("%s: sampled HR@10 %.4f not above full-ranking %.4f", name, sampled, full)
		}
	}
	// --sequence adds the encoder's row on the same users and leaves the
	// other rows as they were.
	r := newRunner(cfg, b, false)
	r.EvalSequence = true
	got, err := r.EvalProtocol(context.Background(), "leave-one-out")
	if err != nil {
		t.Fatal(err)
	}
	loo := res["leave-one-out"]
	if m := got.Metrics["sequence"]; int(m["users"]) != loo.TestUsers || !(m["hr@10"] > 0) || !slices.Contains(got.Names, "sequence") {
		t.Fatalf("sequence row %v (test users %d, rows %v)", m, loo.TestUsers, got.Names)
	}
	for _, name := range loo.Names {
		if !maps.Equal(got.Metrics[name], loo.Metrics[name]) {
			t.Errorf("%s changed with --sequence: %v vs %v", name, got.Metrics[name], loo.Metrics[name])
		}
	}
	if _, err := newRunner(cfg, b, false).EvalProtocol(context.Background(), "random"); !errors.As(err, new(*PermanentError)) {
		t.Errorf("unknown protocol: %v", err)
	}
}
