package events

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"gocloud.dev/blob"

	"github.com/shelfml/shelf/model"
)

// batchRows is the number of rows per Arrow record batch: large enough to
// amortise per-batch work, small enough to keep memory flat.
const batchRows = 64 << 10

// defaultBufferSize is used when Config.ReadBufferSize is unset.
const defaultBufferSize = 1 << 20

// object is one listed input file.
type object struct {
	key    string
	size   int64
	mod    time.Time
	md5    string // hex, as the store lists it
	etag   string // when there is no MD5
	sha256 string // of the bytes, on local file systems
}

// identity is the object as a FileStat with no rows read yet.
func (o object) identity() FileStat {
	return FileStat{Key: o.key, Size: o.size, ModTime: o.mod, MD5: o.md5, ETag: o.etag, SHA256: o.sha256}
}

// stat is identity, ready to count the object's rows and rejects.
func (o object) stat() FileStat {
	fs := o.identity()
	fs.Rejected = map[string]int64{}
	return fs
}

// candidate is a row that passed validation, before id mapping and dedupe.
// Its strings may alias the batch's Arrow record.
type candidate struct {
	user, item string
	uref, iref int32 // entry in the batch's udict / idict; −1: map the string
	ts         int64
	typ        uint8
	qty, price float32
}

// batch is the decoded form of one record batch, handed from the decoding
// goroutine to the merging one in file and row order.
type batch struct {
	file    int
	rec     recordReleaser // kept alive until the candidates are merged
	rows    int64
	cands   []candidate
	udict   *pageDict // the page decoder's id dictionaries (nil: none)
	idict   *pageDict
	outside int64
	forgot  []string // user ids of the rows dropped as forgotten (with repeats)
	rejects []Reject
	err     error  // terminal: the read stops here
	eof     bool   // the file's last message: no rows
	decoder string // with eof: which decoder read the file
}

// decodeWorkers is how many files are decoded at once.
const decodeWorkers = 2

type recordReleaser interface{ Release() }

func (b *batch) release() {
	if b.rec != nil {
		b.rec.Release()
		b.rec = nil
	}
	if cap(b.cands) == batchRows {
		candPool.Put(b.cands[:0])
	}
	b.cands = nil
}

// candPool recycles full-size candidate buffers between batches.
var candPool = sync.Pool{New: func() any { return make([]candidate, 0, batchRows) }}

// newCands is a candidate buffer for a batch of n rows.
func newCands(n int) []candidate {
	if n >= batchRows/2 {
		return candPool.Get().([]candidate)[:0]
	}
	return make([]candidate, 0, n)
}

// Read lists every *.parquet object in bucket (recursively, in key order),
// skips hive partitions dt=YYYY-MM-DD whose whole day (in
// Config.Timestamp.Timezone) lies outside [Start, End), and ingests the rest
// into deduplicated, id-mapped interactions. The Accounting is returned even
// with an error and is always Balanced; it covers the rows read so far.
func Read(ctx context.Context, bucket *blob.Bucket, opts Options) (*model.Interactions, *Accounting, error) {
	acct := &Accounting{Rejected: map[string]int64{}}
	r, err := newReader(bucket, opts)
	if err != nil {
		return nil, acct, err
	}
	objs, skipped, hidden, err := r.list(ctx)
	if err != nil {
		return nil, acct, err
	}
	acct.PartitionsSkipped, acct.HiddenFilesSkipped = skipped, hidden
	acct.Files = make([]FileStat, len(objs))
	for i, o := range objs {
		acct.Files[i] = o.stat()
	}

	users, items, evs, starts, err := r.readObjects(ctx, objs, acct)
	evs, dups := dedupe(evs, starts)
	acct.Used, acct.Duplicate = int64(len(evs)), dups
	if err != nil {
		return nil, acct, err
	}
	return &model.Interactions{Users: users, Items: items, Types: r.types, Events: evs}, acct, nil
}

