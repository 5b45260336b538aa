package events

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/shelfml/shelf/configs"
)

// Options configures one Read.
type Options struct {
	Config configs.EventsConfig
	// Start and End bound the data window: rows with Start <= ts < End are
	// kept, others are counted as OutsideWindow. A zero time leaves that
	// side open.
	Start, End time.Time
	// Now is the wall clock: rows with ts > Now are rejected "future_ts".
	// Zero disables the check.
	Now time.Time
	// Rejects receives every rejected row; may be nil.
	Rejects RejectSink
	// Progress, when set, is called after every record batch with the files
	// finished so far, the number of files and the rows read, and once at
	// the end with every file done.
	Progress func(filesDone, files int, rows int64)
	// Skip lists key prefixes that are not events, such as the catalog's
	// path when it lives in the events bucket (configs.Config.CatalogInEvents).
	Skip []string
	// ArrowRecords decodes every file with Arrow's record reader, never the
	// page decoder (for comparisons: both give the same result).
	ArrowRecords bool
	// Forget holds the user ids (as in the dump) whose rows are dropped
	// before anything else sees them: never in the vocabulary, the events or
	// the rejects; counted as Forgotten. Empty = none.
	Forget map[string]bool

	mem memory.Allocator // Arrow allocator; tests set a checked one
}

// Reject is one rejected row.
type Reject struct {
	File   string // object key
	Row    int64  // 0-based row index within the file
	Column string // file column that caused the rejection, when meaningful
	Reason string
	Value  string // offending value, truncated to 256 bytes
}

// RejectSink receives rejected rows in file and row order. An error aborts Read.
type RejectSink interface {
	Reject(r Reject) error
}

// FileStat describes one input object and what became of its rows.
type FileStat struct {
	Key      string           `json:"key"`
	Size     int64            `json:"size"`
	ModTime  time.Time        `json:"mod_time"`
	MD5      string           `json:"md5,omitempty"`    // hex, empty when the store does not report it
	ETag     string           `json:"etag,omitempty"`   // the store's, when it lists no MD5
	SHA256   string           `json:"sha256,omitempty"` // of the bytes, on local file systems (file://)
	Rows     int64            `json:"rows"`
	Rejected map[string]int64 `json:"rejected"` // reason → rows
	// Decoder is how the file was decoded: "pages" (parquet-go, page by
	// page) or "arrow" (Arrow's record reader, for layouts the page decoder
	// does not take). Both give the same rows.
	Decoder string `json:"decoder"`
}

// Accounting is the exact fate of every row read:
// Read == Used + OutsideWindow + Duplicate + Forgotten + Σ Rejected.
// The JSON names are those of the run report (DESIGN §2).
type Accounting struct {
	Read              int64            `json:"rows_read"`
	Used              int64            `json:"rows_used"`
	OutsideWindow     int64            `json:"rows_outside_window"`
	Duplicate         int64            `json:"rows_duplicate"`
	Forgotten         int64            `json:"rows_forgotten"`  // of users on the erasure list (privacy.forget_url)
	ForgottenUsers    int64            `json:"users_forgotten"` // distinct such users seen in the window
	Rejected          map[string]int64 `json:"rows_rejected"`   // reason → rows; config filters appear as "filtered_<name>"
	Files             []FileStat       `json:"files"`
	PartitionsSkipped int              `json:"partitions_skipped"`
	// HiddenFilesSkipped counts *.parquet objects under a "_" or "."
	// component (Spark/Hadoop staging such as _temporary/, hidden files),
	// which are not read.
	HiddenFilesSkipped int `json:"hidden_files_skipped"`
}

// Balanced reports whether every row read is in exactly one bucket.
func (a *Accounting) Balanced() bool {
	var rej int64
	for _, n := range a.Rejected {
		rej += n
	}
	return a.Read == a.Used+a.OutsideWindow+a.Duplicate+a.Forgotten+rej
}

// isFilter reports whether reason comes from a config filter, which is a
// deliberate exclusion rather than bad data.
func isFilter(reason string) bool { return strings.HasPrefix(reason, "filtered_") }

