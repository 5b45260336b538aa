package model

import (
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"testing"
)

// The per-user forms of BuyerFeatures and NextItems must give the same bits
// as the whole-log forms they replaced (kept here as references: one pass
// over the log with (user, item) and (user, category) hash sets).

func randomPurchaseLog(rng *rand.Rand, users, items, events int) *Interactions {
	in := &Interactions{Users: NewVocab(), Items: NewVocab(),
		Types: []EventType{{Name: "view", Weight: 1}, {Name: "cart", Weight: 3}, {Name: "favorite", Weight: 2}, {Name: "purchase", Weight: 5, Purchase: true}}}
	for u := range users {
		in.Users.Add("u" + strconv.Itoa(u))
	}
	for i := range items {
		in.Items.Add("i" + strconv.Itoa(i))
	}
	for range events {
		u := int32(rng.IntN(users))
		it := int32((int(u)*7 + rng.IntN(1+items/4)) % items) // users revisit a few items
		e := Event{TS: uint32(int64(rng.IntN(90*day)) / 600 * 600), User: u, Item: it, Type: uint8(rng.IntN(4))}
		if e.Type == 3 {
			e.Quantity = float32(rng.IntN(4)) - 0.5
			if rng.IntN(3) > 0 {
				e.Price = float32(rng.IntN(3000)) / 100
			}
		}
		in.Events = append(in.Events, e)
	}
	SortEvents(in.Events)
	return in
}

func TestBuyerFeaturesMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	in := randomPurchaseLog(rng, 3000, 400, 60000) // > 1024 users: both workers run
	price := make([]float32, 400)
	cat := make([]int32, 400)
	for i := range price {
		price[i], cat[i] = float32(i%17)+0.5, int32(i%23)-1 // some unknown
		if i%11 == 0 {
			price[i] = float32(math.NaN())
		}
	}
	g := GroupByUser(in)
	specs := []BuyerSpec{
		{Windows: DefaultBuyerWindows, Spend: true},
		{Windows: []int{3, 14}, Spend: true, ItemPrice: price, ItemCategory: cat},
	}
	for _, spec := range specs {
		for _, tc := range []int64{2 * day, 30*day + 1234, 60 * day, 89 * day} {
			u1, x1, f1 := BuyerFeatures(g, tc, spec)
			u2, x2, f2 := buyerFeaturesRef(in, tc, spec)
			if f1 != f2 || !slices.Equal(u1, u2) || len(x1) != len(x2) {
				t.Fatalf("t=%d: shapes differ: %d users f=%d vs %d users f=%d", tc, len(u1), f1, len(u2), f2)
			}
			for k := range x1 {
				if math.Float32bits(x1[k]) != math.Float32bits(x2[k]) {
					t.Fatalf("t=%d user %d column %d: %v, reference %v", tc, u1[k/f1], k%f1, x1[k], x2[k])
				}
			}
		}
	}
}

func TestNextItemsMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(6, 6))
	in := randomPurchaseLog(rng, 500, 300, 30000)
	g := GroupByUser(in)
	for _, tc := range []int64{10 * day, 45*day + 77, 89 * day} {
		ref := nextItemsRef(in, tc)
		n := NewNextItems(g, tc)
		for u := range int32(500) {
			got := n.Top(u, math.MaxInt, nil)
			want := ref[u]
			if len(got) != len(want) {
				t.Fatalf("t=%d user %d: %d items, reference %d", tc, u, len(got), len(want))
			}
			for k := range got {
				if got[k] != want[k] {
					t.Fatalf("t=%d user %d [%d]: %+v, reference %+v", tc, u, k, got[k], want[k])
				}
			}
			if top := n.Top(u, 3, nil); !slices.Equal(top, want[:min(3, len(want))]) {
				t.Fatalf("t=%d user %d top 3: %+v", tc, u, top)
			}
		}
	}
}

