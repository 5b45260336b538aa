package model

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/shelfml/shelf/internal/f32"
)

// IVF is an inverted-file index over item vectors for approximate
// maximum-inner-product retrieval (score <u, v_i> + b_i): k-means splits the
// items into NList clusters of the augmented vectors [v_i, b_i]; a user's
// query scores the centroids the same way (<u, c> + c_b) and scans only the
// items of its NProbe best clusters. Items are stored cluster by cluster in
// the retrieval kernel's 16-item groups, so a probe is the same tiled
// kernel call the exact scan makes, over a fraction of the catalog.
//
// The index is read-only once built and safe for concurrent use.
type IVF struct {
	Dim, NItems, NList int
	cent               []float32 // centroids' vector parts, packed (f32.PackItems)
	centBias           []float32 // centroids' bias parts; NaN for padding and empty clusters
	start              []int     // cluster c's item groups are start[c]..start[c+1]
	packed             []float32 // items in cluster order, each cluster padded to 16
	bias               []float32 // their biases, NaN padding
	ids                []int32   // item id per packed slot, −1 padding
	cluster            []int32   // per item, its cluster
	radius             []float32 // per cluster, the RMS distance of its [v, b] to the centroid
}

// queryNorm is |[u, 1]|.
func (ix *IVF) queryNorm(u []float32) float32 {
	return float32(math.Sqrt(float64(f32.Dot(u, u)) + 1))
}

// IVFOptions are the index's build settings.
type IVFOptions struct {
	NList   int    // clusters; ≤ 0: DefaultNList(items)
	Iters   int    // k-means iterations; ≤ 0: 10
	Sample  int    // training points per cluster; ≤ 0: 64
	Seed    uint64 // k-means initialisation
	Workers int    // goroutines for the assignment steps; ≤ 0: 1
	// Queries are user vectors (rows of d floats) like those the index will
	// serve. With them, k-means runs in the metric of the scores they
	// give: items are close when a typical query scores them alike (see
	// queryMetric), so a model whose scores the item bias dominates gets
	// clusters of like bias. Without, plain L2 on [v, b].
	Queries []float32
}

// DefaultNList is the cluster count for n items: the power of two nearest
// √n, within [16, 65536]. Measured on a trained model of 469k items at a
// recall of 0.99 (make bench, docs/performance.md): 512 clusters scanned
// 13.5 % of the items and retrieved 6.7× faster than the exact scan, 1024
// scanned 10 % but paid more per probed cluster (5.6×), 4096 slower still.
func DefaultNList(n int) int {
	want := math.Sqrt(float64(max(n, 1)))
	p := math.Exp2(math.Round(math.Log2(want)))
	return int(min(max(p, 16), 65536))
}

// BuildIVF clusters the n items (rows of item, d floats, and their biases)
// into an index. It is deterministic for a seed, whatever the worker count.
func BuildIVF(ctx context.Context, item, bias []float32, n, d int, o IVFOptions) (*IVF, error) {
	if n <= 0 || d <= 0 {
		return nil, fmt.Errorf("ivf: %d items of dimension %d", n, d)
	}
	nlist := o.NList
	if nlist <= 0 {
		nlist = DefaultNList(n)
	}
	nlist = min(nlist, n)
	iters, per, workers := o.Iters, o.Sample, max(o.Workers, 1)
	if iters <= 0 {
		iters = 10
	}
	if per <= 0 {
		per = 64
	}
	k := d + 1 // augmented: [v, b]
	x := make([]float32, n*k)
	for i := range n {
		copy(x[i*k:], item[i*d:(i+1)*d])
		x[i*k+d] = bias[i]
	}
	if len(o.Queries) >= d {
		queryMetric(x, n, k, o.Queries)
	}
	rng := rand.New(rand.NewPCG(o.Seed, 0x1f5))
	perm := rng.Perm(n)
	train := perm[:min(n, nlist*per)]
	slices.Sort(train) // sums in item order: the same for any worker count
	tx := make([]float32, len(train)*k)
	for j, i := range train {
		copy(tx[j*k:], x[i*k:(i+1)*k])
	}
	cent := make([]float32, nlist*k)
	for c := range nlist {
		copy(cent[c*k:], tx[c*k:(c+1)*k]) // the sample's order is random
	}
	assign := make([]int32, len(train))
	for range iters {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		nearest(tx, len(train), k, cent, nlist, workers, assign)
		updateCentroids(tx, k, assign, cent, nlist)
	}
	cl := make([]int32, n)
	nearest(x, n, k, cent, nlist, workers, cl)
	return newIVF(item, bias, n, d, nlist, cl), nil
}

