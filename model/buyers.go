package model

import (
	"maps"
	"math"
	"slices"
	"sort"
	"strconv"
	"sync"
)

// Purchase prediction ("who buys in the next week") works on per-user
// feature rows computed at a cut-off t from events with TS <= t only.

// BuyerSpec chooses the columns of BuyerFeatures. A version saves the
// spec it was trained with, so scoring it computes the same columns.
type BuyerSpec struct {
	// Windows are the look-back windows, in days, of the per-type counts.
	Windows []int
	// Spend adds log1p spend over 30 and 90 days: Σ quantity × price over
	// purchases, quantity 1 where the events have none, the event's price
	// or else ItemPrice's.
	Spend bool
	// ItemPrice is the catalog price per item index (NaN = unknown); nil = none.
	ItemPrice []float32
	// ItemCategory is the catalog category per item index (-1 = unknown);
	// non-nil adds the distinct-category columns.
	ItemCategory []int32
}

// DefaultBuyerWindows are the count windows when the config names none.
var DefaultBuyerWindows = []int{1, 7, 30, 90}

const day = 86400

// Names names the columns of BuyerFeatures for the given event types.
func (s BuyerSpec) Names(types []EventType) []string {
	var names []string
	for _, t := range types {
		for _, w := range s.Windows {
			names = append(names, "log_count_"+t.Name+"_"+strconv.Itoa(w)+"d")
		}
	}
	names = append(names,
		"days_since_last_event", "days_since_last_purchase", "ever_purchased",
		"log_purchases", "log_distinct_items", "log_purchase_days")
	if s.Spend {
		names = append(names, "log_spend_30d", "log_spend_90d")
	}
	names = append(names, "log_cart_without_purchase_30d",
		"interarrival_mean_days", "interarrival_std_days", "overdue_ratio", "tenure_days")
	if s.ItemCategory != nil {
		names = append(names, "log_distinct_categories", "log_distinct_categories_bought")
	}
	return names
}

// price is what a purchase event cost per unit under s (0 when unknown).
func (s BuyerSpec) price(e Event) float32 {
	if e.Price > 0 || int(e.Item) >= len(s.ItemPrice) {
		return e.Price
	}
	if p := s.ItemPrice[e.Item]; !math.IsNaN(float64(p)) {
		return p
	}
	return 0
}

// recencyCap bounds day counts so one dormant user does not dominate scaling.
const recencyCap = 365

// BuyerFeatures computes one row per user with any event at or before t
// (users in ascending index order), columns as s.Names, on both cores:
// each user's row reads that user's events only, in time order.
func BuyerFeatures(g *ByUser, t int64, s BuyerSpec) (users []int32, x []float32, f int) {
	in := g.In
	f = len(s.Names(in.Types))
	users = g.active(t)
	x = make([]float32, len(users)*f)
	nCat := int32(0)
	for _, c := range s.ItemCategory {
		nCat = max(nCat, c+1)
	}
	eachUser(len(users), func() *buyerScratch { return new(buyerScratch) }, func(sc *buyerScratch, r int) {
		sc.items.reset(in.Items.Len())
		sc.cats.reset(int(nCat))
		sc.bought.reset(int(nCat))
		s.row(g, users[r], t, sc, x[r*f:(r+1)*f])
	})
	return users, x, f
}

// buyerScratch is one worker's per-user state of BuyerFeatures.
type buyerScratch struct {
	items, cats, bought marks
	counts              []float32
	buyDays             []int64
}