func buyerFeaturesRef(in *Interactions, t int64, s BuyerSpec) (users []int32, x []float32, f int) {
	nT := len(in.Types)
	nW := len(s.Windows)
	f = len(s.Names(in.Types))
	type acc struct {
		distinct                 int
		first, last, lastBuy     int64
		purchases                int
		buyDays                  []int64
		spend30, spend90, cart30 float32
		buys30                   float32
		cats, catsBought         int
	}
	hi := sort.Search(len(in.Events), func(i int) bool { return in.Events[i].Time() > t })
	// accumulators by dense user index (slot[u] = 1 + position in accs)
	slot := make([]int32, in.Users.Len())
	var accs []acc
	var counts []float32 // nT·nW per user, in accs order
	items := make(map[int64]struct{}, hi/4)
	cats := make(map[int64]bool) // user<<32|category → bought
	for _, e := range in.Events[:hi] {
		si := slot[e.User]
		if si == 0 {
			accs = append(accs, acc{first: e.Time(), lastBuy: -1})
			counts = append(counts, make([]float32, nT*nW)...)
			si = int32(len(accs))
			slot[e.User] = si
		}
		a := &accs[si-1]
		c := counts[int(si-1)*nT*nW : int(si)*nT*nW]
		age := t - e.Time()
		for w, d := range s.Windows {
			if age < int64(d)*day {
				c[int(e.Type)*nW+w]++
			}
		}
		a.last = e.Time()
		k := int64(e.User)<<32 | int64(uint32(e.Item))
		if _, ok := items[k]; !ok {
			items[k] = struct{}{}
			a.distinct++
		}
		buy := in.Types[e.Type].Purchase
		if int(e.Item) < len(s.ItemCategory) && s.ItemCategory[e.Item] >= 0 {
			ck := int64(e.User)<<32 | int64(uint32(s.ItemCategory[e.Item]))
			bought, seen := cats[ck]
			if !seen {
				a.cats++
				cats[ck] = false
			}
			if buy && !bought {
				a.catsBought++
				cats[ck] = true
			}
		}
		if buy {
			a.purchases++
			a.lastBuy = e.Time()
			d := e.Time() / day
			if len(a.buyDays) == 0 || a.buyDays[len(a.buyDays)-1] != d {
				a.buyDays = append(a.buyDays, d)
			}
			q := e.Quantity
			if q <= 0 {
				q = 1
			}
			spend := q * s.price(e)
			if age < 30*day {
				a.spend30 += spend
				a.buys30++
			}
			if age < 90*day {
				a.spend90 += spend
			}
		} else if in.Types[e.Type].Name == "cart" && age < 30*day {
			a.cart30++
		}
	}
	for u, si := range slot {
		if si != 0 {
			users = append(users, int32(u))
		}
	}
	x = make([]float32, 0, len(users)*f)
	days := func(s int64) float32 { return float32(min(float64(s)/day, recencyCap)) }
	for _, u := range users {
		si := slot[u] - 1
		a := &accs[si]
		for _, c := range counts[int(si)*nT*nW : int(si+1)*nT*nW] {
			x = append(x, log1p(c))
		}
		since := float32(recencyCap)
		ever := float32(0)
		if a.lastBuy >= 0 {
			since, ever = days(t-a.lastBuy), 1
		}
		var mean, sd, overdue float32
		if n := len(a.buyDays); n >= 2 {
			var s, s2 float64
			for i := 1; i < n; i++ {
				g := float64(a.buyDays[i] - a.buyDays[i-1])
				s += g
				s2 += g * g
			}
			m := s / float64(n-1)
			mean = float32(m)
			sd = float32(math.Sqrt(max(0, s2/float64(n-1)-m*m)))
			overdue = float32(math.Min(float64(since)/m, 10))
		}
		x = append(x, days(t-a.last), since, ever,
			log1p(float32(a.purchases)), log1p(float32(a.distinct)), log1p(float32(len(a.buyDays))))
		if s.Spend {
			x = append(x, log1p(max(a.spend30, 0)), log1p(max(a.spend90, 0)))
		}
		x = append(x, log1p(max(a.cart30-a.buys30, 0)), mean, sd, overdue, days(t-a.first))
		if s.ItemCategory != nil {
			x = append(x, log1p(float32(a.cats)), log1p(float32(a.catsBought)))
		}
	}
	return users, x, f
}

func nextItemsRef(in *Interactions, t int64) map[int32][]Scored {
	type st struct {
		buyDays []int64
		intent  float64
	}
	hi := sort.Search(len(in.Events), func(i int) bool { return in.Events[i].Time() > t })
	acc := map[int64]*st{}
	for _, e := range in.Events[:hi] {
		k := int64(e.User)<<32 | int64(uint32(e.Item))
		a := acc[k]
		if a == nil {
			a = &st{}
			acc[k] = a
		}
		ty := in.Types[e.Type]
		if ty.Purchase {
			d := e.Time() / day
			if n := len(a.buyDays); n == 0 || a.buyDays[n-1] != d {
				a.buyDays = append(a.buyDays, d)
			}
			a.intent = 0 // intent before a purchase was satisfied by it
			continue
		}
		a.intent += float64(ty.Weight) * math.Exp(-float64(t-e.Time())/(7*day))
	}
	n := struct{ per map[int32][]Scored }{per: map[int32][]Scored{}}
	for k, a := range acc {
		u, it := int32(k>>32), int32(uint32(k))
		var cycle float64
		if b := len(a.buyDays); b > 0 {
			since := float64(t/day - a.buyDays[b-1])
			if b >= 2 {
				g := float64(a.buyDays[b-1]-a.buyDays[0]) / float64(b-1)
				cycle = math.Exp(-math.Abs(since-g) / g)
			} else {
				cycle = 0.5 * math.Exp(-since/30)
			}
		}
		if s := cycle + a.intent; s > 0 {
			n.per[u] = append(n.per[u], Scored{Item: it, Score: float32(s), Reason: it})
		}
	}
	for u, l := range n.per {
		sort.Slice(l, func(i, j int) bool {
			if l[i].Score != l[j].Score {
				return l[i].Score > l[j].Score
			}
			return l[i].Item < l[j].Item
		})
		n.per[u] = l
	}
	return n.per
}