// queryMetric maps the augmented items x (n rows of k = d+1) to Lᵀx, where
// L·Lᵀ is the second moment E[q̃q̃ᵀ] of the augmented queries q̃ = [q, 1]:
// then |Lᵀ(x_i − x_j)|² = E[(<q̃, x_i> − <q̃, x_j>)²], the mean squared
// difference of the two items' scores over the queries, and L2 k-means
// groups items that the queries score alike. A small ridge keeps L
// defined when queries span fewer than k directions.
func queryMetric(x []float32, n, k int, queries []float32) {
	d := k - 1
	nq := len(queries) / d
	mom := make([]float64, k*k)
	q := make([]float64, k)
	for r := range nq {
		for p := range d {
			q[p] = float64(queries[r*d+p])
		}
		q[d] = 1
		for i := range k {
			for j := 0; j <= i; j++ {
				mom[i*k+j] += q[i] * q[j]
			}
		}
	}
	tr := 0.0
	for i := range k {
		for j := 0; j <= i; j++ {
			mom[i*k+j] /= float64(nq)
			mom[j*k+i] = mom[i*k+j]
		}
		tr += mom[i*k+i]
	}
	for i := range k {
		mom[i*k+i] += 1e-6 * tr / float64(k)
	}
	// Cholesky: mom = L·Lᵀ, L lower triangular.
	l := make([]float64, k*k)
	for i := range k {
		for j := 0; j <= i; j++ {
			sum := mom[i*k+j]
			for p := range j {
				sum -= l[i*k+p] * l[j*k+p]
			}
			if i == j {
				l[i*k+i] = math.Sqrt(max(sum, 1e-30))
			} else {
				l[i*k+j] = sum / l[j*k+j]
			}
		}
	}
	row := make([]float64, k)
	for r := range n {
		xr := x[r*k : (r+1)*k]
		for j := range k { // (Lᵀx)_j = Σ_{i≥j} L[i][j]·x_i
			sum := 0.0
			for i := j; i < k; i++ {
				sum += l[i*k+j] * float64(xr[i])
			}
			row[j] = sum
		}
		for j := range k {
			xr[j] = float32(row[j])
		}
	}
}

