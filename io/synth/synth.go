// Package synth generates synthetic behaviour dumps for scale tests and
// benchmarks: hive-partitioned Parquet (dt=YYYY-MM-DD/part-*.parquet) in any
// bucket, deterministic by seed, streamed one day at a time so memory grows
// with users and items, never with events.
//
// The world: items have power-law popularity and belong to categories; each
// user has a taste (a preferred category) and a tenure start; users browse
// in sessions with a view → cart → purchase funnel, re-buy items they bought
// before, shop more at weekends; a share of users and items appears only
// later in the period. The planted signal: a user's events fall in their
// preferred category with probability Options.Signal, so a trained model
// must rank that category's items higher for them.
package synth

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/parquet-go/parquet-go"
	"gocloud.dev/blob"

	"github.com/shelfml/shelf/configs"
)

// Row is one generated event (the dump's schema).
type Row struct {
	UserID    string    `parquet:"user_id,dict"`
	ItemID    string    `parquet:"item_id,dict"`
	EventType string    `parquet:"event_type,dict"`
	TS        time.Time `parquet:"ts,timestamp(millisecond)"`
	SessionID string    `parquet:"session_id"`
	Quantity  int32     `parquet:"quantity"`
	Price     float64   `parquet:"price"`
	Category  string    `parquet:"category,dict"`
}

// CatalogRow is one item of the catalog Generate writes to CatalogKey.
type CatalogRow struct {
	ItemID   string  `parquet:"item_id"`
	Category string  `parquet:"category,dict"`
	Price    float64 `parquet:"price"`
}

// CatalogKey is where Generate writes the item catalog (every item's
// category and price), beside the event partitions.
const CatalogKey = "catalog/items.parquet"

// Options size the generated world.
type Options struct {
	Events      int64     // total events over all days
	Users       int       // distinct users
	Items       int       // distinct items
	Days        int       // days ending at End (inclusive)
	End         time.Time // last day (UTC)
	Seed        uint64
	PartsPerDay int     // files per day partition (default 1)
	Signal      float64 // share of a user's events in their preferred category (default 0.6)
	// The funnel, per viewed item: the share carted (default 0.15) and
	// favourited (default 0: no favourites); a cart becomes a purchase with
	// the user's own propensity times BuyScale (default 1).
	CartRate, FavoriteRate, BuyScale float64
	// Sequence is the chance that the next item of a session is the
	// previous item's planted successor (each item has one, in its
	// category): the order signal a sequence model must find (default 0).
	Sequence float64
	// SessionLength is the mean number of items a session views (default 3).
	SessionLength float64
}

// Shapes are the shops `shelf gen --shape` knows, as Options without sizes.
var Shapes = map[string]Options{
	// A web shop: three months, a view → cart → purchase funnel, re-buys.
	"retail": {},
	// The typical mobile shop: days, not months; many views, carts and
	// favourites, few purchases; far more items than users touch.
	"mobile": {CartRate: 0.05, FavoriteRate: 0.04, BuyScale: 0.3, SessionLength: 6},
	// Sessions that follow a planted order: item B tends to follow item A.
	"sequential": {Sequence: 0.5, SessionLength: 5},
}

// WithShape fills o's unset funnel settings from the named shape.
func WithShape(o Options, shape string) (Options, error) {
	s, ok := Shapes[shape]
	if !ok {
		return o, fmt.Errorf("synth: unknown shape %q (want retail, mobile or sequential)", shape)
	}
	if o.CartRate == 0 {
		o.CartRate = s.CartRate
	}
	if o.FavoriteRate == 0 {
		o.FavoriteRate = s.FavoriteRate
	}
	if o.BuyScale == 0 {
		o.BuyScale = s.BuyScale
	}
	if o.Sequence == 0 {
		o.Sequence = s.Sequence
	}
	if o.SessionLength == 0 {
		o.SessionLength = s.SessionLength
	}
	return o, nil
}

// Stats summarises what was written.
type Stats struct {
	Events, Purchases, Carts, Views, Favorites int64
	Files                                      int
	Bytes                                      int64
}

// EventsConfig is the events section that reads what Generate writes.
func EventsConfig() configs.EventsConfig {
	c := configs.Default().Events
	c.Columns = configs.ColumnsConfig{User: "user_id", Item: "item_id", EventType: "event_type", TS: "ts", Session: "session_id", Quantity: "quantity", Price: "price"}
	c.EventTypes = []configs.EventTypeConfig{{Name: "view", Weight: 1}, {Name: "cart", Weight: 3}, {Name: "favorite", Weight: 2}, {Name: "purchase", Weight: 5, Purchase: true}}
	return c
}

// world holds the per-user and per-item state (O(users + items)). Users
// differ in activity (power law) and in how often a cart becomes a purchase,
// which is what the purchase model can learn.
type world struct {
	o          Options
	categories int
	itemCat    []int32
	catItems   [][]int32   // items of each category, most popular first
	catCDF     [][]float64 // popularity CDF within each category
	allCDF     []float64   // global popularity CDF (items in popularity order)
	price      []float64
	taste      []int32   // preferred category per user
	userStart  []int32   // first active day per user
	itemStart  []int32   // first available day per item
	lastBuy    []int32   // last purchased item per user, -1 if none
	userCDF    []float64 // activity: some users shop far more than others
	buyer      []float32 // per-user purchase propensity (conversion of carts)
	next       []int32   // each item's planted successor (Options.Sequence)
}