// readObjects decodes objs (acct.Files[i] describes objs[i]) into id-mapped
// events in file then row order, not yet deduplicated, and accounts for
// their rows; starts are where each file's events begin (up to an error).
func (r *reader) readObjects(ctx context.Context, objs []object, acct *Accounting) (users, items *model.Vocab, evs []model.Event, starts []int, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// decodeWorkers goroutines decode files (Arrow, validation), file i on
	// worker i mod decodeWorkers; this one merges (vocab, dedupe, sink) in
	// file then row order, taking each file's batches from its worker until
	// its end marker, so results do not depend on scheduling.
	chans := make([]chan *batch, decodeWorkers)
	for w := range chans {
		ch := make(chan *batch, 2)
		chans[w] = ch
		go func() {
			defer close(ch)
			send := func(b *batch) bool {
				select {
				case ch <- b:
					return true
				case <-ctx.Done():
					b.release()
					return false
				}
			}
			for i := w; i < len(objs); i += decodeWorkers {
				dec, err := r.decodeFile(ctx, i, objs[i], send)
				if err != nil {
					send(&batch{file: i, err: err})
					return
				}
				if !send(&batch{file: i, eof: true, decoder: dec}) {
					return
				}
			}
		}()
	}

	users, items = model.NewVocab(), model.NewVocab()
	var totalBytes int64
	for _, o := range objs {
		totalBytes += o.size
	}
	for i := range objs {
		if err == nil {
			starts = append(starts, len(evs))
		}
		for b := range chans[i%decodeWorkers] {
			if b.eof {
				acct.Files[i].Decoder = b.decoder
				if i == 0 && objs[0].size > 0 && len(evs) > 0 {
					// Size the event log once from the first file's events
					// per byte, 5 % over, instead of doubling it as it grows.
					est := float64(len(evs)) / float64(objs[0].size) * float64(totalBytes) * 1.05
					evs = slices.Grow(evs, int(min(est, 1<<31))-len(evs))
				}
				break
			}
			if err == nil {
				err = r.merge(b, acct, users, items, &evs)
			}
			b.release()
			if err != nil {
				cancel() // stop the decoders; keep draining to release their records
			} else if r.opts.Progress != nil {
				r.opts.Progress(b.file, len(objs), acct.Read)
			}
		}
	}
	for _, ch := range chans {
		for b := range ch {
			b.release()
		}
	}
	if err == nil {
		err = ctx.Err()
	}
	if err == nil && r.opts.Progress != nil {
		r.opts.Progress(len(objs), len(objs), acct.Read)
	}

	return users, items, evs, starts, err
}

// merge maps a batch's ids, appends its events and accounts for its rows.
func (r *reader) merge(b *batch, acct *Accounting, users, items *model.Vocab, evs *[]model.Event) error {
	if b.err != nil {
		return b.err
	}
	for _, c := range b.cands {
		*evs = append(*evs, model.Event{TS: uint32(c.ts), User: mapID(users, b.udict, c.uref, c.user), Item: mapID(items, b.idict, c.iref, c.item),
			Type: c.typ, Quantity: c.qty, Price: c.price})
	}
	fs := &acct.Files[b.file]
	fs.Rows += b.rows
	acct.Read += b.rows
	acct.OutsideWindow += b.outside
	acct.Forgotten += int64(len(b.forgot))
	for _, u := range b.forgot {
		if !r.forgotten[u] {
			r.forgotten[u] = true
			acct.ForgottenUsers++
		}
	}
	for _, rj := range b.rejects {
		acct.Rejected[rj.Reason]++
		fs.Rejected[rj.Reason]++
	}
	// Candidates are counted as Used (then Duplicate) once deduplicated.
	if r.opts.Rejects != nil {
		for _, rj := range b.rejects {
			if err := r.opts.Rejects.Reject(rj); err != nil {
				return fmt.Errorf("write reject of %s row %d: %w", rj.File, rj.Row, err)
			}
		}
	}
	return nil
}

// addID returns id's index, copying id out of Arrow memory when it is new.
func addID(v *model.Vocab, id string) int32 {
	if i, ok := v.Lookup(id); ok {
		return i
	}
	return v.Add(strings.Clone(id))
}

// mapID is addID through a page dictionary: an entry's first row maps it
// (in row order, as addID would), later rows read the index.
func mapID(v *model.Vocab, d *pageDict, ref int32, id string) int32 {
	if ref < 0 {
		return addID(v, id)
	}
	if i := d.ids[ref]; i >= 0 {
		return i
	}
	i := addID(v, id)
	d.ids[ref] = i
	return i
}