// newIVF lays the items out by cluster (items ascending within one) and
// takes each cluster's mean of [v, b] as its centroid.
func newIVF(item, bias []float32, n, d, nlist int, cl []int32) *IVF {
	ix := &IVF{Dim: d, NItems: n, NList: nlist, cluster: cl, start: make([]int, nlist+1), radius: make([]float32, nlist)}
	count := make([]int, nlist)
	for _, c := range cl {
		count[c]++
	}
	members := make([][]int32, nlist)
	for c := range members {
		members[c] = make([]int32, 0, count[c])
	}
	for i, c := range cl {
		members[c] = append(members[c], int32(i))
	}
	groups := 0
	for c := range nlist {
		ix.start[c] = groups
		groups += (count[c] + f32.NR - 1) / f32.NR
	}
	ix.start[nlist] = groups
	ix.packed = make([]float32, groups*f32.NR*d)
	ix.bias = make([]float32, groups*f32.NR)
	ix.ids = make([]int32, groups*f32.NR)
	cv := make([]float32, nlist*d)
	cb := make([]float32, nlist)
	rows := make([]float32, 0)
	bs := make([]float32, 0)
	for c, mem := range members {
		rows, bs = rows[:0], bs[:0]
		sum := make([]float64, d+1)
		for _, i := range mem {
			v := item[int(i)*d : int(i+1)*d]
			rows = append(rows, v...)
			bs = append(bs, bias[i])
			for p, x := range v {
				sum[p] += float64(x)
			}
			sum[d] += float64(bias[i])
		}
		g0 := ix.start[c]
		for j := range (ix.start[c+1] - g0) * f32.NR {
			ix.ids[g0*f32.NR+j] = -1
		}
		copy(ix.ids[g0*f32.NR:], mem)
		if len(mem) == 0 {
			cb[c] = float32(math.NaN())
			continue
		}
		p, b := f32.PackItems(rows, bs, len(mem), d)
		copy(ix.packed[g0*f32.NR*d:], p)
		copy(ix.bias[g0*f32.NR:], b)
		for p := range d {
			cv[c*d+p] = float32(sum[p] / float64(len(mem)))
		}
		cb[c] = float32(sum[d] / float64(len(mem)))
		ss := 0.0
		for _, i := range mem {
			for p, x := range item[int(i)*d : int(i+1)*d] {
				ss += (float64(x) - float64(cv[c*d+p])) * (float64(x) - float64(cv[c*d+p]))
			}
			ss += (float64(bias[i]) - float64(cb[c])) * (float64(bias[i]) - float64(cb[c]))
		}
		ix.radius[c] = float32(math.Sqrt(ss / float64(len(mem))))
	}
	ix.cent, ix.centBias = f32.PackItems(cv, cb, nlist, d)
	return ix
}

// nearest sets out[i] to the centroid (rows of cent, k floats) nearest
// point i of x in L2, the first on ties: the largest <x, c> − |c|²/2, by
// the retrieval kernel with the centroids as items.
func nearest(x []float32, n, k int, cent []float32, nc, workers int, out []int32) {
	half := make([]float32, nc)
	for c := range nc {
		half[c] = -0.5 * f32.Dot(cent[c*k:(c+1)*k], cent[c*k:(c+1)*k])
	}
	packed, pb := f32.PackItems(cent, half, nc, k)
	ng := len(pb) / f32.NR
	quads := (n + f32.MR - 1) / f32.MR
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			up := make([]float32, f32.MR*k)
			sc := make([]float32, ng*f32.MR*f32.NR)
			masks := make([]uint64, ng)
			inf := [f32.MR]float32{float32(math.Inf(1)), float32(math.Inf(1)), float32(math.Inf(1)), float32(math.Inf(1))}
			for q := w; q < quads; q += workers {
				var rows [f32.MR][]float32
				m := 0
				for i := q * f32.MR; i < min((q+1)*f32.MR, n); i++ {
					rows[m] = x[i*k : (i+1)*k]
					m++
				}
				f32.PackUsers(up, k, rows[:m]...)
				f32.ScoreTile(k, ng, up, packed, pb, &inf, sc, masks)
				for r := range m {
					best, bv := int32(0), float32(math.Inf(-1))
					for c := range nc {
						if v := sc[(c/f32.NR)*f32.MR*f32.NR+r*f32.NR+c%f32.NR]; v > bv {
							best, bv = int32(c), v
						}
					}
					out[q*f32.MR+r] = best
				}
			}
		}()
	}
	wg.Wait()
}

// updateCentroids moves each centroid to the mean of its points; an empty
// cluster takes half of the largest one (its centroid nudged apart by a
// relative 1e-3 on every coordinate, as k-means implementations do).
func updateCentroids(x []float32, k int, assign []int32, cent []float32, nc int) {
	sum := make([]float64, nc*k)
	count := make([]int, nc)
	for i, c := range assign {
		count[c]++
		row := x[i*k : (i+1)*k]
		s := sum[int(c)*k : int(c+1)*k]
		for p, v := range row {
			s[p] += float64(v)
		}
	}
	for c := range nc {
		if count[c] == 0 {
			continue
		}
		for p := range k {
			cent[c*k+p] = float32(sum[c*k+p] / float64(count[c]))
		}
	}
	for c := range nc {
		if count[c] > 0 {
			continue
		}
		big := 0
		for j := range nc {
			if count[j] > count[big] {
				big = j
			}
		}
		for p := range k {
			v := cent[big*k+p]
			cent[c*k+p] = v * (1 + 1e-3)
			cent[big*k+p] = v * (1 - 1e-3)
		}
		count[c], count[big] = count[big]/2, count[big]-count[big]/2
	}
}