// Successors returns each item's planted successor in the world o builds.
func Successors(o Options) []int32 { return newWorld(o).next }

// Tastes returns each user's preferred category in the world o builds (the
// planted structure, for tests).
func Tastes(o Options) []int32 { return newWorld(o).taste }

func newWorld(o Options) *world {
	if o.PartsPerDay <= 0 {
		o.PartsPerDay = 1
	}
	if o.Signal == 0 {
		o.Signal = 0.6
	}
	if o.CartRate == 0 {
		o.CartRate = 0.15
	}
	if o.BuyScale == 0 {
		o.BuyScale = 1
	}
	if o.SessionLength == 0 {
		o.SessionLength = 3
	}
	w := &world{o: o, categories: max(4, min(64, o.Items/100))}
	rng := rand.New(rand.NewPCG(o.Seed, 0x5eed))
	w.itemCat = make([]int32, o.Items)
	w.price = make([]float64, o.Items)
	w.itemStart = make([]int32, o.Items)
	w.catItems = make([][]int32, w.categories)
	pop := make([]float64, o.Items)
	for i := range o.Items {
		c := int32(rng.IntN(w.categories))
		w.itemCat[i] = c
		w.catItems[c] = append(w.catItems[c], int32(i))
		pop[i] = 1 / math.Pow(float64(i+1), 0.9) // item id order = popularity order
		w.price[i] = math.Round(math.Exp(1+1.5*rng.NormFloat64()*0.5)*100) / 100
		if rng.Float64() < 0.2 { // new items arrive during the period
			w.itemStart[i] = int32(rng.IntN(max(1, o.Days)))
		}
	}
	w.allCDF = cdf(pop, nil)
	w.catCDF = make([][]float64, w.categories)
	for c, items := range w.catItems {
		w.catCDF[c] = cdf(pop, items)
	}
	// Successors: a random item of the same category, drawn by popularity
	// (a separate stream, so that the rest of the world does not change).
	srng := rand.New(rand.NewPCG(o.Seed, 0x5e9))
	w.next = make([]int32, o.Items)
	for i := range w.next {
		c := w.itemCat[i]
		w.next[i] = w.catItems[c][draw(srng, w.catCDF[c])]
	}
	act := make([]float64, o.Users)
	w.buyer = make([]float32, o.Users)
	for u := range act {
		act[u] = 1 / math.Pow(float64(1+rng.IntN(o.Users)), 0.7)
		w.buyer[u] = float32(0.1 + 0.7*rng.Float64())
	}
	w.userCDF = cdf(act, nil)
	w.taste = make([]int32, o.Users)
	w.userStart = make([]int32, o.Users)
	w.lastBuy = make([]int32, o.Users)
	for u := range o.Users {
		w.taste[u] = int32(rng.IntN(w.categories))
		if rng.Float64() < 0.3 { // new users join during the period
			w.userStart[u] = int32(rng.IntN(max(1, o.Days)))
		}
		w.lastBuy[u] = -1
	}
	return w
}

func cdf(pop []float64, subset []int32) []float64 {
	var out []float64
	var s float64
	if subset == nil {
		for _, p := range pop {
			s += p
			out = append(out, s)
		}
	} else {
		for _, i := range subset {
			s += pop[i]
			out = append(out, s)
		}
	}
	for i := range out {
		out[i] /= s
	}
	return out
}