// row writes user u's features at t into dst (len(s.Names)).
func (s BuyerSpec) row(g *ByUser, u int32, t int64, sc *buyerScratch, dst []float32) {
	in := g.In
	nW := len(s.Windows)
	if n := len(in.Types) * nW; cap(sc.counts) < n {
		sc.counts = make([]float32, n)
	} else {
		sc.counts = sc.counts[:n]
		clear(sc.counts)
	}
	c := sc.counts
	sc.buyDays = sc.buyDays[:0]
	ev := g.upTo(u, t) // not empty: u is active at t
	var (
		distinct, purchases      int
		first                          = in.Events[ev[0]].Time()
		last, lastBuy            int64 = 0, -1
		spend30, spend90, cart30 float32
		buys30                   float32
		nCats, nCatsBought       int
	)
	for _, p := range ev {
		e := in.Events[p]
		age := t - e.Time()
		for w, d := range s.Windows {
			if age < int64(d)*day {
				c[int(e.Type)*nW+w]++
			}
		}
		last = e.Time()
		if sc.items.add(e.Item) {
			distinct++
		}
		buy := in.Types[e.Type].Purchase
		if int(e.Item) < len(s.ItemCategory) && s.ItemCategory[e.Item] >= 0 {
			cat := s.ItemCategory[e.Item]
			if sc.cats.add(cat) {
				nCats++
			}
			if buy && sc.bought.add(cat) {
				nCatsBought++
			}
		}
		if buy {
			purchases++
			lastBuy = e.Time()
			d := e.Time() / day
			if n := len(sc.buyDays); n == 0 || sc.buyDays[n-1] != d {
				sc.buyDays = append(sc.buyDays, d)
			}
			q := e.Quantity
			if q <= 0 {
				q = 1
			}
			spend := q * s.price(e)
			if age < 30*day {
				spend30 += spend
				buys30++
			}
			if age < 90*day {
				spend90 += spend
			}
		} else if in.Types[e.Type].Name == "cart" && age < 30*day {
			cart30++
		}
	}
	x := dst[:0]
	for _, v := range c {
		x = append(x, log1p(v))
	}
	days := func(s int64) float32 { return float32(min(float64(s)/day, recencyCap)) }
	since := float32(recencyCap)
	ever := float32(0)
	if lastBuy >= 0 {
		since, ever = days(t-lastBuy), 1
	}
	var mean, sd, overdue float32
	if n := len(sc.buyDays); n >= 2 {
		var s, s2 float64
		for i := 1; i < n; i++ {
			g := float64(sc.buyDays[i] - sc.buyDays[i-1])
			s += g
			s2 += g * g
		}
		m := s / float64(n-1)
		mean = float32(m)
		sd = float32(math.Sqrt(max(0, s2/float64(n-1)-m*m)))
		overdue = float32(math.Min(float64(since)/m, 10))
	}
	x = append(x, days(t-last), since, ever,
		log1p(float32(purchases)), log1p(float32(distinct)), log1p(float32(len(sc.buyDays))))
	if s.Spend {
		x = append(x, log1p(max(spend30, 0)), log1p(max(spend90, 0)))
	}
	x = append(x, log1p(max(cart30-buys30, 0)), mean, sd, overdue, days(t-first))
	if s.ItemCategory != nil {
		x = append(x, log1p(float32(nCats)), log1p(float32(nCatsBought)))
	}
	if len(x) != len(dst) {
		panic("model: BuyerFeatures row length differs from its column names")
	}
}

func log1p(v float32) float32 { return float32(math.Log1p(float64(v))) }

// BuyerLabels is 1 for users with a purchase event in (t, t+horizon].
func BuyerLabels(in *Interactions, users []int32, t, horizon int64) []float32 {
	lo := sort.Search(len(in.Events), func(i int) bool { return in.Events[i].Time() > t })
	bought := make([]bool, in.Users.Len())
	for _, e := range in.Events[lo:] {
		if e.Time() > t+horizon {
			break
		}
		if in.Types[e.Type].Purchase {
			bought[e.User] = true
		}
	}
	y := make([]float32, len(users))
	for i, u := range users {
		if bought[u] {
			y[i] = 1
		}
	}
	return y
}

// Standardizer scales feature columns to zero mean and unit variance; its
// statistics are saved with the model so serving scales identically.
type Standardizer struct {
	Mean, Std []float32
}

// FitStandardizer computes column statistics of the n×f matrix x.
func FitStandardizer(x []float32, f int) Standardizer {
	s := Standardizer{Mean: make([]float32, f), Std: make([]float32, f)}
	n := len(x) / f
	if n == 0 {
		for j := range s.Std {
			s.Std[j] = 1
		}
		return s
	}
	for j := 0; j < f; j++ {
		var m, m2 float64
		for i := 0; i < n; i++ {
			v := float64(x[i*f+j])
			m += v
			m2 += v * v
		}
		m /= float64(n)
		sd := math.Sqrt(max(0, m2/float64(n)-m*m))
		if sd < 1e-6 {
			sd = 1
		}
		s.Mean[j], s.Std[j] = float32(m), float32(sd)
	}
	return s
}