// Cluster is item i's cluster.
func (ix *IVF) Cluster(i int32) int32 { return ix.cluster[i] }

// Sizes is the item count per cluster.
func (ix *IVF) Sizes() []int {
	out := make([]int, ix.NList)
	for _, c := range ix.cluster {
		out[c]++
	}
	return out
}

// IndexReport is how an index was chosen and how well it retrieves: the
// probe count picked on one user sample and the recall of the exact top
// Depth (candidates) measured on another, with the retrieval time of that
// sample exact and through the index.
type IndexReport struct {
	Items        int     `json:"items"`
	NList        int     `json:"nlist"`
	NProbe       int     `json:"nprobe"`
	Spread       float32 `json:"spread"` // Probe.Spread
	Depth        int     `json:"depth"`
	TuneUsers    int     `json:"tune_users"`
	CheckUsers   int     `json:"check_users"`
	TuneRecall   float64 `json:"tune_recall"`
	Recall       float64 `json:"recall"`
	BuildSeconds float64 `json:"build_seconds"`
	ExactSeconds float64 `json:"exact_seconds"` // check users' retrieval, exact
	IndexSeconds float64 `json:"index_seconds"` // the same through the index
}

// Speedup is the check sample's exact retrieval time over the index's.
func (r IndexReport) Speedup() float64 {
	if r.IndexSeconds <= 0 {
		return 0
	}
	return r.ExactSeconds / r.IndexSeconds
}

// exactTop returns, per user of us, the items of r's exact retrieval at
// depth (the candidate lists re-ranking starts from), sorted ascending;
// nil for users r does not serve.
func (r *ModelRecommender) retrieved(us []int32, exclude func(int32) []int32, depth int) [][]int32 {
	out := make([][]int32, len(us))
	s := r.pool.Get().(*mrScratch)
	defer r.pool.Put(s)
	for lo := 0; lo < len(us); lo += retrievalUsers {
		s.warm, s.slot = s.warm[:0], s.slot[:0]
		for b := lo; b < min(lo+retrievalUsers, len(us)); b++ {
			if r.warm(us[b]) {
				s.warm, s.slot = append(s.warm, us[b]), append(s.slot, b)
			}
		}
		for w, u := range s.warm {
			s.ex[w] = nil
			if exclude != nil {
				s.ex[w] = exclude(u)
			}
			s.heaps[w].ResetK(depth)
		}
		r.retrieve(s.warm, s.ex, s.heaps, s.ptr, s)
		for w := range s.warm {
			items := make([]int32, 0, depth)
			for _, c := range s.heaps[w].kept() {
				items = append(items, c.Item)
			}
			slices.Sort(items)
			out[s.slot[w]] = items
		}
	}
	return out
}

// TuneTarget is the recall to tune the probes to for a bar of min: a
// quarter of the way from min to 1, so that other users' measured recall
// clears the bar (in a 20M-event run, tuned to exactly 0.99, the probes'
// 0.9901 on the tuning users measured 0.9896 on the others).
func TuneTarget(min float64) float64 { return min + (1-min)/4 }

// probeSpreads are the spread weights TuneProbe tries.
var probeSpreads = []float32{0, 0.125, 0.25, 0.5, 1}

