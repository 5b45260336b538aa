package events

import (
	"context"
	"fmt"
	"slices"

	"gocloud.dev/blob"

	"github.com/shelfml/shelf/model"
)

// Shard is one ingest shard's part of a Read: the files of the window's
// listing whose index i has i mod Shards == Index, decoded, validated and
// id-mapped with the shard's own vocabularies, not yet deduplicated (a
// repeat may lie in another shard's file). MergeShards turns the shards of
// one listing into exactly what Read returns for it.
type Shard struct {
	Index  int `json:"index"`
	Shards int `json:"shards"`
	// Listing is every object of the window's listing, in key order, with
	// its identity (key, size, mod time, MD5/ETag/SHA-256) only: the shards
	// of one merge must have partitioned the same listing.
	Listing            []FileStat `json:"listing"`
	PartitionsSkipped  int        `json:"partitions_skipped"`
	HiddenFilesSkipped int        `json:"hidden_files_skipped"`
	// Files are the files this shard read, with their rows and rejects;
	// FileIndex[k] is Files[k]'s index in Listing and Counts[k] its number
	// of events (rows that passed, before deduplication).
	Files     []FileStat `json:"files"`
	FileIndex []int      `json:"file_index"`
	Counts    []int      `json:"counts"`
	// Users and Items are the shard's vocabularies, in order of first
	// appearance: an event's User u is Users[u].
	Users []string          `json:"-"`
	Items []string          `json:"-"`
	Types []model.EventType `json:"types"`
	// Events are the shard's events in file then row order (nil once
	// written out; MergeShards takes them through its next function).
	Events        []model.Event    `json:"-"`
	Read          int64            `json:"rows_read"`
	OutsideWindow int64            `json:"rows_outside_window"`
	Forgotten     int64            `json:"rows_forgotten"`
	Rejected      map[string]int64 `json:"rows_rejected"`
	// ForgottenUsers are the distinct users of the forgotten rows, sorted,
	// as keys the caller chose (ForgetKey), never the ids themselves.
	ForgottenUsers []string `json:"forgotten_users"`
}

// ForgetKey, when set in Options, names a forgotten user in a Shard's
// ForgottenUsers (for instance by its place in the erasure list), so that
// the ids of erased users are not written anywhere; nil keeps the id.
type ForgetKey func(id string) string

// ReadShard reads shard index of shards: the files of the window's listing
// (as Read lists it) whose index mod shards is index.
func ReadShard(ctx context.Context, bucket *blob.Bucket, opts Options, index, shards int, key ForgetKey) (*Shard, error) {
	if shards <= 0 || index < 0 || index >= shards {
		return nil, fmt.Errorf("ingest shard %d of %d is out of range", index, shards)
	}
	r, err := newReader(bucket, opts)
	if err != nil {
		return nil, err
	}
	objs, skipped, hidden, err := r.list(ctx)
	if err != nil {
		return nil, err
	}
	sh := &Shard{Index: index, Shards: shards, PartitionsSkipped: skipped, HiddenFilesSkipped: hidden, Types: r.types,
		Listing: make([]FileStat, len(objs)), Rejected: map[string]int64{}}
	var mine []object
	for i, o := range objs {
		sh.Listing[i] = o.identity()
		if i%shards == index {
			mine = append(mine, o)
			sh.FileIndex = append(sh.FileIndex, i)
			sh.Files = append(sh.Files, o.stat())
		}
	}
	acct := &Accounting{Rejected: sh.Rejected, Files: sh.Files}
	users, items, evs, starts, err := r.readObjects(ctx, mine, acct)
	if err != nil {
		return nil, err
	}
	for k := range starts {
		end := len(evs)
		if k+1 < len(starts) {
			end = starts[k+1]
		}
		sh.Counts = append(sh.Counts, end-starts[k])
	}
	sh.Users, sh.Items, sh.Events = users.IDs(), items.IDs(), evs
	sh.Read, sh.OutsideWindow, sh.Forgotten = acct.Read, acct.OutsideWindow, acct.Forgotten
	for u := range r.forgotten {
		if key != nil {
			u = key(u)
		}
		sh.ForgottenUsers = append(sh.ForgottenUsers, u)
	}
	slices.Sort(sh.ForgottenUsers)
	return sh, nil
}

// ShardMismatch is a set of shards that cannot be merged: missing, doubled,
// of another shard count, or over another listing of the inputs.
type ShardMismatch struct{ Reason string }

func (e *ShardMismatch) Error() string { return "ingest shards: " + e.Reason }