// RejectRatio is the share of rows read that were rejected as bad data
// (config filters excluded).
func (a *Accounting) RejectRatio() float64 {
	if a.Read == 0 {
		return 0
	}
	var rej int64
	for r, n := range a.Rejected {
		if !isFilter(r) {
			rej += n
		}
	}
	return float64(rej) / float64(a.Read)
}

// Check returns a *DataError naming the worst file and its main reason when
// the reject ratio exceeds maxRatio.
func (a *Accounting) Check(maxRatio float64) error {
	ratio := a.RejectRatio()
	if ratio <= maxRatio {
		return nil
	}
	var worst *FileStat
	var worstN int64
	for i := range a.Files {
		var n int64
		for r, c := range a.Files[i].Rejected {
			if !isFilter(r) {
				n += c
			}
		}
		if n > worstN {
			worst, worstN = &a.Files[i], n
		}
	}
	e := &DataError{Row: -1}
	if worst == nil {
		e.Reason = fmt.Sprintf("rejected %.2f%% of rows, max %.2f%%", 100*ratio, 100*maxRatio)
		return e
	}
	reason, n := mainReason(worst.Rejected)
	e.File = worst.Key
	e.Reason = fmt.Sprintf("rejected %.2f%% of all rows, max %.2f%%; worst file has %d rejected rows, mostly %s (%d)",
		100*ratio, 100*maxRatio, worstN, reason, n)
	return e
}

// mainReason is the non-filter reason with most rows (ties broken by name).
func mainReason(m map[string]int64) (string, int64) {
	reasons := make([]string, 0, len(m))
	for r := range m {
		if !isFilter(r) {
			reasons = append(reasons, r)
		}
	}
	slices.SortFunc(reasons, func(x, y string) int {
		if c := cmp.Compare(m[y], m[x]); c != 0 {
			return c
		}
		return cmp.Compare(x, y)
	})
	if len(reasons) == 0 {
		return "", 0
	}
	return reasons[0], m[reasons[0]]
}

// DataError is a permanent problem with the input data or its schema (exit
// code 2): retrying cannot help.
type DataError struct {
	Input  string // "events" (also when empty) or "catalog"
	File   string // object key; empty when not file-specific
	Column string // empty when not column-specific
	Row    int64  // 0-based row within File; < 0 when not row-specific
	Reason string
}

// Error renders "events dt=2024-11-02/part-3.parquet: column user_id: row 17: reason".
func (e *DataError) Error() string {
	var b strings.Builder
	b.WriteString(cmp.Or(e.Input, "events"))
	if e.File != "" {
		b.WriteString(" ")
		b.WriteString(e.File)
	}
	if e.Column != "" {
		b.WriteString(": column ")
		b.WriteString(e.Column)
	}
	if e.Row >= 0 {
		fmt.Fprintf(&b, ": row %d", e.Row)
	}
	b.WriteString(": ")
	b.WriteString(e.Reason)
	return b.String()
}

// Reasons of rejected rows.
const (
	ReasonNullUser         = "null_user"
	ReasonNullItem         = "null_item"
	ReasonBadUserID        = "bad_user_id"
	ReasonBadItemID        = "bad_item_id"
	ReasonIDTooLong        = "id_too_long"
	ReasonNullTS           = "null_ts"
	ReasonBadTS            = "bad_ts"
	ReasonTSBefore1970     = "ts_before_1970"
	ReasonFutureTS         = "future_ts"
	ReasonUnknownEventType = "unknown_event_type"
	ReasonBadQuantity      = "bad_quantity" // NaN, infinite, or beyond ±MaxAmount (bad_price likewise)
	// FilterReasonPrefix precedes a config filter's name.
	FilterReasonPrefix = "filtered_"
)

// MaxIDLen is the longest accepted id in bytes; longer ones are rejected
// "id_too_long".
const MaxIDLen = 4096

// maxValueLen bounds Reject.Value.
const maxValueLen = 256

// truncate returns a copy of s cut to maxValueLen bytes on a rune boundary;
// the copy matters because s may alias Arrow memory.
func truncate(s string) string {
	if len(s) > maxValueLen {
		n := maxValueLen
		for n > 0 && n > maxValueLen-4 && !isRuneStart(s[n]) {
			n--
		}
		s = s[:n]
	}
	return strings.Clone(s)
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }
