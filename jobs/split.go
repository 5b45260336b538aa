package jobs

import (
	"cmp"
	"math"
	"slices"
	"sort"

	"github.com/shelfml/shelf/configs"
	"github.com/shelfml/shelf/model"
	"github.com/shelfml/shelf/model/nn"
)

// slice is one training period of the event log (events before a cut-off),
// with compact local indices: only users and items seen in it exist, so a
// model or baseline fit on it can rank only items it has seen.
type slice struct {
	cutoff    int64
	events    []model.Event // the events the slice was built from (a view), all before cutoff
	users     []int32       // local → global
	items     []int32
	userLocal []int32 // global → local, -1 if absent
	itemLocal []int32
	ui        *model.CSR // local users × items, weight log1p(Σ decayed type weights)
	age       []uint32   // per entry of ui: seconds from the user's last event with the item to cutoff
	purchased [][]int32  // per local user: purchased local items, sorted
	excluded  [][]int32  // per local user: items of the excluded types (score.exclude), sorted; nil = every seen item
	popScore  []float32  // per local item: Σ type weight × popularity decay (the popularity baseline)
}

// positives are the slice's training pairs, one per (user, item) of ui,
// weight normalised to mean 1: built for each fit and let go after it
// (12 B per pair that a slice need not hold between fits).
func (s *slice) positives() []nn.Positive {
	raw := s.ui
	var sum float64
	for _, v := range raw.Val {
		sum += float64(v)
	}
	mean := float32(sum / math.Max(1, float64(len(raw.Val))))
	out := make([]nn.Positive, 0, len(raw.Val))
	for u := 0; u < raw.Rows; u++ {
		idx, val := raw.Row(int32(u))
		for j, it := range idx {
			out = append(out, nn.Positive{User: int32(u), Item: it, Weight: val[j] / mean})
		}
	}
	return out
}

// nPositives is len(s.positives()), without building them.
func (s *slice) nPositives() int {
	if s.ui == nil {
		return 0
	}
	return len(s.ui.Val)
}

// eventAge is cutoff − ts in seconds, as a slice keeps it: events lie
// before their slice's cutoff, and a window spans far less than the 136
// years a uint32 of seconds holds (an older event saturates).
func eventAge(cutoff, ts int64) uint32 {
	return uint32(min(max(cutoff-ts, 0), math.MaxUint32))
}

// decay returns 0.5^(age/halfLife) (1 when halfLife is 0).
func decay(age float64, halfLifeDays float64) float32 {
	if halfLifeDays <= 0 {
		return 1
	}
	return float32(math.Exp2(-age / (halfLifeDays * 86400)))
}

// newSlice builds the training view of events (sorted by TS) before
// cutoff with the run's decay, popularity and exclusion settings.
func (e *env) newSlice(in *model.Interactions, cutoff int64) *slice {
	return newSliceExcluding(in, cutoff, e.cfg.Train.HalfLifeDays, e.cfg.Baselines.PopularityHalfLifeDays, e.cfg.ExcludedTypes())
}

// newSlice builds the training view of events (sorted by TS) before
// cutoff, excluding every seen item from a user's lists.
func newSlice(in *model.Interactions, cutoff int64, halfLifeDays, popHalfLifeDays float64) *slice {
	return newSliceExcluding(in, cutoff, halfLifeDays, popHalfLifeDays, nil)
}

// newSliceExcluding is newSlice whose users' lists leave out the items of
// the types in excl (nil = every type: all seen items).
func newSliceExcluding(in *model.Interactions, cutoff int64, halfLifeDays, popHalfLifeDays float64, excl configs.TypeMask) *slice {
	n := sort.Search(len(in.Events), func(i int) bool { return in.Events[i].Time() >= cutoff })
	return sliceOfEvents(in, in.Events[:n], cutoff, halfLifeDays, popHalfLifeDays, excl)
}

// newSliceOf is the training view of the given events (a subset of
// in.Events in time order, all before cutoff), ages measured from cutoff,
// with the run's settings: how the offline protocols train on per-user
// cut-offs.
func (e *env) newSliceOf(in *model.Interactions, ev []model.Event, cutoff int64) *slice {
	return sliceOfEvents(in, ev, cutoff, e.cfg.Train.HalfLifeDays, e.cfg.Baselines.PopularityHalfLifeDays, e.cfg.ExcludedTypes())
}

