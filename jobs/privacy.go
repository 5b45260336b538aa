package jobs

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/parquet-go/parquet-go"

	"github.com/shelfml/shelf/io/blobs"
	"github.com/shelfml/shelf/io/tables"
	"github.com/shelfml/shelf/model"
)

// forgetList is the erasure list of a run: user ids as they appear in the
// dumps, and the identity of the list's content.
type forgetList struct {
	ids    map[string]bool
	sha256 string
	inputs []tables.InputObject // its objects, part of the version's inputs
}

func (f *forgetList) empty() bool { return f == nil || len(f.ids) == 0 }

// digest is the list's SHA-256 ("" without a list).
func (f *forgetList) digest() string {
	if f == nil {
		return ""
	}
	return f.sha256
}

// readForget reads privacy.forget_url (nil when unset). A list that cannot
// be read fails the run: a run must not train on users it was told to erase.
func (e *env) readForget(ctx context.Context) (*forgetList, error) {
	raw := e.cfg.Privacy.ForgetURL
	if raw == "" {
		return nil, nil
	}
	bucketURL, key, err := blobs.SplitObjectURL(raw)
	if err != nil {
		return nil, fmt.Errorf("privacy.forget_url: %w", err)
	}
	open := e.r.Open
	if open == nil {
		open = blobs.Open
	}
	b, err := open(ctx, bucketURL)
	if err != nil {
		return nil, fmt.Errorf("privacy.forget_url: %w", err)
	}
	if e.r.Open == nil {
		defer b.Close()
	}
	keys := []string{key}
	if key == "" || strings.HasSuffix(key, "/") {
		objs, err := blobs.List(ctx, b, key)
		if err != nil {
			return nil, fmt.Errorf("privacy.forget_url: %w", err)
		}
		keys = keys[:0]
		for _, o := range objs {
			keys = append(keys, o.Key)
		}
	}
	f := &forgetList{ids: map[string]bool{}}
	h := sha256.New()
	for _, k := range keys {
		data, err := blobs.ReadFile(ctx, b, k, blobs.DefaultPolicy())
		if err != nil {
			return nil, fmt.Errorf("privacy.forget_url %s: %w", k, err)
		}
		var ids []string
		if strings.HasSuffix(k, ".parquet") {
			ids, err = parquetUserIDs(data)
		} else {
			ids = textUserIDs(data)
		}
		if err != nil {
			return nil, Permanent(fmt.Errorf("privacy.forget_url %s: %w", k, err))
		}
		for _, id := range ids {
			f.ids[id] = true
		}
		sum := sha256.Sum256(data)
		f.inputs = append(f.inputs, tables.InputObject{Key: "privacy:" + k, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])})
	}
	// The list's identity is its set of ids, whatever files hold them.
	sorted := make([]string, 0, len(f.ids))
	for id := range f.ids {
		sorted = append(sorted, id)
	}
	slices.Sort(sorted)
	for _, id := range sorted {
		h.Write([]byte(id))
		h.Write([]byte{0})
	}
	f.sha256 = hex.EncodeToString(h.Sum(nil))
	e.log.Info("erasure list read", "users", len(f.ids), "objects", len(keys), "sha256", f.sha256[:12])
	return f, nil
}

// textUserIDs reads one id per line: blank lines, '#' comments and a first
// line "user_id" (a CSV header) are skipped.
func textUserIDs(data []byte) []string {
	var ids []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for first := true; sc.Scan(); first = false {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") || first && strings.EqualFold(line, "user_id") {
			continue
		}
		ids = append(ids, line)
	}
	return ids
}

// parquetUserIDs reads the user_id column (string, integer, or integral
// double, formatted as ingest formats ids).
func parquetUserIDs(data []byte) ([]string, error) {
	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, fmt.Errorf("not a readable Parquet file: %w", err)
	}
	col, ok := f.Schema().Lookup("user_id")
	if !ok {
		return nil, fmt.Errorf("no user_id column")
	}
	var ids []string
	for _, rg := range f.RowGroups() {
		pages := rg.ColumnChunks()[col.ColumnIndex].Pages()
		for {
			p, err := pages.ReadPage()
			if err != nil {
				break
			}
			vals := make([]parquet.Value, p.NumValues())
			n, _ := p.Values().ReadValues(vals)
			for _, v := range vals[:n] {
				if v.IsNull() {
					continue
				}
				switch v.Kind() {
				case parquet.ByteArray, parquet.FixedLenByteArray:
					ids = append(ids, string(v.ByteArray()))
				case parquet.Int32, parquet.Int64:
					ids = append(ids, strconv.FormatInt(v.Int64(), 10))
				case parquet.Double, parquet.Float:
					d := v.Double()
					if v.Kind() == parquet.Float {
						d = float64(v.Float())
					}
					if d != math.Trunc(d) || math.IsInf(d, 0) {
						pages.Close()
						return nil, fmt.Errorf("user_id %v is not an integral number", d)
					}
					ids = append(ids, strconv.FormatInt(int64(d), 10))
				default:
					pages.Close()
					return nil, fmt.Errorf("user_id of type %s: want string, integer or double", v.Kind())
				}
			}
			parquet.Release(p)
		}
		pages.Close()
	}
	return ids, nil
}

// markVersions checks every version of the model not yet checked against
// this list: a version whose vocabularies hold erased users gets the count
// in its manifest (Privacy.Holds), so that the gate no longer compares with
// it and LATEST leaves it. Each version is read once per list.
func (e *env) markVersions(ctx context.Context, f *forgetList) error {
	if f.empty() {
		return nil
	}
	ids, err := tables.ListVersions(ctx, e.out, e.cfg.Name)
	if err != nil {
		return err
	}
	for _, id := range ids {
		m, err := tables.OpenVersion(ctx, e.out, e.cfg.Name, id)
		if err != nil {
			return fmt.Errorf("privacy: check version %s: %w", id, err)
		}
		if m.Privacy != nil && m.Privacy.CheckedList == f.sha256 {
			continue
		}
		var holds int64
		for _, rel := range []string{"vocab/users.parquet", "evaluate/users.parquet"} {
			if !hasFile(m, rel) {
				continue
			}
			v, err := e.loadVocab(ctx, m, rel)
			if err != nil {
				return fmt.Errorf("privacy: check: %w", err)
			}
			holds = max(holds, countForgotten(v, f, e.pseudo))
		}
		if m.Privacy == nil {
			m.Privacy = &tables.Privacy{}
		}
		m.Privacy.CheckedList, m.Privacy.Holds, m.Privacy.CheckedOn = f.sha256, holds, e.cfg.Date
		if holds > 0 {
			e.log.Warn("privacy: a published version holds erased users: marked, never LATEST again", "version", id, "users", holds)
		}
		if err := tables.Rewrite(ctx, e.out, m, e.fence); err != nil {
			return err
		}
	}
	return nil
}

// countForgotten counts the list's users in a vocabulary (of raw ids, or of
// pseudonyms under the run's key).
func countForgotten(v *model.Vocab, f *forgetList, p pseudonym) int64 {
	var n int64
	for id := range f.ids {
		if _, ok := v.Lookup(id); ok {
			n++
		} else if p.on() {
			if _, ok := v.Lookup(p.id(id)); ok {
				n++
			}
		}
	}
	return n
}
