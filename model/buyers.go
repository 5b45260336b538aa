package model

import (
	"math"
	"sort"
	"strconv"
)

// Purchase prediction ("who buys in the next week") works on per-user
// feature rows computed at a cut-off t from events with TS <= t only.

// BuyerWindows are the look-back windows, in days, of the count features.
var BuyerWindows = []int{1, 7, 30, 90}

const day = 86400

// BuyerFeatureNames names the columns of BuyerFeatures for the given types.
func BuyerFeatureNames(types []EventType) []string {
	var names []string
	for _, t := range types {
		for _, w := range BuyerWindows {
			names = append(names, "log_count_"+t.Name+"_"+strconv.Itoa(w)+"d")
		}
	}
	return append(names,
		"days_since_last_event", "days_since_last_purchase", "ever_purchased",
		"log_purchases", "log_distinct_items", "log_purchase_days",
		"log_spend_30d", "log_spend_90d", "log_cart_without_purchase_30d",
		"interarrival_mean_days", "interarrival_std_days", "overdue_ratio", "tenure_days")
}

// recencyCap bounds day counts so one dormant user does not dominate scaling.
const recencyCap = 365

// BuyerFeatures computes one row per user with any event at or before t
// (users in ascending index order). Events must be sorted by TS.
func BuyerFeatures(in *Interactions, t int64) (users []int32, x []float32, f int) {
	nT := len(in.Types)
	nW := len(BuyerWindows)
	f = len(BuyerFeatureNames(in.Types))
	type acc struct {
		counts                   []float32
		first, last, lastBuy     int64
		purchases                int
		buyDays                  []int64
		spend30, spend90, cart30 float32
		buys30                   float32
	}
	hi := sort.Search(len(in.Events), func(i int) bool { return in.Events[i].TS > t })
	per := make(map[int32]*acc)
	items := make(map[int64]struct{})
	distinct := make(map[int32]int)
	for _, e := range in.Events[:hi] {
		a := per[e.User]
		if a == nil {
			a = &acc{counts: make([]float32, nT*nW), first: e.TS, lastBuy: -1}
			per[e.User] = a
		}
		age := t - e.TS
		for w, d := range BuyerWindows {
			if age < int64(d)*day {
				a.counts[int(e.Type)*nW+w]++
			}
		}
		a.last = e.TS
		k := int64(e.User)<<32 | int64(uint32(e.Item))
		if _, ok := items[k]; !ok {
			items[k] = struct{}{}
			distinct[e.User]++
		}
		if in.Types[e.Type].Purchase {
			a.purchases++
			a.lastBuy = e.TS
			d := e.TS / day
			if len(a.buyDays) == 0 || a.buyDays[len(a.buyDays)-1] != d {
				a.buyDays = append(a.buyDays, d)
			}
			spend := e.Quantity * e.Price
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
	for u := range per {
		users = append(users, u)
	}
	sort.Slice(users, func(i, j int) bool { return users[i] < users[j] })
	x = make([]float32, 0, len(users)*f)
	days := func(s int64) float32 { return float32(min(float64(s)/day, recencyCap)) }
	for _, u := range users {
		a := per[u]
		for _, c := range a.counts {
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
			log1p(float32(a.purchases)), log1p(float32(distinct[u])), log1p(float32(len(a.buyDays))),
			log1p(max(a.spend30, 0)), log1p(max(a.spend90, 0)), log1p(max(a.cart30-a.buys30, 0)),
			mean, sd, overdue, days(t-a.first))
	}
	return users, x, f
}

func log1p(v float32) float32 { return float32(math.Log1p(float64(v))) }

// BuyerLabels is 1 for users with a purchase event in (t, t+horizon].
func BuyerLabels(in *Interactions, users []int32, t, horizon int64) []float32 {
	lo := sort.Search(len(in.Events), func(i int) bool { return in.Events[i].TS > t })
	bought := map[int32]bool{}
	for _, e := range in.Events[lo:] {
		if e.TS > t+horizon {
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
