package events

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
)

// kind is the family of an Arrow column type as far as ingest cares.
type kind int

const (
	kindOther kind = iota
	kindString
	kindInt
	kindFloat
	kindBool
	kindTimestamp
	kindDate32
	kindDate64
)

// kindOf classifies dt; dictionaries take the kind of their values.
func kindOf(dt arrow.DataType) kind {
	switch dt.ID() {
	case arrow.STRING, arrow.LARGE_STRING, arrow.BINARY, arrow.LARGE_BINARY:
		return kindString
	case arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64, arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64:
		return kindInt
	case arrow.FLOAT32, arrow.FLOAT64:
		return kindFloat
	case arrow.BOOL:
		return kindBool
	case arrow.TIMESTAMP:
		return kindTimestamp
	case arrow.DATE32:
		return kindDate32
	case arrow.DATE64:
		return kindDate64
	case arrow.DICTIONARY:
		return kindOf(dt.(*arrow.DictionaryType).ValueType)
	}
	return kindOther
}

// errAccessor reports an array whose concrete type does not match its schema.
func errAccessor(arr arrow.Array) error {
	return fmt.Errorf("unexpected array %T for type %s", arr, arr.DataType())
}

// stringAccessor returns (value, valid) for a string-like column. The value
// aliases Arrow memory: clone it before keeping it past the record.
func stringAccessor(arr arrow.Array) (func(int) (string, bool), error) {
	switch a := arr.(type) {
	case *array.String:
		return func(i int) (string, bool) {
			if a.IsNull(i) {
				return "", false
			}
			return a.Value(i), true
		}, nil
	case *array.LargeString:
		return func(i int) (string, bool) {
			if a.IsNull(i) {
				return "", false
			}
			return a.Value(i), true
		}, nil
	case *array.Binary:
		return func(i int) (string, bool) {
			if a.IsNull(i) {
				return "", false
			}
			return a.ValueString(i), true
		}, nil
	case *array.LargeBinary:
		return func(i int) (string, bool) {
			if a.IsNull(i) {
				return "", false
			}
			return a.ValueString(i), true
		}, nil
	case *array.Dictionary:
		get, err := stringAccessor(a.Dictionary())
		if err != nil {
			return nil, err
		}
		dictLen := a.Dictionary().Len()
		return func(i int) (string, bool) {
			if a.IsNull(i) {
				return "", false
			}
			j := a.GetValueIndex(i)
			if j < 0 || j >= dictLen {
				return "", false
			}
			return get(j)
		}, nil
	}
	return nil, errAccessor(arr)
}

// intAccessor returns (value, valid) for an integer column.
func intAccessor(arr arrow.Array) (func(int) (int64, bool), error) {
	switch a := arr.(type) {
	case *array.Int8:
		return sliceInt(a, a.Int8Values()), nil
	case *array.Int16:
		return sliceInt(a, a.Int16Values()), nil
	case *array.Int32:
		return sliceInt(a, a.Int32Values()), nil
	case *array.Int64:
		return sliceInt(a, a.Int64Values()), nil
	case *array.Uint8:
		return sliceInt(a, a.Uint8Values()), nil
	case *array.Uint16:
		return sliceInt(a, a.Uint16Values()), nil
	case *array.Uint32:
		return sliceInt(a, a.Uint32Values()), nil
	case *array.Uint64:
		vals := a.Uint64Values()
		return func(i int) (int64, bool) {
			if a.IsNull(i) || vals[i] > math.MaxInt64 {
				return 0, false
			}
			return int64(vals[i]), true
		}, nil
	case *array.Dictionary:
		return viaDict(a, intAccessor)
	}
	return nil, errAccessor(arr)
}

func sliceInt[T int8 | int16 | int32 | int64 | uint8 | uint16 | uint32](a arrow.Array, vals []T) func(int) (int64, bool) {
	return func(i int) (int64, bool) {
		if a.IsNull(i) {
			return 0, false
		}
		return int64(vals[i]), true
	}
}

// floatAccessor returns (value, valid) for any numeric column.
func floatAccessor(arr arrow.Array) (func(int) (float64, bool), error) {
	switch a := arr.(type) {
	case *array.Float32:
		vals := a.Float32Values()
		return func(i int) (float64, bool) {
			if a.IsNull(i) {
				return 0, false
			}
			return float64(vals[i]), true
		}, nil
	case *array.Float64:
		vals := a.Float64Values()
		return func(i int) (float64, bool) {
			if a.IsNull(i) {
				return 0, false
			}
			return vals[i], true
		}, nil
	case *array.Dictionary:
		return viaDict(a, floatAccessor)
	}
	get, err := intAccessor(arr)
	if err != nil {
		return nil, err
	}
	return func(i int) (float64, bool) {
		v, ok := get(i)
		return float64(v), ok
	}, nil
}