func sliceOfEvents(in *model.Interactions, ev []model.Event, cutoff int64, halfLifeDays, popHalfLifeDays float64, excl configs.TypeMask) *slice {
	s := &slice{cutoff: cutoff, events: ev, userLocal: fill(in.Users.Len()), itemLocal: fill(in.Items.Len())}
	rows := make([]int32, len(ev))
	cols := make([]int32, len(ev))
	vals := make([]float32, len(ev))
	// Local ids in global index order, so results do not depend on event order.
	seenU := make([]bool, in.Users.Len())
	seenI := make([]bool, in.Items.Len())
	for _, e := range ev {
		seenU[e.User], seenI[e.Item] = true, true
	}
	for g, ok := range seenU {
		if ok {
			s.userLocal[g] = int32(len(s.users))
			s.users = append(s.users, int32(g))
		}
	}
	for g, ok := range seenI {
		if ok {
			s.itemLocal[g] = int32(len(s.items))
			s.items = append(s.items, int32(g))
		}
	}
	s.popScore = make([]float32, len(s.items))
	var pr, pc, xr, xc []int32
	for k, e := range ev {
		age := float64(cutoff - e.Time())
		w := in.Weight(e)
		rows[k], cols[k] = s.userLocal[e.User], s.itemLocal[e.Item]
		vals[k] = w * decay(age, halfLifeDays)
		s.popScore[cols[k]] += w * decay(age, popHalfLifeDays) // in event order, as model.NewPopularity sums
		if in.IsPurchase(e) {
			pr, pc = append(pr, rows[k]), append(pc, cols[k])
		}
		if excl != nil && excl.Has(e.Type) {
			xr, xc = append(xr, rows[k]), append(xc, cols[k])
		}
	}
	raw := model.NewCSR(len(s.users), len(s.items), rows, cols, vals)
	for i := range raw.Val {
		raw.Val[i] = float32(math.Log1p(float64(raw.Val[i])))
	}
	s.ui = raw
	// The latest event of a (user, item) sets its age.
	s.age = make([]uint32, len(raw.Idx))
	for p := range s.age {
		s.age[p] = math.MaxUint32
	}
	for k, e := range ev {
		idx, _ := raw.Row(rows[k])
		p := int(raw.Ptr[rows[k]]) + sort.Search(len(idx), func(q int) bool { return idx[q] >= cols[k] })
		s.age[p] = min(s.age[p], eventAge(cutoff, e.Time()))
	}
	ones := make([]float32, len(pr))
	pm := model.NewCSR(len(s.users), len(s.items), pr, pc, ones)
	s.purchased = make([][]int32, len(s.users))
	for u := range s.purchased {
		idx, _ := pm.Row(int32(u))
		s.purchased[u] = idx
	}
	if excl != nil {
		xm := model.NewCSR(len(s.users), len(s.items), xr, xc, make([]float32, len(xr)))
		s.excluded = make([][]int32, len(s.users))
		for u := range s.excluded {
			idx, _ := xm.Row(int32(u))
			s.excluded[u] = idx
		}
	}
	return s
}

// exclude returns the local items a user's lists leave out (sorted).
func (s *slice) exclude(u int32) []int32 {
	if s.excluded == nil {
		idx, _ := s.ui.Row(u)
		return idx
	}
	return s.excluded[u]
}

// isExcluded reports whether local item it is excluded for user u.
func (s *slice) isExcluded(u, it int32) bool {
	if s.excluded == nil {
		return s.ui.Has(u, it)
	}
	ex := s.excluded[u]
	i := sort.Search(len(ex), func(i int) bool { return ex[i] >= it })
	return i < len(ex) && ex[i] == it
}

// history is the users' history weights for ItemKNN scoring: the
// interaction weight (1 when binary) times 0.5^(age of the last event with
// the item / halfLifeDays); halfLifeDays 0 = no decay.
func (s *slice) history(binary bool, halfLifeDays float64) *model.CSR {
	return s.historyRanked(binary, halfLifeDays, 0)
}