func draw(rng *rand.Rand, c []float64) int {
	x := rng.Float64()
	lo, hi := 0, len(c)-1
	for lo < hi {
		m := (lo + hi) / 2
		if c[m] < x {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// pickItem draws an item available on day d for user u.
func (w *world) pickItem(rng *rand.Rand, u int, d int32) int32 {
	for try := 0; ; try++ {
		var it int32
		// With very few items a category can be empty: draw from all.
		if c := w.taste[u]; rng.Float64() < w.o.Signal && len(w.catItems[c]) > 0 {
			it = w.catItems[c][draw(rng, w.catCDF[c])]
		} else {
			it = int32(draw(rng, w.allCDF))
		}
		if w.itemStart[it] <= d || try > 8 {
			return it
		}
	}
}

// Generate writes the world's events, one day partition at a time.
func Generate(ctx context.Context, b *blob.Bucket, o Options) (Stats, error) {
	var st Stats
	if o.Users <= 0 || o.Items <= 0 || o.Days <= 0 || o.Events <= 0 {
		return st, fmt.Errorf("synth: events, users, items and days must be positive")
	}
	w := newWorld(o)
	o = w.o
	start := o.End.UTC().Truncate(24*time.Hour).AddDate(0, 0, -(o.Days - 1))
	// Weekly seasonality: weekends get 1.3× the traffic.
	weights := make([]float64, o.Days)
	var total float64
	for d := range weights {
		weights[d] = 1
		if wd := start.AddDate(0, 0, d).Weekday(); wd == time.Saturday || wd == time.Sunday {
			weights[d] = 1.3
		}
		total += weights[d]
	}
	cat := make([]CatalogRow, o.Items)
	for it := range cat {
		cat[it] = CatalogRow{ItemID: fmt.Sprintf("i%06d", it), Category: fmt.Sprintf("c%02d", w.itemCat[it]), Price: w.price[it]}
	}
	size, err := writeParquet(ctx, b, CatalogKey, func(write func([]CatalogRow) error) error { return write(cat) })
	if err != nil {
		return st, err
	}
	st.Files++
	st.Bytes += size
	var written int64
	for d := 0; d < o.Days; d++ {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		n := int64(math.Round(float64(o.Events) * weights[d] / total))
		if d == o.Days-1 {
			n = o.Events - written
		}
		written += n
		day := start.AddDate(0, 0, d)
		rng := rand.New(rand.NewPCG(o.Seed, uint64(d)+1))
		per := (n + int64(o.PartsPerDay) - 1) / int64(o.PartsPerDay)
		left := n
		for p := 0; p < o.PartsPerDay; p++ {
			k := min(per, left)
			left -= k
			key := fmt.Sprintf("dt=%s/part-%05d.parquet", day.Format(time.DateOnly), p)
			size, err := w.writePart(ctx, b, key, rng, int32(d), day, k, &st)
			if err != nil {
				return st, err
			}
			st.Files++
			st.Bytes += size
		}
	}
	return st, nil
}

func (w *world) writePart(ctx context.Context, b *blob.Bucket, key string, rng *rand.Rand, d int32, day time.Time, n int64, st *Stats) (int64, error) {
	return writeParquet(ctx, b, key, func(write func([]Row) error) error {
		rows := make([]Row, 0, 8192)
		for made := int64(0); made < n; {
			u := draw(rng, w.userCDF)
			if w.userStart[u] > d {
				continue
			}
			sess := fmt.Sprintf("s%d-%d-%d", d, u, made)
			t := day.Add(time.Duration(rng.IntN(86400-3600)) * time.Second)
			length := 1 + int(rng.ExpFloat64()*w.o.SessionLength)
			prev := int32(-1)
			for s := 0; s < length && made < n; s++ {
				it := w.pickItem(rng, u, d)
				if w.lastBuy[u] >= 0 && rng.Float64() < 0.08 {
					it = w.lastBuy[u] // re-buy interest
				}
				if w.o.Sequence > 0 && prev >= 0 && rng.Float64() < w.o.Sequence && w.itemStart[w.next[prev]] <= d {
					it = w.next[prev] // the planted order
				}
				prev = it
				add := func(typ string, qty int32) {
					rows = append(rows, Row{UserID: fmt.Sprintf("u%07d", u), ItemID: fmt.Sprintf("i%06d", it), EventType: typ,
						TS: t, SessionID: sess, Quantity: qty, Price: w.price[it], Category: fmt.Sprintf("c%02d", w.itemCat[it])})
					made++
					t = t.Add(time.Duration(5+rng.IntN(120)) * time.Second)
				}
				add("view", 0)
				st.Views++
				if w.o.FavoriteRate > 0 && made < n && rng.Float64() < w.o.FavoriteRate {
					add("favorite", 0)
					st.Favorites++
				}
				if made < n && rng.Float64() < w.o.CartRate {
					add("cart", 1)
					st.Carts++
					if made < n && rng.Float32() < w.buyer[u]*float32(w.o.BuyScale) {
						add("purchase", int32(1+rng.IntN(3)))
						st.Purchases++
						w.lastBuy[u] = it
					}
				}
				if len(rows) >= 8000 {
					if err := write(rows); err != nil {
						return err
					}
					rows = rows[:0]
				}
			}
		}
		st.Events += n
		return write(rows)
	})
}

// writeParquet writes one Parquet object whose rows fill passes to write.
func writeParquet[T any](ctx context.Context, b *blob.Bucket, key string, fill func(write func([]T) error) error) (int64, error) {
	ctx, cancel := context.WithCancel(ctx) // an unfinished object is discarded
	defer cancel()
	bw, err := b.NewWriter(ctx, key, nil)
	if err != nil {
		return 0, fmt.Errorf("synth: open %s: %w", key, err)
	}
	cw := &countingWriter{w: bw}
	pw := parquet.NewGenericWriter[T](cw, parquet.Compression(&parquet.Snappy), parquet.CreatedBy("shelf-synth", "1", ""))
	if err := fill(func(rows []T) error { _, err := pw.Write(rows); return err }); err != nil {
		return 0, fmt.Errorf("synth: write %s: %w", key, err)
	}
	if err := pw.Close(); err != nil {
		return 0, fmt.Errorf("synth: finish %s: %w", key, err)
	}
	if err := bw.Close(); err != nil {
		return 0, fmt.Errorf("synth: close %s: %w", key, err)
	}
	return cw.n, nil
}

type countingWriter struct {
	w interface{ Write([]byte) (int, error) }
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