// viaDict lifts an accessor of the dictionary's values to the dictionary.
func viaDict[T any](d *array.Dictionary, acc func(arrow.Array) (func(int) (T, bool), error)) (func(int) (T, bool), error) {
	get, err := acc(d.Dictionary())
	if err != nil {
		return nil, err
	}
	n := d.Dictionary().Len()
	return func(i int) (T, bool) {
		var zero T
		if d.IsNull(i) {
			return zero, false
		}
		j := d.GetValueIndex(i)
		if j < 0 || j >= n {
			return zero, false
		}
		return get(j)
	}, nil
}

// unitsPerSecond of an Arrow time unit.
func unitsPerSecond(u arrow.TimeUnit) int64 {
	switch u {
	case arrow.Millisecond:
		return 1e3
	case arrow.Microsecond:
		return 1e6
	case arrow.Nanosecond:
		return 1e9
	}
	return 1
}

// floorDiv divides rounding towards minus infinity, so that instants before
// 1970 stay before 1970 in seconds.
func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// secondsAccessor returns unix seconds for temporal and integer-epoch
// columns; unit applies to integer columns only.
func secondsAccessor(arr arrow.Array, unit int64) (func(int) (int64, bool), error) {
	switch a := arr.(type) {
	case *array.Timestamp:
		per := unitsPerSecond(a.DataType().(*arrow.TimestampType).Unit)
		vals := a.TimestampValues()
		return func(i int) (int64, bool) {
			if a.IsNull(i) {
				return 0, false
			}
			return floorDiv(int64(vals[i]), per), true
		}, nil
	case *array.Date32:
		vals := a.Date32Values()
		return func(i int) (int64, bool) {
			if a.IsNull(i) {
				return 0, false
			}
			return int64(vals[i]) * 86400, true
		}, nil
	case *array.Date64:
		vals := a.Date64Values()
		return func(i int) (int64, bool) {
			if a.IsNull(i) {
				return 0, false
			}
			return floorDiv(int64(vals[i]), 1000), true
		}, nil
	}
	get, err := intAccessor(arr)
	if err != nil {
		return nil, err
	}
	return func(i int) (int64, bool) {
		v, ok := get(i)
		if !ok {
			return 0, false
		}
		return floorDiv(v, unit), true
	}, nil
}

// idColumn decodes user or item ids.
type idColumn struct {
	name         string // file column
	null, bad    string // reject reasons
	lastF        float64
	lastI        int64
	lastS        string
	haveF, haveI bool
}

// checkIDType validates the Arrow type of an id column.
func checkIDType(dt arrow.DataType) error {
	switch kindOf(dt) {
	case kindString, kindInt, kindFloat:
		return nil
	}
	return fmt.Errorf("unsupported type %s (want string, integer or double)", dt)
}

// bind returns, per row, the id or a reject reason with the offending value.
func (c *idColumn) bind(arr arrow.Array) (func(int) (id, reason string), error) {
	switch kindOf(arr.DataType()) {
	case kindString:
		get, err := stringAccessor(arr)
		if err != nil {
			return nil, err
		}
		return func(i int) (string, string) {
			s, ok := get(i)
			return checkStringID(s, ok, c.null, c.bad)
		}, nil
	case kindInt:
		if u, ok := arr.(*array.Uint64); ok {
			// Ids above MaxInt64 are ids too: format them unsigned.
			vals := u.Uint64Values()
			return func(i int) (string, string) {
				if u.IsNull(i) {
					return "", c.null
				}
				return strconv.FormatUint(vals[i], 10), ""
			}, nil
		}
		get, err := intAccessor(arr)
		if err != nil {
			return nil, err
		}
		return func(i int) (string, string) {
			v, ok := get(i)
			if !ok {
				return "", c.null
			}
			if !c.haveI || v != c.lastI {
				c.lastI, c.haveI, c.haveF = v, true, false
				c.lastS = strconv.FormatInt(v, 10)
			}
			return c.lastS, ""
		}, nil
	case kindFloat:
		get, err := floatAccessor(arr)
		if err != nil {
			return nil, err
		}
		return func(i int) (string, string) {
			f, ok := get(i)
			if !ok {
				return "", c.null
			}
			// 2^53: beyond it a double does not hold every integer exactly.
			if math.IsNaN(f) || math.IsInf(f, 0) || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
				return strconv.FormatFloat(f, 'g', -1, 64), c.bad
			}
			if !c.haveF || f != c.lastF {
				c.lastF, c.haveF, c.haveI = f, true, false
				c.lastS = strconv.FormatInt(int64(f), 10)
			}
			return c.lastS, ""
		}, nil
	}
	return nil, errAccessor(arr)
}