// historyRanked is history with each item's weight also decayed by its
// recency rank in the user's row: the most recent item (and every item
// last touched at that same second: one basket) has rank 0, the next
// distinct time rank 1, and so on; the weight is multiplied by
// 0.5^(rank/halfLifeEvents). 0 = no rank decay.
func (s *slice) historyRanked(binary bool, halfLifeDays, halfLifeEvents float64) *model.CSR {
	h := *s.ui
	h.Val = make([]float32, len(s.ui.Val))
	for p := range h.Val {
		w := float32(1)
		if !binary {
			w = s.ui.Val[p]
		}
		h.Val[p] = w * decay(float64(s.age[p]), halfLifeDays)
	}
	if halfLifeEvents > 0 {
		var order []int64
		for u := 0; u < h.Rows; u++ {
			lo, hi := h.Ptr[u], h.Ptr[u+1]
			order = order[:0]
			for p := lo; p < hi; p++ {
				order = append(order, p)
			}
			// Most recent first; ties by position, so the order is total.
			slices.SortFunc(order, func(a, b int64) int {
				if c := cmp.Compare(s.age[a], s.age[b]); c != 0 {
					return c
				}
				return cmp.Compare(a, b)
			})
			rank := 0
			for i, p := range order {
				if i > 0 && s.age[p] != s.age[order[i-1]] {
					rank++
				}
				h.Val[p] *= float32(math.Exp2(-float64(rank) / halfLifeEvents))
			}
		}
	}
	return &h
}

func fill(n int) []int32 {
	out := make([]int32, n)
	for i := range out {
		out[i] = -1
	}
	return out
}

// holdout is an evaluation target set in a slice's local indices.
type holdout struct {
	in      model.EvalInput
	dropped int // target (user, item) pairs whose item is unseen in training
}

// newHoldout builds the run's holdout on events in [from, to): targets are
// the items of the target types (eval.targets) a user with training history
// touched in the window and that the table would not exclude for them
// (score.exclude); items unseen in training are dropped and counted; the
// excluded items are excluded from the ranking too.
func (e *env) newHoldout(in *model.Interactions, s *slice, from, to int64, ks []int) holdout {
	return newHoldoutTargets(in, s, from, to, ks, e.cfg.TargetTypes())
}

// newHoldout is the retail2 protocol: every event type counts as a target,
// every training item is excluded (the slice's exclusion).
func newHoldout(in *model.Interactions, s *slice, from, to int64, ks []int) holdout {
	return newHoldoutTargets(in, s, from, to, ks, nil)
}

func newHoldoutTargets(in *model.Interactions, s *slice, from, to int64, ks []int, targets configs.TypeMask) holdout {
	lo := sort.Search(len(in.Events), func(i int) bool { return in.Events[i].Time() >= from })
	hi := sort.Search(len(in.Events), func(i int) bool { return in.Events[i].Time() >= to })
	win := in.Events[lo:hi]
	tset := map[int32]map[int32]bool{}
	h := holdout{}
	for _, e := range win {
		if !targets.Has(e.Type) {
			continue
		}
		u := s.userLocal[e.User]
		if u < 0 {
			continue
		}
		it := s.itemLocal[e.Item]
		if it < 0 {
			if tset[u] == nil {
				tset[u] = map[int32]bool{}
			}
			if !tset[u][-1-e.Item] {
				tset[u][-1-e.Item] = true
				h.dropped++
			}
			continue
		}
		if s.isExcluded(u, it) {
			continue
		}
		if tset[u] == nil {
			tset[u] = map[int32]bool{}
		}
		tset[u][it] = true
	}
	users := make([]int32, 0, len(tset))
	for u := range tset {
		users = append(users, u)
	}
	sort.Slice(users, func(i, j int) bool { return users[i] < users[j] })
	for _, u := range users {
		var t []int32
		for it := range tset[u] {
			if it >= 0 {
				t = append(t, it)
			}
		}
		if len(t) == 0 {
			continue
		}
		sort.Slice(t, func(i, j int) bool { return t[i] < t[j] })
		h.in.Users = append(h.in.Users, u)
		h.in.Targets = append(h.in.Targets, t)
		h.in.Exclude = append(h.in.Exclude, s.exclude(u))
	}
	h.in.Ks = ks
	h.in.NItems = len(s.items)
	return h
}

// subsample keeps at most n users of a holdout, evenly spaced (deterministic).
func (h holdout) subsample(n int) model.EvalInput {
	if len(h.in.Users) <= n {
		return h.in
	}
	out := model.EvalInput{Ks: h.in.Ks, NItems: h.in.NItems}
	step := float64(len(h.in.Users)) / float64(n)
	for k := 0; k < n; k++ {
		i := int(float64(k) * step)
		out.Users = append(out.Users, h.in.Users[i])
		out.Targets = append(out.Targets, h.in.Targets[i])
		out.Exclude = append(out.Exclude, h.in.Exclude[i])
	}
	return out
}