// TuneProbe returns the probes (the spread weight of probeSpreads, and the
// smallest count for it) that reach a mean recall of target of r's exact
// top depth over users through ix with the fewest clusters, and that
// recall. It runs the exact retrieval once and reads every probe count's
// recall off the ranks of the exact items' clusters in each user's probe
// order.
func (r *ModelRecommender) TuneProbe(ix *IVF, users []int32, exclude func(int32) []int32, depth int, target float64) (Probe, float64) {
	exact := r.retrieved(users, exclude, depth)
	best, bestRecall := Probe{N: ix.NList + 1}, 1.0
	for _, sp := range probeSpreads {
		n, rec := ix.probesFor(r.m, users, exact, sp, target)
		if n < best.N {
			best, bestRecall = Probe{N: n, Spread: sp}, rec
		}
	}
	return best, bestRecall
}

// probesFor is the smallest probe count at spread weight sp whose mean
// recall of the exact lists reaches target, and that recall.
func (ix *IVF) probesFor(m *RankingModel, users []int32, exact [][]int32, sp float32, target float64) (int, float64) {
	hits := make([]float64, ix.NList+1) // summed per-user recall gained at each rank
	n := 0
	rank := make([]int32, ix.NList)
	order := make([]int32, ix.NList)
	cs := make([]float32, ix.NList)
	cv := make([]float32, ix.Dim)
	for ui, u := range users {
		items := exact[ui]
		if len(items) == 0 {
			continue
		}
		n++
		uv := m.User[int(u)*m.Dim : int(u+1)*m.Dim]
		lam := sp * ix.queryNorm(uv)
		for c := range ix.NList {
			ix.centroid(c, cv)
			cs[c] = f32.Dot(uv, cv) + ix.centBias[c] + lam*ix.radius[c]
			if cs[c] != cs[c] {
				cs[c] = float32(math.Inf(-1))
			}
			order[c] = int32(c)
		}
		slices.SortStableFunc(order, func(a, b int32) int {
			switch {
			case cs[a] > cs[b]:
				return -1
			case cs[a] < cs[b]:
				return 1
			}
			return 0
		})
		for p, c := range order {
			rank[c] = int32(p)
		}
		for _, it := range items {
			hits[rank[ix.cluster[it]]+1] += 1 / float64(len(items))
		}
	}
	if n == 0 {
		return 1, 1
	}
	got := 0.0
	for p := 1; p <= ix.NList; p++ {
		got += hits[p]
		if got/float64(n) >= target {
			return p, got / float64(n)
		}
	}
	return ix.NList, got / float64(n)
}

// centroid unpacks cluster c's vector part into dst.
func (ix *IVF) centroid(c int, dst []float32) {
	g, j := c/f32.NR, c%f32.NR
	for p := range ix.Dim {
		dst[p] = ix.cent[(g*ix.Dim+p)*f32.NR+j]
	}
}

// RetrievalRecall is the mean over users of the share of exact's retrieved
// top depth that approx retrieves too, with each one's time for the users.
func RetrievalRecall(exact, approx *ModelRecommender, users []int32, exclude func(int32) []int32, depth int) (recall, exactSec, approxSec float64) {
	t0 := time.Now()
	want := exact.retrieved(users, exclude, depth)
	t1 := time.Now()
	got := approx.retrieved(users, exclude, depth)
	t2 := time.Now()
	sum, n := 0.0, 0
	for i := range users {
		if len(want[i]) == 0 {
			continue
		}
		hit := 0
		for _, it := range got[i] {
			if _, ok := slices.BinarySearch(want[i], it); ok {
				hit++
			}
		}
		sum += float64(hit) / float64(len(want[i]))
		n++
	}
	recall = 1
	if n > 0 {
		recall = sum / float64(n)
	}
	return recall, t1.Sub(t0).Seconds(), t2.Sub(t1).Seconds()
}

// QuerySample is up to n of m's user vectors, evenly spaced: the queries
// IVFOptions.Queries wants.
func QuerySample(m *RankingModel, n int) []float32 {
	stride := max(1, m.NUsers/max(n, 1))
	var out []float32
	for u := 0; u < m.NUsers; u += stride {
		out = append(out, m.User[u*m.Dim:(u+1)*m.Dim]...)
	}
	return out
}
