package model

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"
)

// clusteredModel is a ranking model whose item and user vectors lie around
// `centers` random directions, as learned embeddings of a shop with
// categories do (random vectors have no structure for an index to use).
func clusteredModel(seed uint64, nUsers, nItems, dim, centers int) *RankingModel {
	rng := rand.New(rand.NewPCG(seed, 3))
	cs := make([]float32, centers*dim)
	for i := range cs {
		cs[i] = float32(rng.NormFloat64())
	}
	around := func(n int, noise float64) []float32 {
		x := make([]float32, n*dim)
		for i := range n {
			c := rng.IntN(centers)
			for p := range dim {
				x[i*dim+p] = cs[c*dim+p] + float32(noise*rng.NormFloat64())
			}
		}
		return x
	}
	m := randomModel(rng, nUsers, nItems, dim, 8)
	m.User, m.Item = around(nUsers, 0.7), around(nItems, 0.5)
	return m
}

func ivfFixture(t testing.TB, nUsers, nItems int) (*ModelRecommender, *IVF, modelFixture) {
	f := newModelFixture(21, nUsers, nItems, 16)
	f.m = clusteredModel(22, nUsers, nItems, 16, 40)
	rec := NewModelRecommender(f.m, f.hist, 100, f.pop)
	ix, err := BuildIVF(context.Background(), f.m.Item, f.m.ItemBias, nItems, 16, IVFOptions{Seed: 1, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	return rec, ix, f
}

// Probing every cluster is the exact retrieval: the same lists, scores and
// reasons, exclusions applied.
func TestIVFAllClustersIsExact(t *testing.T) {
	rec, ix, f := ivfFixture(t, 300, 6000)
	if ix.NList != DefaultNList(6000) || ix.NList != 64 {
		t.Fatalf("nlist %d", ix.NList)
	}
	full := rec.WithIndex(ix, Probe{N: ix.NList})
	users := make([]int32, 302)
	for i := range users {
		users[i] = int32(i)
	}
	for _, k := range []int{10, 100} {
		want, got := make([][]Scored, len(users)), make([][]Scored, len(users))
		rec.RecommendBlock(users, k, f.exclude, want)
		full.RecommendBlock(users, k, f.exclude, got)
		for u := range users {
			if !slices.Equal(want[u], got[u]) {
				t.Fatalf("k=%d user %d:\nexact %v\nindex %v", k, u, want[u], got[u])
			}
			for _, s := range got[u] {
				if _, ex := slices.BinarySearch(f.exclude(int32(u)), s.Item); ex {
					t.Fatalf("user %d got excluded item %d", u, s.Item)
				}
			}
		}
	}
}

// Every item is in exactly one cluster, in the packed slots of that
// cluster, and the build does not depend on the worker count.
func TestBuildIVFLayoutAndDeterminism(t *testing.T) {
	_, ix, f := ivfFixture(t, 10, 6000)
	seen := make([]bool, ix.NItems)
	for c := range ix.NList {
		for j := ix.start[c] * 16; j < ix.start[c+1]*16; j++ {
			it := ix.ids[j]
			if it < 0 {
				continue
			}
			if seen[it] || ix.cluster[it] != int32(c) {
				t.Fatalf("item %d: seen %v, cluster %d, slot of %d", it, seen[it], ix.cluster[it], c)
			}
			seen[it] = true
		}
	}
	if i := slices.Index(seen, false); i >= 0 {
		t.Fatalf("item %d not in the index", i)
	}
	sizes := ix.Sizes()
	if slices.Max(sizes) > 20*6000/ix.NList {
		t.Errorf("unbalanced clusters: largest %d of %d items in %d clusters", slices.Max(sizes), ix.NItems, ix.NList)
	}
	one, err := BuildIVF(context.Background(), f.m.Item, f.m.ItemBias, 6000, 16, IVFOptions{Seed: 1, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(one.cluster, ix.cluster) || !slices.Equal(one.cent, ix.cent) {
		t.Fatal("1 and 2 workers built different indexes")
	}
}

// The probe count TuneProbe picks on one sample reaches the recall on it,
// retrieves about as well on another, and fewer probes retrieve less.
func TestTuneProbeRecall(t *testing.T) {
	rec, ix, f := ivfFixture(t, 2000, 6000)
	var tune, check []int32
	for u := range int32(1997) {
		if u%2 == 0 {
			tune = append(tune, u)
		} else {
			check = append(check, u)
		}
	}
	p, tr := rec.TuneProbe(ix, tune, f.exclude, 100, 0.95)
	if tr < 0.95 || p.N < 1 || p.N >= ix.NList/2 {
		t.Fatalf("nprobe %+v of %d, recall %.3f", p, ix.NList, tr)
	}
	// The tuning's recall is what the index retrieves on the same users.
	got, _, _ := RetrievalRecall(rec, rec.WithIndex(ix, p), tune, f.exclude, 100)
	if d := got - tr; d < -0.005 || d > 0.005 {
		t.Errorf("tune users: predicted recall %.4f, measured %.4f", tr, got)
	}
	held, _, _ := RetrievalRecall(rec, rec.WithIndex(ix, p), check, f.exclude, 100)
	if held < 0.93 {
		t.Errorf("check users: recall %.3f at %+v", held, p)
	}
	less, _, _ := RetrievalRecall(rec, rec.WithIndex(ix, Probe{N: max(1, p.N/4), Spread: p.Spread}), check, f.exclude, 100)
	if less >= held {
		t.Errorf("recall at nprobe %d (%.3f) not below nprobe %d (%.3f)", p.N/4, less, p.N, held)
	}
	all, _, _ := RetrievalRecall(rec, rec.WithIndex(ix, Probe{N: ix.NList}), check, f.exclude, 100)
	if all != 1 {
		t.Errorf("all clusters: recall %v", all)
	}
}

func BenchmarkRetrievalIVF(b *testing.B) {
	const nUsers, nItems, cand = 2048, 200000, 200
	f := newModelFixture(31, 8, 8, 32)
	m := clusteredModel(32, nUsers, nItems, 32, 200)
	hist := NewCSR(nUsers, nItems, nil, nil, nil)
	rec := NewModelRecommender(m, hist, cand, f.pop)
	ix, err := BuildIVF(context.Background(), m.Item, m.ItemBias, nItems, 32, IVFOptions{Seed: 1, Workers: 1})
	if err != nil {
		b.Fatal(err)
	}
	us := make([]int32, nUsers)
	for i := range us {
		us[i] = int32(i)
	}
	p, _ := rec.TuneProbe(ix, us[:512], nil, cand, 0.99)
	for _, c := range []struct {
		name string
		r    *ModelRecommender
	}{{"exact", rec}, {"ivf", rec.WithIndex(ix, p)}} {
		b.Run(c.name, func(b *testing.B) {
			s := c.r.pool.Get().(*mrScratch)
			blk := make([]int32, retrievalUsers)
			for it := 0; it < b.N; it++ {
				for w := range blk {
					blk[w] = us[(it*retrievalUsers+w)%nUsers]
					s.heaps[w].ResetK(cand)
				}
				c.r.retrieve(blk, s.ex, s.heaps, s.ptr, s)
			}
			b.ReportMetric(float64(retrievalUsers)*float64(b.N)/b.Elapsed().Seconds(), "users/s")
			b.ReportMetric(float64(p.N), "nprobe")
		})
	}
}