// MergeShards merges the shards of one listing into the deduplicated,
// id-mapped interactions and the accounting Read gives for it: ids are
// mapped in the listing's file then row order, as Read maps them, so the
// result is the same to the byte. next(s, dst) fills dst with shard s's
// next len(dst) events (in its file then row order); nil takes them from
// the shards' Events.
func MergeShards(shards []*Shard, next func(s int, dst []model.Event) error) (*model.Interactions, *Accounting, error) {
	if len(shards) == 0 {
		return nil, nil, &ShardMismatch{"no shards"}
	}
	n := shards[0].Shards
	if len(shards) != n {
		return nil, nil, &ShardMismatch{fmt.Sprintf("%d shards given for a run of %d", len(shards), n)}
	}
	ref := shards[0]
	for i, s := range shards {
		switch {
		case s.Shards != n:
			return nil, nil, &ShardMismatch{fmt.Sprintf("shard %d was written for %d shards, shard %d for %d", s.Index, s.Shards, ref.Index, n)}
		case s.Index != i:
			return nil, nil, &ShardMismatch{fmt.Sprintf("shard %d given in place %d", s.Index, i)}
		case !sameListing(s.Listing, ref.Listing) || s.PartitionsSkipped != ref.PartitionsSkipped || s.HiddenFilesSkipped != ref.HiddenFilesSkipped:
			return nil, nil, &ShardMismatch{fmt.Sprintf("shard %d listed other input objects than shard 0 (%d objects against %d): the inputs changed between the shards' runs; run every shard again", i, len(s.Listing), len(ref.Listing))}
		case !slices.Equal(s.Types, ref.Types):
			return nil, nil, &ShardMismatch{fmt.Sprintf("shard %d has other event types than shard 0", i)}
		case len(s.Files) != len(s.FileIndex) || len(s.Counts) != len(s.FileIndex):
			return nil, nil, &ShardMismatch{fmt.Sprintf("shard %d is inconsistent: %d files, %d indices, %d counts", i, len(s.Files), len(s.FileIndex), len(s.Counts))}
		}
	}
	// owner[f] = (shard, place) of listed file f.
	type place struct{ s, k int }
	owner := make([]place, len(ref.Listing))
	for f := range owner {
		owner[f] = place{-1, -1}
	}
	total := 0
	for i, s := range shards {
		for k, f := range s.FileIndex {
			if f < 0 || f >= len(owner) || f%n != i || owner[f].s >= 0 {
				return nil, nil, &ShardMismatch{fmt.Sprintf("shard %d holds file %d, which is not its share of the listing", i, f)}
			}
			owner[f] = place{i, k}
			total += s.Counts[k]
		}
	}
	for f, o := range owner {
		if o.s < 0 {
			return nil, nil, &ShardMismatch{fmt.Sprintf("no shard holds %s (file %d of the listing)", ref.Listing[f].Key, f)}
		}
	}
	if next == nil {
		taken := make([]int, len(shards))
		next = func(s int, dst []model.Event) error {
			if taken[s]+len(dst) > len(shards[s].Events) {
				return &ShardMismatch{fmt.Sprintf("shard %d holds %d events, fewer than its files count", s, len(shards[s].Events))}
			}
			copy(dst, shards[s].Events[taken[s]:])
			taken[s] += len(dst)
			return nil
		}
	}

	acct := &Accounting{Rejected: map[string]int64{}, Files: make([]FileStat, len(owner)),
		PartitionsSkipped: ref.PartitionsSkipped, HiddenFilesSkipped: ref.HiddenFilesSkipped}
	forgotten := map[string]bool{}
	for _, s := range shards {
		acct.Read += s.Read
		acct.OutsideWindow += s.OutsideWindow
		acct.Forgotten += s.Forgotten
		for r, c := range s.Rejected {
			acct.Rejected[r] += c
		}
		for _, u := range s.ForgottenUsers {
			forgotten[u] = true
		}
	}
	acct.ForgottenUsers = int64(len(forgotten))

	users, items := model.NewVocab(), model.NewVocab()
	umap, imap := make([][]int32, n), make([][]int32, n)
	for i, s := range shards {
		umap[i], imap[i] = unmapped(len(s.Users)), unmapped(len(s.Items))
	}
	evs := make([]model.Event, total)
	starts := make([]int, 0, len(owner))
	at := 0
	for f, o := range owner {
		s := shards[o.s]
		acct.Files[f] = s.Files[o.k]
		starts = append(starts, at)
		dst := evs[at : at+s.Counts[o.k]]
		if err := next(o.s, dst); err != nil {
			return nil, nil, fmt.Errorf("ingest shard %d, %s: %w", o.s, s.Files[o.k].Key, err)
		}
		for j := range dst {
			e := &dst[j]
			u, it := int(e.User), int(e.Item)
			if u < 0 || u >= len(s.Users) || it < 0 || it >= len(s.Items) || int(e.Type) >= len(ref.Types) {
				return nil, nil, &ShardMismatch{fmt.Sprintf("shard %d, %s: event %d refers to user %d, item %d or type %d outside the shard's %d users, %d items, %d types",
					o.s, s.Files[o.k].Key, j, u, it, e.Type, len(s.Users), len(s.Items), len(ref.Types))}
			}
			e.User = mapLocal(users, umap[o.s], s.Users, u)
			e.Item = mapLocal(items, imap[o.s], s.Items, it)
		}
		at += len(dst)
	}
	evs, dups := dedupe(evs, starts)
	acct.Used, acct.Duplicate = int64(len(evs)), dups
	return &model.Interactions{Users: users, Items: items, Types: ref.Types, Events: evs}, acct, nil
}

func unmapped(n int) []int32 {
	m := make([]int32, n)
	for i := range m {
		m[i] = -1
	}
	return m
}

// mapLocal is the global index of a shard's local id l, added to v on its
// first appearance (in listing order, as Read adds it).
func mapLocal(v *model.Vocab, m []int32, ids []string, l int) int32 {
	if g := m[l]; g >= 0 {
		return g
	}
	g, ok := v.Lookup(ids[l])
	if !ok {
		g = v.Add(ids[l])
	}
	m[l] = g
	return g
}

func sameListing(a, b []FileStat) bool {
	return slices.EqualFunc(a, b, func(x, y FileStat) bool {
		return x.Key == y.Key && x.Size == y.Size && x.ModTime.Equal(y.ModTime) && x.MD5 == y.MD5 && x.ETag == y.ETag && x.SHA256 == y.SHA256
	})
}