// Apply scales x (n×f) in place.
func (s Standardizer) Apply(x []float32) {
	f := len(s.Mean)
	for i := range x {
		j := i % f
		x[i] = (x[i] - s.Mean[j]) / s.Std[j]
	}
}

// NextItems ranks, for each user, the items they are most likely to buy in
// the coming week from their own history at cut-off t (re-purchases
// included — that is what stock planning needs):
//
//	score(u, i) = cycle(u, i) + intent(u, i)
//
// cycle: for an item bought on ≥ 2 distinct days with mean gap g days and
// s days since the last purchase, exp(−|s − g| / g) (due now = 1); bought on
// one day only, 0.5·exp(−s / 30). intent: Σ over the user's views and carts
// of the item since its last purchase of weight·exp(−age / 7 days), weights
// from the event types (a cart outweighs a view).
//
// A user's list is computed when asked for, from that user's events: no
// state grows with the log. Safe for concurrent use.
type NextItems struct {
	g    *ByUser
	t    int64
	pool sync.Pool // *nextScratch
}

// nextScratch is one caller's per-user state of NextItems.Top.
type nextScratch struct {
	slot  []int32 // item → 1 + position in acc, valid when seen has the item
	seen  marks
	acc   []nextItem
	items []Scored
}

type nextItem struct {
	item              int32
	firstDay, lastDay int64
	buyDays           int
	intent            float64
}

// NewNextItems scores users' history items at cut-off t.
func NewNextItems(g *ByUser, t int64) *NextItems {
	n := &NextItems{g: g, t: t}
	n.pool.New = func() any { return &nextScratch{slot: make([]int32, g.In.Items.Len())} }
	return n
}

// Top appends user u's k best items to dst.
func (n *NextItems) Top(u int32, k int, dst []Scored) []Scored {
	if u < 0 || int(u) >= n.g.In.Users.Len() || k <= 0 {
		return dst
	}
	in, t := n.g.In, n.t
	s := n.pool.Get().(*nextScratch)
	defer n.pool.Put(s)
	s.seen.reset(len(s.slot))
	s.acc = s.acc[:0]
	for _, p := range n.g.upTo(u, t) {
		e := in.Events[p]
		if s.seen.add(e.Item) {
			s.acc = append(s.acc, nextItem{item: e.Item, lastDay: -1})
			s.slot[e.Item] = int32(len(s.acc))
		}
		a := &s.acc[s.slot[e.Item]-1]
		ty := in.Types[e.Type]
		if ty.Purchase {
			d := e.Time() / day
			if a.buyDays == 0 {
				a.firstDay = d
			}
			if a.buyDays == 0 || a.lastDay != d {
				a.buyDays++
				a.lastDay = d
			}
			a.intent = 0 // intent before a purchase was satisfied by it
			continue
		}
		a.intent += float64(ty.Weight) * math.Exp(-float64(t-e.Time())/(7*day))
	}
	s.items = s.items[:0]
	for _, a := range s.acc {
		var cycle float64
		if b := a.buyDays; b > 0 {
			since := float64(t/day - a.lastDay)
			if b >= 2 {
				g := float64(a.lastDay-a.firstDay) / float64(b-1)
				cycle = math.Exp(-math.Abs(since-g) / g)
			} else {
				cycle = 0.5 * math.Exp(-since/30)
			}
		}
		if sc := cycle + a.intent; sc > 0 {
			s.items = append(s.items, Scored{Item: a.item, Score: float32(sc), Reason: a.item})
		}
	}
	slices.SortFunc(s.items, compareScored)
	return append(dst, s.items[:min(k, len(s.items))]...)
}

// ItemLister gives a user's k most likely next purchases, best first.
type ItemLister interface {
	Top(u int32, k int, dst []Scored) []Scored
}

// ItemListerFunc adapts a function to ItemLister.
type ItemListerFunc func(u int32, k int, dst []Scored) []Scored

