package jobs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"sync"

	"github.com/parquet-go/parquet-go"

	"github.com/shelfml/shelf/io/blobs"
	"github.com/shelfml/shelf/io/events"
	"github.com/shelfml/shelf/io/tables"
	"github.com/shelfml/shelf/model"
)

// An ingest shard (shelf ingest --shard i --shards N, one pod of an Indexed
// Job) reads its share of the window's dumps — listed file f goes to shard
// f mod N — validates and id-maps them with its own vocabularies, and
// writes under runs/<D>/<run>/ingest/shard-<i>-of-<N>/:
//
//	events.parquet  its events in file then row order (ts, user, item, type, quantity, price; ids local)
//	users.parquet   its user vocabulary (pseudonymised when the run is)
//	items.parquet   its item vocabulary
//	shard.json      the listing it partitioned, its files' row accounting,
//	                and the SHA-256 of the three files above (written last)
//
// and its rejects to runs/<D>/<run>/rejects/part-<i>.parquet. With
// events.ingest_shards = N, every stage that would read the dumps (train,
// score, run) merges the N shards instead: the listing must be one, each
// file must be in exactly its shard, and the ids are mapped in the
// listing's file then row order, so the events, the accounting, the
// version id and every table are those of a run that read the dumps
// itself (events.MergeShards).

// IngestResult is what one ingest shard reports.
type IngestResult struct {
	Date       string             `json:"date"`
	RunID      string             `json:"run_id"`
	Shard      int                `json:"shard"`
	Shards     int                `json:"shards"`
	URI        string             `json:"uri"`   // the shard's folder
	Files      int                `json:"files"` // dumps it read
	Events     int                `json:"events"`
	Users      int                `json:"users"`
	Items      int                `json:"items"`
	Accounting *events.Accounting `json:"accounting"` // its files' rows (before the merge's deduplication)
}

// mergeChunk is how many events a shard's decoder hands the merge at once.
const mergeChunk = 32 << 10

// shardEventRow is one event of an ingest shard, ids local to the shard.
type shardEventRow struct {
	TS       int64   `parquet:"ts,delta"`
	User     int32   `parquet:"user"`
	Item     int32   `parquet:"item"`
	Type     int32   `parquet:"type"`
	Quantity float32 `parquet:"quantity"`
	Price    float32 `parquet:"price"`
}

// shardMeta is shard.json.
type shardMeta struct {
	*events.Shard
	CodeVersion string `json:"code_version"`
	Events      int    `json:"events"`
	Users       int    `json:"users"`
	Items       int    `json:"items"`
	// SHA256 of events.parquet, users.parquet and items.parquet.
	SHA256 map[string]string `json:"sha256"`
	// ForgetSHA256 is the erasure list's the shard filtered with ("": none).
	ForgetSHA256 string `json:"forget_sha256,omitempty"`
}

func shardPrefix(run string, i, n int) string {
	return fmt.Sprintf("%singest/shard-%05d-of-%05d/", run, i, n)
}

// Ingest runs one ingest shard for the date.
func (r *Runner) Ingest(ctx context.Context, shard, shards int) (*IngestResult, error) {
	if shards <= 0 || shard < 0 || shard >= shards {
		return nil, Permanent(fmt.Errorf("ingest: shard %d of %d is out of range", shard, shards))
	}
	e, err := r.open(ctx)
	if err != nil {
		return nil, err
	}
	defer e.close()
	return e.ingestShard(ctx, shard, shards)
}