// dedupe sorts events into model.SortEvents order and drops repeats of
// (ts, user, item, type), keeping the first in file order. starts are the
// offsets where each file's events begin (evs is in file, then row order).
//
// Each file's run is sorted on its own, on both cores — dumps are
// partitioned by day, so the runs usually follow one another in time and
// are then already the global order; when they overlap (late events in a
// later partition) one stable sort of the whole follows. Stable sorts
// throughout keep equal keys in file order.
func dedupe(evs []model.Event, starts []int) ([]model.Event, int64) {
	bounds := append(slices.Clone(starts), len(evs))
	if len(bounds) == 0 || bounds[0] != 0 {
		bounds = append([]int{0}, bounds...)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range dedupeWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i+1 >= len(bounds) {
					return
				}
				sortRun(evs[bounds[i]:bounds[i+1]])
			}
		}()
	}
	wg.Wait()
	for i := 1; i < len(bounds)-1; i++ {
		if b := bounds[i]; b > 0 && b < len(evs) && compareEvents(evs[b-1], evs[b]) > 0 {
			slices.SortStableFunc(evs, compareEvents)
			break
		}
	}
	out := evs[:0]
	var dups int64
	for i, e := range evs {
		if i > 0 {
			p := out[len(out)-1]
			if p.TS == e.TS && p.User == e.User && p.Item == e.Item && p.Type == e.Type {
				dups++
				continue
			}
		}
		out = append(out, e)
	}
	return out, dups
}

// dedupeWorkers sort files' runs in parallel; the result does not depend
// on it.
const dedupeWorkers = 2

// sortRun stably sorts one file's events: a stable radix sort by
// timestamp unless the rows are already in time order (the usual layout),
// then a linear pass that stably sorts each run of equal timestamps.
func sortRun(evs []model.Event) {
	if !tsSorted(evs) {
		if len(evs) > radixMaxRun {
			slices.SortStableFunc(evs, compareEvents) // in place
			return
		}
		radixByTS(evs)
	}
	for i := 0; i < len(evs); {
		j := i + 1
		for j < len(evs) && evs[j].TS == evs[i].TS {
			j++
		}
		if j-i > 1 {
			slices.SortStableFunc(evs[i:j], compareEvents)
		}
		i = j
	}
}

// radixMaxRun bounds the runs radixByTS sorts: it needs a copy of the run
// (24 bytes an event); longer ones are sorted in place.
const radixMaxRun = 16 << 20

// radixByTS stably sorts evs by TS alone: least significant digit first,
// 11 bits a pass over TS − min(TS), so a day of seconds takes two passes.
func radixByTS(evs []model.Event) {
	if len(evs) < 2 {
		return
	}
	lo, hi := evs[0].TS, evs[0].TS
	for _, e := range evs {
		lo, hi = min(lo, e.TS), max(hi, e.TS)
	}
	const bits = 11
	src, dst := evs, make([]model.Event, len(evs))
	for shift := uint(0); shift < 64 && uint64(hi-lo)>>shift > 0; shift += bits {
		var at [1 << bits]int
		for _, e := range src {
			at[(uint64(e.TS-lo)>>shift)&(1<<bits-1)]++
		}
		sum := 0
		for d, c := range at {
			at[d], sum = sum, sum+c
		}
		for _, e := range src {
			d := (uint64(e.TS-lo) >> shift) & (1<<bits - 1)
			dst[at[d]] = e
			at[d]++
		}
		src, dst = dst, src
	}
	if &src[0] != &evs[0] {
		copy(evs, src)
	}
}

// tsSorted reports whether evs are in non-decreasing time order.
func tsSorted(evs []model.Event) bool {
	for i := 1; i < len(evs); i++ {
		if evs[i].TS < evs[i-1].TS {
			return false
		}
	}
	return true
}

func compareEvents(a, b model.Event) int {
	switch {
	case a.TS != b.TS:
		return cmpInt(a.Time(), b.Time())
	case a.User != b.User:
		return cmpInt(int64(a.User), int64(b.User))
	case a.Item != b.Item:
		return cmpInt(int64(a.Item), int64(b.Item))
	}
	return cmpInt(int64(a.Type), int64(b.Type))
}

func cmpInt(a, b int64) int {
	if a < b {
		return -1
	}
	if a > b {
		return 1
	}
	return 0
}