// Top implements ItemLister.
func (f ItemListerFunc) Top(u int32, k int, dst []Scored) []Scored { return f(u, k, dst) }

// blendK is the rank offset of BlendNextItems' reciprocal-rank fusion: it
// damps the gap between the first places (chosen on Online Retail II's
// validation weeks among 5, 10, 20, 40 and 60).
const blendK = 20

// BlendNextItems merges a user's NextItems list next (best first) with a
// ranking recommender's list rank (best first, same item indices, history
// items not excluded) by reciprocal-rank fusion and appends the k best to
// dst, scored
//
//	(1−w)/(20 + p_next) + w/(20 + p_rank)
//
// with p the item's 0-based position in each list (a list without the item
// adds 0). Ties go to the better ranking position, then the lower item
// index: w = 0 is NextItems followed by the ranking's other items, w = 1
// the ranking alone.
func BlendNextItems(next, rank []Scored, w float32, k int, dst []Scored) []Scored {
	type cand struct {
		s     Scored
		r     int
		score float32
	}
	cs := make([]cand, 0, len(next)+len(rank))
	at := make(map[int32]int, len(next)+len(rank))
	for p, x := range next {
		at[x.Item] = len(cs)
		cs = append(cs, cand{s: x, r: len(rank), score: (1 - w) / float32(blendK+p)})
	}
	for r, x := range rank {
		i, ok := at[x.Item]
		if !ok {
			i = len(cs)
			at[x.Item] = i
			cs = append(cs, cand{s: x, r: len(rank)})
		}
		if r < cs[i].r {
			cs[i].r = r
			cs[i].score += w / float32(blendK+r)
		}
	}
	sort.Slice(cs, func(i, j int) bool {
		a, b := cs[i], cs[j]
		if a.score != b.score {
			return a.score > b.score
		}
		if a.r != b.r {
			return a.r < b.r
		}
		return a.s.Item < b.s.Item
	})
	for _, c := range cs[:min(k, len(cs))] {
		dst = append(dst, Scored{Item: c.s.Item, Score: c.score, Reason: c.s.Reason})
	}
	return dst
}

// NextItemsMetrics are HR@5 and Recall@10 of an item list on next week's purchases.
type NextItemsMetrics struct {
	Users    int     `json:"users"`
	HR5      float64 `json:"hr@5"`
	Recall10 float64 `json:"recall@10"`
}

// nextPurchases is, per user with a purchase in (t, t+horizon], the items bought.
func nextPurchases(in *Interactions, t, horizon int64) map[int32]map[int32]bool {
	lo := sort.Search(len(in.Events), func(i int) bool { return in.Events[i].Time() > t })
	bought := map[int32]map[int32]bool{}
	for _, e := range in.Events[lo:] {
		if e.Time() > t+horizon {
			break
		}
		if in.Types[e.Type].Purchase {
			if bought[e.User] == nil {
				bought[e.User] = map[int32]bool{}
			}
			bought[e.User][e.Item] = true
		}
	}
	return bought
}

// Purchasers are the users with a purchase in (t, t+horizon], ascending:
// the users EvaluateNextItems asks n about.
func Purchasers(in *Interactions, t, horizon int64) []int32 {
	return slices.Sorted(maps.Keys(nextPurchases(in, t, horizon)))
}

// EvaluateNextItems scores n on the purchases in (t, t+horizon] of every
// user who made one.
func EvaluateNextItems(in *Interactions, n ItemLister, t, horizon int64) NextItemsMetrics {
	bought := nextPurchases(in, t, horizon)
	var m NextItemsMetrics
	var top []Scored
	for _, u := range slices.Sorted(maps.Keys(bought)) { // sorted: the float sums must not depend on map order
		items := bought[u]
		top = n.Top(u, 10, top[:0])
		hits5, hits10 := 0, 0
		for r, s := range top {
			if items[s.Item] {
				hits10++
				if r < 5 {
					hits5++
				}
			}
		}
		m.Users++
		if hits5 > 0 {
			m.HR5++
		}
		m.Recall10 += float64(hits10) / float64(len(items))
	}
	if m.Users > 0 {
		m.HR5 /= float64(m.Users)
		m.Recall10 /= float64(m.Users)
	}
	return m
}
