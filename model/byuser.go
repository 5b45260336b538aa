package model

import (
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
)

// ByUser is an event log grouped by user: each user's events, in the log's
// (time) order, as positions in In.Events. Per-user features at several
// cut-offs read each user's prefix instead of hashing (user, item) pairs
// over the whole log: 4 bytes per event plus 8 per user.
type ByUser struct {
	In    *Interactions
	start []int   // user u's positions are pos[start[u]:start[u+1]]
	pos   []int32 // event positions (a log holds fewer than 2³¹ events: 64 GiB of them)
}

// GroupByUser indexes in's events by user (a counting sort: two passes).
func GroupByUser(in *Interactions) *ByUser {
	n := in.Users.Len()
	g := &ByUser{In: in, start: make([]int, n+1), pos: make([]int32, len(in.Events))}
	for _, e := range in.Events {
		g.start[e.User+1]++
	}
	for u := range n {
		g.start[u+1] += g.start[u]
	}
	next := make([]int, n)
	copy(next, g.start[:n])
	for i, e := range in.Events {
		g.pos[next[e.User]] = int32(i)
		next[e.User]++
	}
	return g
}

// Events is user u's event positions, in time order.
func (g *ByUser) Events(u int32) []int32 { return g.pos[g.start[u]:g.start[u+1]] }

// upTo is user u's events with TS ≤ t.
func (g *ByUser) upTo(u int32, t int64) []int32 {
	ev := g.Events(u)
	return ev[:sort.Search(len(ev), func(i int) bool { return g.In.Events[ev[i]].Time() > t })]
}

// active is the users with an event at or before t, ascending.
func (g *ByUser) active(t int64) []int32 {
	var users []int32
	for u := range int32(g.In.Users.Len()) {
		if ev := g.Events(u); len(ev) > 0 && g.In.Events[ev[0]].Time() <= t {
			users = append(users, u)
		}
	}
	return users
}

// eachUser runs fn(scratch, i) for every i in [0, n) on up to GOMAXPROCS
// workers, each with its own scratch from newScratch, in chunks of 1024.
// Each i runs once; results written by i do not depend on scheduling.
func eachUser[S any](n int, newScratch func() S, fn func(s S, i int)) {
	const chunk = 1024
	workers := max(1, min(runtime.GOMAXPROCS(0), (n+chunk-1)/chunk))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := newScratch()
			for {
				lo := int(next.Add(chunk)) - chunk
				if lo >= n {
					return
				}
				for i := lo; i < min(lo+chunk, n); i++ {
					fn(s, i)
				}
			}
		}()
	}
	wg.Wait()
}

// marks is a set over dense ids cleared in O(1): id is in the set when
// mark[id] equals the current generation.
type marks struct {
	mark []uint32
	gen  uint32
}

func (m *marks) reset(n int) {
	if len(m.mark) < n {
		m.mark = make([]uint32, n)
		m.gen = 0
	}
	m.gen++
	if m.gen == 0 { // wrapped: clear once every 2³² resets
		clear(m.mark)
		m.gen = 1
	}
}

// add reports whether id was new and puts it in the set.
func (m *marks) add(id int32) bool {
	if m.mark[id] == m.gen {
		return false
	}
	m.mark[id] = m.gen
	return true
}
