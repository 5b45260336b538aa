package events

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

// shardFixture is seven dumps with repeats across files (the same row in
// two files, which may land in two shards), late rows (a later file's
// events before an earlier file's), rejects, rows outside the window and
// rows of a forgotten user.
func shardFixture(t *testing.T) map[string][]byte {
	rng := rand.New(rand.NewPCG(7, 9))
	files := map[string][]byte{}
	var prev [][]any
	for f := range 7 {
		var rows [][]any
		for r := range 300 {
			ts := at(time.Duration(f*3600+rng.IntN(5400)) * time.Second)
			row := []any{fmt.Sprintf("u%d", rng.IntN(60)), fmt.Sprintf("i%d", rng.IntN(90)), ts, []string{"view", "cart", "purchase"}[rng.IntN(3)]}
			switch {
			case r%97 == 5:
				row[0] = nil // null_user
			case r%89 == 7:
				row[3] = "click" // unknown_event_type
			case r%83 == 3:
				row[2] = winEnd.Add(time.Hour) // outside the window
			case r%41 == 1:
				row[0] = "erased"
			case r%13 == 0 && len(prev) > 0:
				row = prev[rng.IntN(len(prev))] // a repeat of the previous file's row
			}
			rows = append(rows, row)
		}
		prev = rows
		files[fmt.Sprintf("events/dt=2024-06-%02d/part-%d.parquet", 1+f/2, f%2)] = parquetBytes(t, stdSch, rows, 64)
	}
	return files
}

// TestShardsMergeToRead: for every shard count, the merged shards are
// what one Read of the same objects gives, ids, order and accounting alike.
func TestShardsMergeToRead(t *testing.T) {
	ctx := context.Background()
	for _, kind := range bucketKinds {
		b := kind.open(t, shardFixture(t))
		opts := func(log *rejectLog) Options {
			return Options{Config: testConfig(), Start: winStart, End: winEnd, Now: wallClock, Rejects: log,
				Forget: map[string]bool{"erased": true}, mem: checkedMem(t)}
		}
		var direct rejectLog
		want, wantAcct, err := Read(ctx, b, opts(&direct))
		if err != nil {
			t.Fatal(err)
		}
		if wantAcct.Duplicate == 0 || wantAcct.OutsideWindow == 0 || len(wantAcct.Rejected) < 2 || wantAcct.ForgottenUsers != 1 {
			t.Fatalf("fixture lacks a case: %+v", wantAcct)
		}
		for _, n := range []int{1, 2, 3, 7, 9} {
			t.Run(fmt.Sprintf("%s/%d", kind.name, n), func(t *testing.T) {
				var shards []*Shard
				var rejects []Reject
				for i := range n {
					var log rejectLog
					s, err := ReadShard(ctx, b, opts(&log), i, n, func(id string) string { return "key:" + id })
					if err != nil {
						t.Fatal(err)
					}
					shards = append(shards, s)
					rejects = append(rejects, log.rows...)
				}
				got, acct, err := MergeShards(shards, nil)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got.Users.IDs(), want.Users.IDs()) || !reflect.DeepEqual(got.Items.IDs(), want.Items.IDs()) {
					t.Error("vocabularies differ from Read's")
				}
				if !reflect.DeepEqual(got.Events, want.Events) || !reflect.DeepEqual(got.Types, want.Types) {
					t.Errorf("events differ from Read's (%d against %d)", len(got.Events), len(want.Events))
				}
				if !reflect.DeepEqual(acct, wantAcct) {
					t.Errorf("accounting differs:\n got %+v\nwant %+v", acct, wantAcct)
				}
				if !acct.Balanced() {
					t.Error("accounting does not balance")
				}
				if len(rejects) != len(direct.rows) {
					t.Errorf("%d rejects across the shards, Read sank %d", len(rejects), len(direct.rows))
				}
				for _, s := range shards {
					for _, u := range s.ForgottenUsers {
						if !strings.HasPrefix(u, "key:") {
							t.Errorf("forgotten user %q written as itself", u)
						}
					}
				}
			})
		}
	}
}

// TestMergeShardsRefuses: a missing or doubled shard, shards of another
// count, and shards over two listings (a dump arrived between two shards'
// runs) are refused with the reason, never merged into a wrong log.
func TestMergeShardsRefuses(t *testing.T) {
	ctx := context.Background()
	files := shardFixture(t)
	b := memBucket(t, files)
	opts := Options{Config: testConfig(), Start: winStart, End: winEnd, Now: wallClock}
	read := func(i, n int) *Shard {
		s, err := ReadShard(ctx, b, opts, i, n, nil)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s0, s1, s2 := read(0, 3), read(1, 3), read(2, 3)
	other := read(1, 2)
	upload(t, b, map[string][]byte{"events/dt=2024-06-05/part-0.parquet": std(t, []any{"u1", "i1", at(0), "view"})})
	late := read(2, 3)
	for _, c := range []struct {
		name   string
		shards []*Shard
		want   string
	}{
		{"missing", []*Shard{s0, s1}, "2 shards given for a run of 3"},
		{"doubled", []*Shard{s0, s1, s1}, "shard 1 given in place 2"},
		{"other count", []*Shard{s0, other, s2}, "written for 2 shards"},
		{"inputs changed", []*Shard{s0, s1, late}, "inputs changed between the shards' runs"},
	} {
		_, _, err := MergeShards(c.shards, nil)
		var sm *ShardMismatch
		if !errors.As(err, &sm) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want a ShardMismatch saying %q", c.name, err, c.want)
		}
	}
	if _, err := ReadShard(ctx, b, opts, 3, 3, nil); err == nil {
		t.Error("shard 3 of 3 was read")
	}
}
