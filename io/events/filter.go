package events

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"

	"github.com/shelfml/shelf/configs"
)

// filter is a config filter compiled against one file's column type. A null
// cell fails every op but not_null fails only on null (SQL semantics).
type filter struct {
	cfg    configs.FilterConfig
	reason string
	bind   func(arr arrow.Array) (func(int) bool, error)
}

// compileFilter checks that op and value make sense for the column type dt.
func compileFilter(fc configs.FilterConfig, dt arrow.DataType) (*filter, error) {
	f := &filter{cfg: fc, reason: FilterReasonPrefix + fc.Name}
	k := kindOf(dt)
	if k == kindOther {
		return nil, fmt.Errorf("filter %s: unsupported type %s", fc.Name, dt)
	}
	if fc.Op == "not_null" {
		f.bind = func(arr arrow.Array) (func(int) bool, error) {
			if k == kindString {
				get, err := stringAccessor(arr)
				if err != nil {
					return nil, err
				}
				return func(i int) bool { _, ok := get(i); return ok }, nil
			}
			return func(i int) bool { return !arr.IsNull(i) }, nil
		}
		return f, nil
	}
	bad := func(format string, a ...any) error {
		return fmt.Errorf("filter %s: op %s on %s column: %s", fc.Name, fc.Op, dt, fmt.Sprintf(format, a...))
	}
	if k != kindString && (fc.Op == "prefix" || fc.Op == "not_prefix") {
		return nil, bad("needs a string column")
	}
	switch k {
	case kindString:
		cmpFn, err := stringOp(fc.Op, fc.Value)
		if err != nil {
			return nil, bad("%v", err)
		}
		f.bind = bindWith(stringAccessor, cmpFn)
	case kindInt, kindFloat:
		v, err := strconv.ParseFloat(strings.TrimSpace(fc.Value), 64)
		if err != nil {
			return nil, bad("value %q is not a number", fc.Value)
		}
		cmpFn, err := orderedOp(fc.Op, v)
		if err != nil {
			return nil, bad("%v", err)
		}
		f.bind = bindWith(floatAccessor, cmpFn)
	case kindTimestamp, kindDate32, kindDate64:
		t, err := parseFilterTime(fc.Value)
		if err != nil {
			return nil, bad("value %q is not an RFC 3339 time or a date", fc.Value)
		}
		cmpFn, err := orderedOp(fc.Op, t)
		if err != nil {
			return nil, bad("%v", err)
		}
		f.bind = bindWith(func(arr arrow.Array) (func(int) (int64, bool), error) { return secondsAccessor(arr, 1) }, cmpFn)
	case kindBool:
		want, err := strconv.ParseBool(strings.TrimSpace(fc.Value))
		if err != nil {
			return nil, bad("value %q is not a boolean", fc.Value)
		}
		if fc.Op != "==" && fc.Op != "!=" {
			return nil, bad("want == or !=")
		}
		eq := fc.Op == "=="
		f.bind = func(arr arrow.Array) (func(int) bool, error) {
			return boolFilter(arr, want, eq)
		}
	}
	return f, nil
}

// bindWith makes a filter's per-batch binder from a typed column accessor
// and a comparison: a row passes when its value is non-null and compares true.
func bindWith[T any](accessor func(arrow.Array) (func(int) (T, bool), error), cmp func(T) bool) func(arrow.Array) (func(int) bool, error) {
	return func(arr arrow.Array) (func(int) bool, error) {
		get, err := accessor(arr)
		if err != nil {
			return nil, err
		}
		return func(i int) bool {
			v, ok := get(i)
			return ok && cmp(v)
		}, nil
	}
}

func parseFilterTime(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.Unix(), nil
	}
	t, err := time.Parse("2006-01-02", s)
	if err != nil {
		return 0, err
	}
	return t.Unix(), nil
}

func stringOp(op, v string) (func(string) bool, error) {
	switch op {
	case "==":
		return func(s string) bool { return s == v }, nil
	case "!=":
		return func(s string) bool { return s != v }, nil
	case "prefix":
		return func(s string) bool { return strings.HasPrefix(s, v) }, nil
	case "not_prefix":
		return func(s string) bool { return !strings.HasPrefix(s, v) }, nil
	case "<":
		return func(s string) bool { return s < v }, nil
	case "<=":
		return func(s string) bool { return s <= v }, nil
	case ">":
		return func(s string) bool { return s > v }, nil
	case ">=":
		return func(s string) bool { return s >= v }, nil
	}
	return nil, fmt.Errorf("unknown op")
}

func orderedOp[T int64 | float64](op string, v T) (func(T) bool, error) {
	switch op {
	case "==":
		return func(x T) bool { return x == v }, nil
	case "!=":
		return func(x T) bool { return x != v }, nil
	case "<":
		return func(x T) bool { return x < v }, nil
	case "<=":
		return func(x T) bool { return x <= v }, nil
	case ">":
		return func(x T) bool { return x > v }, nil
	case ">=":
		return func(x T) bool { return x >= v }, nil
	case "prefix", "not_prefix":
		return nil, fmt.Errorf("needs a string column")
	}
	return nil, fmt.Errorf("unknown op")
}

func boolFilter(arr arrow.Array, want, eq bool) (func(int) bool, error) {
	a, ok := arr.(*array.Boolean)
	if !ok {
		return nil, errAccessor(arr)
	}
	return func(i int) bool {
		return !a.IsNull(i) && (a.Value(i) == want) == eq
	}, nil
}