// checkStringID returns a string id, or the reject reason with the value to
// report: null (absent or empty), longer than MaxIDLen, or bad — not valid
// UTF-8, holding a control character (NUL, CR, LF, …: they break every
// line- or C-string-based consumer of the tables), or only white space.
func checkStringID(s string, ok bool, null, bad string) (id, reason string) {
	switch {
	case !ok || s == "":
		return "", null
	case len(s) > MaxIDLen:
		return s, ReasonIDTooLong
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f { // not plain printable ASCII: look closer
			if !goodID(s) {
				return strconv.QuoteToASCII(s), bad
			}
			break
		}
	}
	return s, ""
}

// goodID is valid UTF-8 without control characters and not only white space.
func goodID(s string) bool {
	if !utf8.ValidString(s) || strings.TrimSpace(s) == "" {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// tsColumn decodes the ts column to unix seconds.
type tsColumn struct {
	unit   int64 // units per second of integer epochs
	layout string
	loc    *time.Location
	// cache of the last parsed string; dumps repeat timestamps in runs.
	lastRaw string
	lastSec int64
	lastOK  bool
}

// checkTSType validates the Arrow type of the ts column.
func checkTSType(dt arrow.DataType) error {
	switch kindOf(dt) {
	case kindTimestamp, kindDate32, kindDate64, kindInt, kindString:
		return nil
	}
	return fmt.Errorf("unsupported type %s (want timestamp, integer epoch or string)", dt)
}

// parseTS parses s with layout in loc and returns unix seconds.
func parseTS(s, layout string, loc *time.Location) (int64, bool) {
	t, err := time.ParseInLocation(layout, s, loc)
	if err != nil {
		return 0, false
	}
	return t.Unix(), true
}

// bind returns, per row, the unix seconds or a reject reason ("null_ts",
// "bad_ts") with the raw string value of string columns.
func (c *tsColumn) bind(arr arrow.Array) (func(int) (sec int64, reason, raw string), error) {
	if kindOf(arr.DataType()) == kindString {
		get, err := stringAccessor(arr)
		if err != nil {
			return nil, err
		}
		return func(i int) (int64, string, string) {
			s, ok := get(i)
			if !ok {
				return 0, ReasonNullTS, ""
			}
			if s != c.lastRaw || c.lastRaw == "" {
				c.lastRaw = strings.Clone(s)
				c.lastSec, c.lastOK = parseTS(s, c.layout, c.loc)
			}
			if !c.lastOK {
				return 0, ReasonBadTS, s
			}
			return c.lastSec, "", s
		}, nil
	}
	get, err := secondsAccessor(arr, c.unit)
	if err != nil {
		return nil, err
	}
	return func(i int) (int64, string, string) {
		v, ok := get(i)
		if !ok {
			return 0, ReasonNullTS, ""
		}
		return v, "", ""
	}, nil
}

// numberColumn reads optional quantity/price; null reads as 0.
func bindNumber(arr arrow.Array) (func(int) float64, error) {
	get, err := floatAccessor(arr)
	if err != nil {
		return nil, err
	}
	return func(i int) float64 {
		v, _ := get(i)
		return v
	}, nil
}

// MaxAmount bounds the magnitude of a quantity or a price: far beyond any
// real order line, far inside float32, so that spends (Σ quantity × price)
// stay finite. A NaN, an infinity or a larger value is a rejected row
// (bad_quantity, bad_price), never a number fed to the models.
const MaxAmount = 1e12

// amountOK reports whether v is a usable quantity or price.
func amountOK(v float64) bool { return v >= -MaxAmount && v <= MaxAmount } // false for NaN

// checkNumberType validates quantity and price columns.
func checkNumberType(dt arrow.DataType) error {
	switch kindOf(dt) {
	case kindInt, kindFloat:
		return nil
	}
	return fmt.Errorf("unsupported type %s (want integer or floating point)", dt)
}

// checkStringType validates event_type, and session/query columns.
func checkStringType(dt arrow.DataType) error {
	if kindOf(dt) == kindString {
		return nil
	}
	return fmt.Errorf("unsupported type %s (want string)", dt)
}

// checkStringOrIntType validates session_id columns.
func checkStringOrIntType(dt arrow.DataType) error {
	switch kindOf(dt) {
	case kindString, kindInt:
		return nil
	}
	return fmt.Errorf("unsupported type %s (want string or integer)", dt)
}
