package jobs

import (
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/shelfml/shelf/configs"
	"github.com/shelfml/shelf/model"
)

// Windows are the holdout and purchase windows of a run: set in the config,
// or chosen from the span and density of the data read (split.test_days,
// split.validation_days, purchase.horizon_days, purchase.cutoffs left 0).
type Windows struct {
	TestDays       int     `json:"test_days"`
	ValidationDays int     `json:"validation_days"`
	HorizonDays    int     `json:"purchase_horizon_days,omitempty"`
	Cutoffs        int     `json:"purchase_cutoffs,omitempty"`
	SpanDays       float64 `json:"data_span_days"`
	FirstEvent     string  `json:"first_event"`
	Source         string  `json:"source"` // "config", "data" or "config+data"
	Reason         string  `json:"reason"`
	// PurchaseSkip says why the purchase stage cannot run on this data
	// ("" when it can or is disabled).
	PurchaseSkip string `json:"purchase_skip,omitempty"`
}

// starts are the test and validation windows' first seconds for a run
// whose window ends at end (exclusive): the test window is the last
// TestDays, validation the ValidationDays before it.
func (w Windows) starts(end time.Time) (testStart, valStart int64) {
	return end.AddDate(0, 0, -w.TestDays).Unix(), end.AddDate(0, 0, -w.TestDays-w.ValidationDays).Unix()
}

// windowSteps are the window lengths (days) tried, shortest first.
var windowSteps = []int{1, 2, 3, 7, 14, 28}

// chooseWindows sets the run's windows. A set value is kept, and one that
// cannot work on this data is a permanent error naming the setting, the
// span and a value that would work. An unset one is the shortest step
// whose window holds eval.min_users users with targets (users with a
// target event in it and history before it) within a quarter of the span;
// the validation window is as long as the test window.
func (e *env) chooseWindows(in *model.Interactions) (Windows, error) {
	cfg := e.cfg
	first := in.Events[0].Time()
	span := float64(e.end.Unix()-first) / 86400
	w := Windows{SpanDays: math.Round(span*100) / 100, FirstEvent: time.Unix(first, 0).UTC().Format(time.RFC3339),
		TestDays: cfg.Split.TestDays, ValidationDays: cfg.Split.ValidationDays}
	set := cfg.Split.TestDays > 0 && cfg.Split.ValidationDays > 0
	days := int(math.Floor(span))
	if set {
		if cfg.Split.TestDays+cfg.Split.ValidationDays >= days {
			t, v := suggestSplit(days)
			return w, Permanent(fmt.Errorf("split.test_days (%d) + split.validation_days (%d) = %d days, but the data spans only %.1f days (%s → %s): "+
				"nothing would be left to train on; use e.g. test_days %d and validation_days %d, or leave both unset to choose from the data",
				cfg.Split.TestDays, cfg.Split.ValidationDays, cfg.Split.TestDays+cfg.Split.ValidationDays, span,
				w.FirstEvent[:10], e.day.Format(time.DateOnly), t, v))
		}
		w.Source, w.Reason = "config", "split.test_days and split.validation_days as set"
	} else {
		if days < 3 {
			return w, Permanent(fmt.Errorf("split: the data spans %.1f days (%s → %s): at least 3 days are needed (training, validation and test windows of a day each); "+
				"widen events.lookback_days or check --date", span, w.FirstEvent[:10], e.day.Format(time.DateOnly)))
		}
		counts := usersWithTargets(in, e.cfg.TargetTypes(), e.end.Unix())
		limit := max(1, days/4)
		choice := 0
		for _, d := range windowSteps {
			if d > limit {
				break
			}
			choice = d
			if counts(d) >= cfg.Split.TargetUsers {
				break
			}
		}
		if choice == 0 {
			choice = 1
		}
		if cfg.Split.TestDays > 0 {
			w.TestDays = cfg.Split.TestDays
		} else {
			w.TestDays = choice
		}
		if cfg.Split.ValidationDays > 0 {
			w.ValidationDays = cfg.Split.ValidationDays
		} else {
			w.ValidationDays = w.TestDays
		}
		if w.TestDays+w.ValidationDays >= days {
			w.TestDays, w.ValidationDays = suggestSplit(days)
		}
		w.Source = "data"
		if cfg.Split.TestDays > 0 || cfg.Split.ValidationDays > 0 {
			w.Source = "config+data"
		}
		w.Reason = fmt.Sprintf("%d-day test and %d-day validation windows: the shortest of %v days with %d users with targets (split.target_users %d), within a quarter of the %.1f-day span",
			w.TestDays, w.ValidationDays, windowSteps, counts(w.TestDays), cfg.Split.TargetUsers, span)
	}
	if p := cfg.Purchase; p.Enabled {
		w.HorizonDays, w.Cutoffs = p.HorizonDays, p.Cutoffs
		if w.HorizonDays == 0 {
			w.HorizonDays = 7
			if days < 28 {
				w.HorizonDays = max(1, days/4)
			}
		}
		// Rows at cut-offs t0−2h … t0−cutoffs·h, each with history before it.
		room := days/w.HorizonDays - 2
		if w.Cutoffs == 0 {
			w.Cutoffs = min(8, room)
		}
		if w.Cutoffs < 2 || w.Cutoffs > room {
			w.PurchaseSkip = fmt.Sprintf("purchase predictions need %d horizons of %d days of history (purchase.cutoffs %d + 2), and the data spans %.1f days",
				max(w.Cutoffs, 2)+2, w.HorizonDays, max(w.Cutoffs, 2), span)
			if p.HorizonDays > 0 && p.Cutoffs > 0 {
				return w, Permanent(fmt.Errorf("purchase.horizon_days %d and purchase.cutoffs %d need %d days of history, but the data spans %.1f days (%s → %s): "+
					"use e.g. cutoffs %d, or leave both unset to choose from the data", p.HorizonDays, p.Cutoffs, (p.Cutoffs+2)*p.HorizonDays, span,
					w.FirstEvent[:10], e.day.Format(time.DateOnly), max(2, room)))
			}
		}
	}
	return w, nil
}

// suggestSplit is a test and a validation window that leave at least half
// of days to train on.
func suggestSplit(days int) (test, val int) {
	t := max(1, days/4)
	return t, max(1, min(t, days-2*t))
}

// usersWithTargets returns, for a window of d days before end, how many
// users have an event of a target type in it and an event before it (an
// upper bound of the holdout's users: it ignores items first seen in the
// window, which the holdout drops).
func usersWithTargets(in *model.Interactions, targets configs.TypeMask, end int64) func(d int) int {
	firstTS := make([]int64, in.Users.Len())
	lastTarget := make([]int64, in.Users.Len())
	for u := range firstTS {
		firstTS[u], lastTarget[u] = math.MaxInt64, math.MinInt64
	}
	for _, e := range in.Events {
		firstTS[e.User] = min(firstTS[e.User], e.Time())
		if targets.Has(e.Type) {
			lastTarget[e.User] = max(lastTarget[e.User], e.Time())
		}
	}
	type span struct{ first, last int64 }
	users := make([]span, 0, len(firstTS))
	for u := range firstTS {
		if lastTarget[u] > math.MinInt64 {
			users = append(users, span{firstTS[u], lastTarget[u]})
		}
	}
	sort.Slice(users, func(i, j int) bool { return users[i].last > users[j].last })
	return func(d int) int {
		from := end - int64(d)*86400
		n := 0
		for _, s := range users {
			if s.last < from {
				break
			}
			if s.first < from {
				n++
			}
		}
		return n
	}
}