// reader holds what every file's decoding needs.
type reader struct {
	bucket   *blob.Bucket
	opts     Options
	scan     *scanner
	loc      *time.Location
	unit     int64 // units per second of integer ts; 0 when the config's unit is invalid
	types    []model.EventType
	typeIdx  map[string]uint8
	defType  int // index of DefaultEventType, -1 if none
	startSec int64
	endSec   int64
	nowSec   int64
	hasStart bool
	hasEnd   bool
	hasNow   bool
	// forgotten are the forgotten users seen so far (merge only).
	forgotten map[string]bool
}

func newReader(bucket *blob.Bucket, opts Options) (*reader, error) {
	cfg := opts.Config
	r := &reader{bucket: bucket, opts: opts, defType: -1, typeIdx: map[string]uint8{}, forgotten: map[string]bool{},
		scan: newScanner("events", bucket, opts.mem, int64(cfg.ReadBufferSize), cfg.Limits)}
	cfgErr := func(format string, a ...any) error {
		return &DataError{Row: -1, Reason: "config: " + fmt.Sprintf(format, a...)}
	}
	if cfg.Columns.User == "" || cfg.Columns.Item == "" || cfg.Columns.TS == "" {
		return nil, cfgErr("events.columns: user_id, item_id and ts are required")
	}
	tz := cfg.Timestamp.Timezone
	if tz == "" {
		tz = "UTC"
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return nil, cfgErr("events.timestamp.timezone %q: %v", tz, err)
	}
	r.loc = loc
	switch cfg.Timestamp.Unit {
	case "s":
		r.unit = 1
	case "ms":
		r.unit = 1e3
	case "us":
		r.unit = 1e6
	case "ns":
		r.unit = 1e9
	}
	if len(cfg.EventTypes) == 0 || len(cfg.EventTypes) > 255 {
		return nil, cfgErr("events.event_types: need 1..255 types, have %d", len(cfg.EventTypes))
	}
	for i, t := range cfg.EventTypes {
		r.types = append(r.types, model.EventType{Name: t.Name, Weight: t.Weight, Purchase: t.Purchase})
		if _, dup := r.typeIdx[t.Name]; !dup {
			r.typeIdx[t.Name] = uint8(i)
		}
	}
	if i, ok := r.typeIdx[cfg.DefaultEventType]; ok {
		r.defType = int(i)
	}
	if r.defType < 0 && (cfg.Columns.EventType == "" || cfg.UnknownEventType == "default") {
		return nil, cfgErr("events.default_event_type %q: must name one of events.event_types", cfg.DefaultEventType)
	}
	if !opts.Start.IsZero() {
		r.hasStart, r.startSec = true, ceilSeconds(opts.Start)
	}
	if !opts.End.IsZero() {
		r.hasEnd, r.endSec = true, ceilSeconds(opts.End)
	}
	if !opts.Now.IsZero() {
		r.hasNow, r.nowSec = true, opts.Now.Unix()
	}
	return r, nil
}

// ceilSeconds rounds t up to whole seconds (events have second resolution).
func ceilSeconds(t time.Time) int64 {
	s := t.Unix()
	if t.Nanosecond() > 0 {
		s++
	}
	return s
}

// list returns the *.parquet objects to read in key order, and the number of
// partitions skipped because their day lies outside the window.
func (r *reader) list(ctx context.Context) ([]object, int, int, error) {
	all, hidden, err := listParquet(ctx, r.bucket, "events", "", r.opts.Skip)
	if err != nil {
		return nil, 0, 0, err
	}
	objs := all[:0]
	skipped := map[string]bool{}
	for _, o := range all {
		if part, out := r.outsidePartition(o.key); out {
			skipped[part] = true
			continue
		}
		objs = append(objs, o)
	}
	return objs, len(skipped), hidden, nil
}

// outsidePartition reports whether key lies in a dt=YYYY-MM-DD partition
// whose whole day is outside [Start, End), and returns the partition prefix.
func (r *reader) outsidePartition(key string) (string, bool) {
	part, day, ok := partitionDay(key, r.loc)
	if !ok {
		return "", false
	}
	next := day.AddDate(0, 0, 1)
	return part, (r.hasEnd && day.Unix() >= r.endSec) || (r.hasStart && next.Unix() <= r.startSec)
}