func (e *env) ingestShard(ctx context.Context, shard, shards int) (*IngestResult, error) {
	done := e.stages.begin("ingest")
	prefix := shardPrefix(e.runPrefix(), shard, shards)
	// The marker goes first: files a killed attempt half-wrote are never
	// vouched for (and the SHA-256 in shard.json would catch them anyway).
	if err := e.out.Delete(ctx, prefix+"shard.json"); err != nil && !blobs.IsNotFound(err) {
		return nil, fmt.Errorf("ingest: clear %sshard.json: %w", prefix, err)
	}
	w, err := tables.NewWriter[tables.RejectRow](ctx, e.out, e.runPrefix()+fmt.Sprintf("rejects/part-%05d.parquet", shard))
	if err != nil {
		return nil, err
	}
	defer w.Abort() // no-op after a successful Close
	sink := &rejectSink{w: w, userColumn: e.cfg.Events.Columns.User, pseudo: e.pseudo}
	opts, err := e.readOptions(ctx)
	if err != nil {
		return nil, err
	}
	opts.Rejects = sink
	var key events.ForgetKey
	if e.forget != nil {
		ids := make([]string, 0, len(e.forget.ids))
		for id := range e.forget.ids {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		key = func(id string) string {
			i, _ := slices.BinarySearch(ids, id)
			return "forget:" + strconv.Itoa(i)
		}
	}
	m := e.meter("ingest", "files", 0)
	opts.Progress = m.files
	sh, err := events.ReadShard(ctx, e.evb, opts, shard, shards, key)
	m.Finish()
	if err != nil {
		return nil, fmt.Errorf("ingest %s: %w", blobs.Redact(e.cfg.Events.URL), err)
	}
	if err := sink.flush(); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	if e.pseudo.on() {
		for i, id := range sh.Users {
			sh.Users[i] = e.pseudo.id(id)
		}
	}
	meta := shardMeta{Shard: sh, CodeVersion: e.r.CodeVersion, Events: len(sh.Events), Users: len(sh.Users), Items: len(sh.Items), SHA256: map[string]string{},
		ForgetSHA256: e.forget.digest()}
	put := func(name string, data []byte) error {
		sum := sha256.Sum256(data)
		meta.SHA256[name] = hex.EncodeToString(sum[:])
		return blobs.WriteFile(ctx, e.out, prefix+name, data, blobs.DefaultPolicy())
	}
	for name, ids := range map[string][]string{"users.parquet": sh.Users, "items.parquet": sh.Items} {
		v, err := model.VocabFromIDs(ids)
		if err != nil {
			return nil, fmt.Errorf("ingest shard %d: %s: %w", shard, name, err)
		}
		data, err := tables.EncodeVocab(v)
		if err != nil {
			return nil, err
		}
		if err := put(name, data); err != nil {
			return nil, err
		}
	}
	data, err := encodeShardEvents(sh.Events)
	if err != nil {
		return nil, fmt.Errorf("ingest shard %d: events.parquet: %w", shard, err)
	}
	if err := put("events.parquet", data); err != nil {
		return nil, err
	}
	js, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := blobs.WriteFile(ctx, e.out, prefix+"shard.json", js, blobs.DefaultPolicy()); err != nil {
		return nil, err
	}
	acct := &events.Accounting{Read: sh.Read, OutsideWindow: sh.OutsideWindow, Forgotten: sh.Forgotten, Rejected: sh.Rejected,
		Files: sh.Files, ForgottenUsers: int64(len(sh.ForgottenUsers))}
	acct.Used = int64(len(sh.Events)) // before the merge's deduplication
	done(slog.Int("shard", shard), slog.Int("shards", shards), slog.Int("files", len(sh.Files)), slog.Int64("rows", sh.Read),
		slog.Int("events", len(sh.Events)), slog.Int("users", len(sh.Users)), slog.Int("items", len(sh.Items)))
	return &IngestResult{Date: e.cfg.Date, RunID: e.run, Shard: shard, Shards: shards, URI: blobs.ObjectURL(e.cfg.Output.URL, prefix),
		Files: len(sh.Files), Events: len(sh.Events), Users: len(sh.Users), Items: len(sh.Items), Accounting: acct}, nil
}

// encodeShardEvents writes events as shardEventRow Parquet.
func encodeShardEvents(evs []model.Event) ([]byte, error) {
	var buf bytes.Buffer
	w := parquet.NewGenericWriter[shardEventRow](&buf, parquet.Compression(&parquet.Zstd), parquet.PageBufferSize(1<<20))
	rows := make([]shardEventRow, 0, 8192)
	for i, ev := range evs {
		rows = append(rows, shardEventRow{TS: ev.Time(), User: ev.User, Item: ev.Item, Type: int32(ev.Type), Quantity: ev.Quantity, Price: ev.Price})
		if len(rows) == cap(rows) || i == len(evs)-1 {
			if _, err := w.Write(rows); err != nil {
				return nil, err
			}
			rows = rows[:0]
		}
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// mergeShards reads the date's N ingest shards (events.ingest_shards) and
// merges them into what reading the dumps would have given.
func (e *env) mergeShards(ctx context.Context, n int) (*model.Interactions, *events.Accounting, error) {
	metas := make([]*events.Shard, n)
	readers := make([]*parquet.GenericReader[shardEventRow], n)
	defer func() {
		for _, r := range readers {
			if r != nil {
				r.Close()
			}
		}
	}()
	for i := range n {
		prefix := shardPrefix(e.runPrefix(), i, n)
		js, err := blobs.ReadFile(ctx, e.out, prefix+"shard.json", blobs.DefaultPolicy())
		if blobs.IsNotFound(err) {
			// A train started before a shard finished: a later attempt finds it.
			return nil, nil, Retryable(fmt.Errorf("ingest shard %d of %d not written yet (%sshard.json): run `shelf ingest --date %s --shard %d --shards %d` with the same config first",
				i, n, prefix, e.cfg.Date, i, n))
		}
		if err != nil {
			return nil, nil, fmt.Errorf("ingest shard %d: %w", i, err)
		}
		var meta shardMeta
		if err := json.Unmarshal(js, &meta); err != nil || meta.Shard == nil {
			return nil, nil, Permanent(fmt.Errorf("ingest shard %d: %sshard.json: not a shard description (%v): run the shard again", i, prefix, err))
		}
		read := func(name string) ([]byte, error) {
			data, err := blobs.ReadFile(ctx, e.out, prefix+name, blobs.DefaultPolicy())
			if err != nil {
				return nil, fmt.Errorf("ingest shard %d: %w", i, err)
			}
			if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != meta.SHA256[name] {
				return nil, Permanent(fmt.Errorf("ingest shard %d: %s%s is not the file its shard.json describes (a rerun of the shard overlapped this one): run the shard again", i, prefix, name))
			}
			return data, nil
		}
		if f := e.forget.digest(); meta.ForgetSHA256 != f {
			return nil, nil, Permanent(fmt.Errorf("ingest shard %d was read with another erasure list (privacy.forget_url) than this run's (SHA-256 %q, now %q): run every shard again", i, meta.ForgetSHA256, f))
		}
		sh := meta.Shard
		for _, name := range []string{"users.parquet", "items.parquet"} {
			data, err := read(name)
			if err != nil {
				return nil, nil, err
			}
			v, err := tables.DecodeVocab(data)
			if err != nil {
				return nil, nil, Permanent(fmt.Errorf("ingest shard %d: %s: %w", i, name, err))
			}
			if name == "users.parquet" {
				sh.Users = v.IDs()
			} else {
				sh.Items = v.IDs()
			}
		}
		data, err := read("events.parquet")
		if err != nil {
			return nil, nil, err
		}
		readers[i] = parquet.NewGenericReader[shardEventRow](bytes.NewReader(data))
		if got := readers[i].NumRows(); got != int64(meta.Events) {
			return nil, nil, Permanent(fmt.Errorf("ingest shard %d: events.parquet holds %d rows, its shard.json %d", i, got, meta.Events))
		}
		metas[i] = sh
	}
	// Each shard's events are decoded on a goroutine of their own, a few
	// chunks ahead of the merge, which takes them in the listing's order.
	type chunk struct {
		evs []model.Event
		err error
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }() // before the readers close
	streams, free := make([]chan chunk, n), make([]chan []model.Event, n)
	for i := range n {
		streams[i], free[i] = make(chan chunk, 2), make(chan []model.Event, 4)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(streams[i])
			buf := make([]shardEventRow, mergeChunk)
			for {
				k, err := readers[i].Read(buf)
				if k > 0 {
					var evs []model.Event
					select {
					case evs = <-free[i]:
					default:
						evs = make([]model.Event, mergeChunk)
					}
					evs = evs[:k]
					for j, r := range buf[:k] {
						evs[j] = model.Event{TS: uint32(r.TS), User: r.User, Item: r.Item, Type: uint8(r.Type), Quantity: r.Quantity, Price: r.Price}
					}
					select {
					case streams[i] <- chunk{evs: evs}:
					case <-ctx.Done():
						return
					}
				}
				if err != nil {
					if !errors.Is(err, io.EOF) {
						select {
						case streams[i] <- chunk{err: err}:
						case <-ctx.Done():
						}
					}
					return
				}
			}
		}()
	}
	pending, base := make([][]model.Event, n), make([][]model.Event, n)
	next := func(s int, dst []model.Event) error {
		for len(dst) > 0 {
			if len(pending[s]) == 0 {
				c, ok := <-streams[s]
				if !ok {
					return Permanent(errors.New("events.parquet ends before its files' events"))
				}
				if c.err != nil {
					return c.err
				}
				pending[s], base[s] = c.evs, c.evs
			}
			k := copy(dst, pending[s])
			dst, pending[s] = dst[k:], pending[s][k:]
			if len(pending[s]) == 0 {
				select {
				case free[s] <- base[s][:cap(base[s])]:
				default:
				}
			}
		}
		return nil
	}
	in, acc, err := events.MergeShards(metas, next)
	var sm *events.ShardMismatch
	if errors.As(err, &sm) {
		err = Permanent(err)
	}
	return in, acc, err
}
