package configs

import (
	"bytes"
	"reflect"
	"testing"
)

// TestResultDefiningClassifiesEverySetting changes every leaf setting in
// turn: an operational one must leave the result-defining config (what the
// version id hashes) unchanged, any other must change it. A setting added
// later is result-defining until it is listed in Operational.
func TestResultDefiningClassifiesEverySetting(t *testing.T) {
	base, err := Default().ResultDefining().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	paths := LeafPaths()
	if len(paths) < 40 {
		t.Fatalf("only %d leaf settings found: %v", len(paths), paths)
	}
	for _, p := range Operational {
		if _, ok := fieldByPath(reflect.ValueOf(Default()), p); !ok {
			t.Errorf("Operational names %q, which is no setting", p)
		}
	}
	for _, path := range paths {
		c := Default()
		f, ok := fieldByPath(reflect.ValueOf(&c).Elem(), path)
		if !ok {
			t.Fatalf("%s: not found", path)
		}
		mutate(f)
		got, err := c.ResultDefining().Marshal()
		if err != nil {
			t.Fatal(err)
		}
		changed := !bytes.Equal(base, got)
		if op := IsOperational(path); op && changed {
			t.Errorf("%s is operational but changes the result-defining config", path)
		} else if !op && !changed {
			t.Errorf("%s is not operational but does not change the result-defining config", path)
		}
	}
}

// mutate gives f a value different from its current one.
func mutate(f reflect.Value) {
	switch f.Kind() {
	case reflect.String:
		f.SetString(f.String() + "x")
	case reflect.Bool:
		f.SetBool(!f.Bool())
	case reflect.Int, reflect.Int32, reflect.Int64:
		f.SetInt(f.Int() + 1)
	case reflect.Float32, reflect.Float64:
		f.SetFloat(f.Float() + 0.5)
	case reflect.Pointer:
		if f.IsNil() {
			f.Set(reflect.New(f.Type().Elem()))
		} else {
			mutate(f.Elem())
		}
	case reflect.Slice:
		e := reflect.New(f.Type().Elem()).Elem()
		if e.Kind() == reflect.Struct {
			e.Field(0).SetString("added")
		} else {
			mutate(e)
		}
		f.Set(reflect.Append(f, e))
	default:
		panic("mutate: unsupported kind " + f.Kind().String())
	}
}
