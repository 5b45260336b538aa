package configs

import (
	"reflect"
	"strings"
)

// Operational lists the settings (YAML paths; a path covers everything
// under it) that change how a run goes — where it reads and writes, how it
// splits work, how long a lock lives, how often it checkpoints, where
// metrics go, when it gives up — but never what it produces. They are left
// out of the version id, so a scheduler may change them between the stages
// of one date (train with one shard count, score with another) and a retry
// with a longer lease finds the same version. Every other setting defines
// the result. A test walks the whole tree: a new setting is result-defining
// unless it is listed here.
var Operational = []string{
	"date",
	"events.url",
	"output.url",
	"catalog.url",
	"lock_lease_seconds",
	"events.read_buffer_size",
	"events.ingest_shards",    // how the dumps are read, not what is read
	"events.max_reject_ratio", // decides whether a run fails, not its output
	"events.limits",           // likewise: a file over a limit is an error
	"storage",
	"train.workers", // goroutines only: training splits batches by train.batch_shards
	"train.checkpoint_seconds",
	"score.shards",
	"score.workers",
	"metrics.pushgateway_url",
	"privacy.forget_url", // where the list is; its content is an input of the version
}

// ResultDefining returns c with every Operational setting cleared: what the
// version id hashes and what a version's config.yaml records.
func (c Config) ResultDefining() Config {
	out := c
	v := reflect.ValueOf(&out).Elem()
	for _, path := range Operational {
		if f, ok := fieldByPath(v, path); ok {
			f.Set(reflect.Zero(f.Type()))
		}
	}
	// Slices shared with c must not be aliased by the copy's later edits;
	// nothing edits them, but keep the copy independent of c anyway.
	return out
}

// fieldByPath finds the field at a dotted YAML path.
func fieldByPath(v reflect.Value, path string) (reflect.Value, bool) {
	for _, name := range strings.Split(path, ".") {
		if v.Kind() != reflect.Struct {
			return reflect.Value{}, false
		}
		found := false
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			if strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0] == name {
				v, found = v.Field(i), true
				break
			}
		}
		if !found {
			return reflect.Value{}, false
		}
	}
	return v, true
}

// LeafPaths lists the YAML path of every leaf setting (scalars, lists,
// lists of structs as one leaf), for tests and generated docs.
func LeafPaths() []string {
	var out []string
	var rec func(t reflect.Type, prefix string)
	rec = func(t reflect.Type, prefix string) {
		for i := 0; i < t.NumField(); i++ {
			tag := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]
			if tag == "" || tag == "-" {
				continue
			}
			p := tag
			if prefix != "" {
				p = prefix + "." + tag
			}
			if ft := t.Field(i).Type; ft.Kind() == reflect.Struct {
				rec(ft, p)
			} else {
				out = append(out, p)
			}
		}
	}
	rec(reflect.TypeOf(Config{}), "")
	return out
}

// IsOperational reports whether the setting at path is operational.
func IsOperational(path string) bool {
	for _, p := range Operational {
		if path == p || strings.HasPrefix(path, p+".") {
			return true
		}
	}
	return false
}
